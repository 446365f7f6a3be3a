-- pgbaton catalog, version 5: the source's foreign keys, so that replay reproduces the
-- cascades (ON DELETE / ON UPDATE CASCADE and SET NULL) that InnoDB applies without
-- writing the changed child rows to the binlog.  Read at replica start and after
-- every DDL statement.
CREATE TABLE foreign_keys (
    source       text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    child_db     text NOT NULL,
    child_table  text NOT NULL,
    name         text NOT NULL,
    child_cols   text[] NOT NULL,
    parent_db    text NOT NULL,
    parent_table text NOT NULL,
    parent_cols  text[] NOT NULL,
    on_delete    text NOT NULL,
    on_update    text NOT NULL,
    PRIMARY KEY (source, child_db, child_table, name)
);
