-- Replay, tables with a key, step 1: remove every row whose key the batches touch.
-- {target}: the target table; {log}: the source's log table;
-- {new_key}: jsonb_build_object over the key columns of l.new; {key_match}: t.k = r.k AND ...
-- %(seq_lo)s, %(seq_hi)s narrow the first and last batch to a slice (ordered replay of cascades).
DELETE FROM {target} AS t
USING (
    SELECT DISTINCT keys.k
    FROM (
        SELECT l.old AS k
          FROM {log} AS l
         WHERE l.batch_id BETWEEN %(first)s AND %(last)s AND l.tbl = %(tbl)s
           AND (l.batch_id, l.seq) BETWEEN (%(first)s, %(seq_lo)s) AND (%(last)s, %(seq_hi)s) AND l.op IN ('U', 'D')
        UNION ALL
        SELECT {new_key}
          FROM {log} AS l
         WHERE l.batch_id BETWEEN %(first)s AND %(last)s AND l.tbl = %(tbl)s
           AND (l.batch_id, l.seq) BETWEEN (%(first)s, %(seq_lo)s) AND (%(last)s, %(seq_hi)s) AND l.op IN ('I', 'U')
    ) AS keys
) AS d,
LATERAL jsonb_populate_record(NULL::{target}, d.k) AS r
WHERE {key_match}
