-- Tables of one subscription (in the current database): total and ready (initial copy done).
SELECT count(r.srrelid)::int                                  AS total,
       count(r.srrelid) FILTER (WHERE r.srsubstate = 'r')::int AS synced,
       s.oid::bigint                                          AS subid,
       s.subenabled                                           AS enabled,
       EXISTS (SELECT 1 FROM pg_stat_subscription w
               WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL) AS worker_running
FROM pg_subscription AS s
LEFT JOIN pg_subscription_rel AS r ON r.srsubid = s.oid
WHERE s.subname = %(name)s
  AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY s.oid, s.subenabled;
