-- Replay, tables without a key, step 2: add the copies whose net count is positive.
WITH ev AS (
    SELECT l.old AS img, -1 AS d
      FROM {log} AS l
     WHERE l.batch_id BETWEEN %(first)s AND %(last)s AND l.tbl = %(tbl)s
           AND (l.batch_id, l.seq) BETWEEN (%(first)s, %(seq_lo)s) AND (%(last)s, %(seq_hi)s) AND l.op IN ('U', 'D')
    UNION ALL
    SELECT l.new, 1
      FROM {log} AS l
     WHERE l.batch_id BETWEEN %(first)s AND %(last)s AND l.tbl = %(tbl)s
           AND (l.batch_id, l.seq) BETWEEN (%(first)s, %(seq_lo)s) AND (%(last)s, %(seq_hi)s) AND l.op IN ('I', 'U')
), net AS (
    SELECT img, sum(d) AS n FROM ev GROUP BY img HAVING sum(d) > 0
)
INSERT INTO {target}
SELECT r.*
FROM net, generate_series(1, net.n), LATERAL jsonb_populate_record(NULL::{target}, net.img) AS r
