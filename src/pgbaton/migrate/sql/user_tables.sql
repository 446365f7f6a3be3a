-- Ordinary tables of the current database with what the preflight needs to know.
-- needs_identity: UPDATE/DELETE could not be published (no primary key, no replica identity).
SELECT format('%I.%I', n.nspname, c.relname)                          AS table_name,
       c.relpersistence = 'u'                                          AS unlogged,
       c.relreplident::text                                            AS replident,
       c.relpersistence = 'p' AND (
           c.relreplident = 'n'
           OR (c.relreplident = 'd' AND NOT EXISTS (
                   SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
       )                                                               AS needs_identity
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname <> 'pgbaton_ddl'  -- pgbaton's DDL queue (it has a key; its rows differ per side)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1;
