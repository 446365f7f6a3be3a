-- Lag of one subscription, measured on the source: the current WAL position against what
-- the subscriber confirmed as applied and flushed (the slot's confirmed_flush_lsn).
SELECT pg_current_wal_lsn()::text                                           AS source_lsn,
       s.confirmed_flush_lsn::text                                          AS confirmed_flush_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint AS lag_bytes,
       (SELECT extract(epoch FROM r.replay_lag)::float8 FROM pg_stat_replication r
        WHERE r.pid = s.active_pid)                                         AS replay_lag_seconds
FROM pg_replication_slots AS s
WHERE s.slot_name = %(slot)s;
