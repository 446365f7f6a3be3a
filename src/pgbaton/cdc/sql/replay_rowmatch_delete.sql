-- Replay, tables without a key: rows are a multiset.  The net count of each whole
-- row image over the batches says how many copies to remove (negative) or add.
-- Step 1: remove as many matching copies as the net count asks for.
-- Whole rows are compared as ROW(t.*): a bare "t" would name a user column called t.
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
    SELECT img, sum(d) AS n FROM ev GROUP BY img HAVING sum(d) < 0
), victims AS (
    SELECT m.c
    FROM net,
         LATERAL jsonb_populate_record(NULL::{target}, net.img) AS r,
         LATERAL (SELECT t.ctid AS c FROM {target} AS t
                   WHERE ROW(t.*) IS NOT DISTINCT FROM ROW(r.*) LIMIT (-net.n)) AS m
)
DELETE FROM {target} AS t WHERE t.ctid IN (SELECT c FROM victims)
