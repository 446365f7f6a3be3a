-- Ordinary tables of the current database with what the preflight needs to know.
-- needs_identity: UPDATE/DELETE could not be published (no primary key, no replica identity).
-- identity_index: for such a table, a unique index that may serve as its replica identity
-- (not partial, not deferrable, valid, no expression, every column NOT NULL): REPLICA IDENTITY
-- USING INDEX then costs far less than FULL (whole old rows in the WAL, full-row matching).
SELECT format('%I.%I', n.nspname, c.relname)                          AS table_name,
       c.relpersistence = 'u'                                          AS unlogged,
       c.relreplident::text                                            AS replident,
       c.relpersistence = 'p' AND (
           c.relreplident = 'n'
           OR (c.relreplident = 'd' AND NOT EXISTS (
                   SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
       )                                                               AS needs_identity,
       (SELECT quote_ident(ic.relname)
        FROM pg_index AS i JOIN pg_class AS ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) AS k(attnum)
                          LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum
                          WHERE a.attnum IS NULL OR NOT a.attnotnull)
        ORDER BY i.indnatts, ic.relname LIMIT 1)                       AS identity_index
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname <> 'pgbaton_ddl'  -- pgbaton's DDL queue (it has a key; its rows differ per side)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;
