-- Settings and privileges of one cluster for the preflight.
SELECT current_setting('server_version_num')::int                     AS version_num,
       current_setting('wal_level')                                    AS wal_level,
       current_setting('max_replication_slots')::int                   AS max_replication_slots,
       (SELECT count(*) FROM pg_replication_slots)::int                AS used_replication_slots,
       current_setting('max_wal_senders')::int                         AS max_wal_senders,
       (SELECT count(*) FROM pg_stat_replication)::int                 AS used_wal_senders,
       current_setting('max_worker_processes')::int                    AS max_worker_processes,
       current_setting('max_logical_replication_workers')::int         AS max_logical_replication_workers,
       current_setting('max_sync_workers_per_subscription')::int       AS max_sync_workers_per_subscription,
       -- PostgreSQL 18+: origins in use (an apply worker and each table copy hold one); NULL before
       current_setting('max_active_replication_origins', true)::int    AS max_active_replication_origins,
       r.rolsuper                                                      AS is_superuser,
       r.rolreplication OR r.rolsuper                                  AS can_replicate,
       current_user::text                                              AS user_name,
       -- other client sessions as this user: after a switch they could write into a frozen database
       (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = current_user
          AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
          AND coalesce(a.application_name, '') NOT LIKE 'pgbaton%')::int AS user_sessions
FROM pg_roles AS r
WHERE r.rolname = current_user;
