-- Lag of one subscription, measured on the source: the current WAL position against what
-- the subscriber confirmed as applied and flushed (the slot's confirmed_flush_lsn).
-- The position is the *insert* one: with synchronous_commit = off a client's COMMIT returns
-- before its WAL is written, so pg_current_wal_lsn() (the write position) can lie behind
-- transactions the clients already saw committed (measured: 3 times in 30 rounds).
SELECT pg_current_wal_insert_lsn()::text                                           AS source_lsn,
       s.confirmed_flush_lsn::text                                                 AS confirmed_flush_lsn,
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.confirmed_flush_lsn)::bigint AS lag_bytes,
       (SELECT extract(epoch FROM r.replay_lag)::float8 FROM pg_stat_replication r
        WHERE r.pid = s.active_pid)                                                AS replay_lag_seconds
FROM pg_replication_slots AS s
WHERE s.slot_name = %(slot)s;
