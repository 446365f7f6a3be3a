-- Tables of one subscription (in the current database): total and ready (initial copy done).
-- pgbaton's DDL queue counts only while it is not ready: the user sees their own tables.
SELECT count(r.srrelid) FILTER (WHERE n.nspname IS DISTINCT FROM 'pgbaton_ddl'
                                   OR r.srsubstate <> 'r')::int               AS total,
       count(r.srrelid) FILTER (WHERE n.nspname IS DISTINCT FROM 'pgbaton_ddl'
                                  AND r.srsubstate = 'r')::int                AS synced,
       s.oid::bigint                                                         AS subid,
       s.subenabled                                                          AS enabled,
       EXISTS (SELECT 1 FROM pg_stat_subscription w
               WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL) AS worker_running
FROM pg_subscription AS s
LEFT JOIN pg_subscription_rel AS r ON r.srsubid = s.oid
LEFT JOIN pg_class AS c ON c.oid = r.srrelid
LEFT JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE s.subname = %(name)s
  AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY s.oid, s.subenabled;
