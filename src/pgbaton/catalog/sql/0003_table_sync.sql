-- pgbaton catalog, version 3: re-synchronising single tables while the replica runs.

-- The binlog position of the snapshot a table was last copied from: replay ignores
-- the table's changes in batches that end at or before it.
ALTER TABLE tables
    ADD COLUMN sync_file   text,
    ADD COLUMN sync_pos    bigint,
    ADD COLUMN sync_gtid   text,
    ADD COLUMN synced_at   timestamptz;

-- Bumped whenever the set of tables or their states change outside the replica
-- (sync_tables, enable/disable); the writer acknowledges the version it has loaded.
ALTER TABLE sources
    ADD COLUMN tables_version         bigint NOT NULL DEFAULT 0,
    ADD COLUMN writer_tables_version  bigint NOT NULL DEFAULT 0;
