-- pgbaton catalog, version 6: how often the supervisor of `replica start` has started a
-- source's replica again after an outage (source, target, network), for status and metrics.
ALTER TABLE sources ADD COLUMN restarts bigint NOT NULL DEFAULT 0;
