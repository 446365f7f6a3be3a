-- pgbaton catalog, version 2: replay errors and counters for `status`.

CREATE TABLE errors (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    table_id    integer REFERENCES tables (id) ON DELETE SET NULL,
    batch_id    bigint,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text NOT NULL DEFAULT 'replay' CHECK (kind IN ('replay', 'ddl', 'reader')),
    message     text NOT NULL,
    change      jsonb,
    position    text
);
CREATE INDEX errors_source ON errors (source, id);

ALTER TABLE tables
    ADD COLUMN rows_replayed   bigint NOT NULL DEFAULT 0,
    ADD COLUMN rows_copied     bigint,
    ADD COLUMN disabled_reason text,
    ADD COLUMN disabled_at     timestamptz;

ALTER TABLE sources
    ADD COLUMN rows_replayed   bigint NOT NULL DEFAULT 0,
    ADD COLUMN replayed_at     timestamptz,    -- when the last batch was replayed
    ADD COLUMN head_file       text,           -- source binlog head as last seen by the reader
    ADD COLUMN head_pos        bigint,
    ADD COLUMN reader_pid      integer,
    ADD COLUMN reader_host     text;
