-- Replay, tables with a key, step 2: insert the final image of every key whose
-- last change in the batches is an insert or update.  An update that moves a row
-- to another key counts as a delete of the old key followed by a write of the new.
INSERT INTO {target}
SELECT r.*
FROM (
    SELECT DISTINCT ON (e.k) e.k, e.img
    FROM (
        SELECT l.old AS k, l.batch_id, l.seq, 0 AS sub, NULL::jsonb AS img
          FROM {log} AS l
         WHERE l.batch_id BETWEEN %(first)s AND %(last)s AND l.tbl = %(tbl)s
           AND (l.batch_id, l.seq) BETWEEN (%(first)s, %(seq_lo)s) AND (%(last)s, %(seq_hi)s) AND l.op IN ('U', 'D')
        UNION ALL
        SELECT {new_key}, l.batch_id, l.seq, 1, l.new
          FROM {log} AS l
         WHERE l.batch_id BETWEEN %(first)s AND %(last)s AND l.tbl = %(tbl)s
           AND (l.batch_id, l.seq) BETWEEN (%(first)s, %(seq_lo)s) AND (%(last)s, %(seq_hi)s) AND l.op IN ('I', 'U')
    ) AS e
    ORDER BY e.k, e.batch_id DESC, e.seq DESC, e.sub DESC
) AS f,
LATERAL jsonb_populate_record(NULL::{target}, f.img) AS r
WHERE f.img IS NOT NULL
