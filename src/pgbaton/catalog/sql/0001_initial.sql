-- pgbaton catalog, version 1.
-- Runs with search_path set to the catalog schema; names are unqualified.

CREATE TABLE catalog_version (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per source database (a MySQL/MariaDB server).
CREATE TABLE sources (
    name            text PRIMARY KEY,
    kind            text NOT NULL,
    state           text NOT NULL DEFAULT 'new'
                    CHECK (state IN ('new', 'initializing', 'initialized', 'running', 'stopped', 'error')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- where the binlog reader resumes: the end of the last batch written
    read_file       text,
    read_pos        bigint,
    read_gtid       text,
    -- coordinates of the initial snapshot
    snapshot_file   text,
    snapshot_pos    bigint,
    snapshot_gtid   text,
    snapshot_at     timestamptz,
    last_event_at   timestamptz,   -- source timestamp of the last event read
    last_read_at    timestamptz,   -- when the reader last heard from the source (events or heartbeats)
    next_batch_id   bigint NOT NULL DEFAULT 1
);

-- Every replicated table, with its MySQL definition as pgbaton tracks it.
CREATE TABLE tables (
    id          serial PRIMARY KEY,
    source      text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    src_db      text NOT NULL,
    src_table   text NOT NULL,
    dst_schema  text NOT NULL,
    dst_table   text NOT NULL,
    pk_cols     text[] NOT NULL DEFAULT '{}',
    definition  jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'copying'
                CHECK (state IN ('copying', 'replicating', 'disabled')),
    UNIQUE (source, src_db, src_table)
);

-- Batches of binlog changes stored in the source's log table.
-- 'open' while being written, 'closed' once complete, 'replayed' when applied.
CREATE TABLE batches (
    source          text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    batch_id        bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('rows', 'ddl')),
    status          text NOT NULL CHECK (status IN ('open', 'closed', 'replayed')),
    end_file        text,
    end_pos         bigint,
    end_gtid        text,
    n_events        integer NOT NULL DEFAULT 0,
    table_ids       integer[] NOT NULL DEFAULT '{}',
    first_event_at  timestamptz,
    last_event_at   timestamptz,
    written_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    replayed_at     timestamptz,
    ddl             text,
    ddl_db          text,
    PRIMARY KEY (source, batch_id)
);
CREATE INDEX batches_pending ON batches (source, batch_id) WHERE status = 'closed';
