-- pgbaton's migration catalog, in the target's maintenance database.  Idempotent.
CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.migration (
    name        text PRIMARY KEY,
    state       text NOT NULL DEFAULT 'started',
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- the states and their transitions: pgbaton/migrate/lifecycle.py; every change is a
-- compare-and-set (UPDATE ... WHERE state = ANY(the states the transition may start from))
-- switch_from: the state a switch under way began in, where its rollback returns
ALTER TABLE {schema}.migration ADD COLUMN IF NOT EXISTS switch_from text;

CREATE TABLE IF NOT EXISTS {schema}.migration_database (
    migration     text NOT NULL REFERENCES {schema}.migration (name) ON DELETE CASCADE,
    dbname        text NOT NULL,
    created_db    boolean NOT NULL DEFAULT false,  -- set before CREATE DATABASE: abort drops it
    schema_copied boolean NOT NULL DEFAULT false,
    subscribed    boolean NOT NULL DEFAULT false,  -- the initial copy was started: never copy again
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, dbname)
);

-- queued: the subscription was made disabled, its initial copy waits until the copies of other
-- databases leave room for it (slots, walsenders, workers: pgbaton/migrate/pace.py)
ALTER TABLE {schema}.migration_database ADD COLUMN IF NOT EXISTS queued boolean NOT NULL DEFAULT false;

-- tables whose replica identity pgbaton changed on the source, to restore on abort
CREATE TABLE IF NOT EXISTS {schema}.replica_identity (
    migration   text NOT NULL,
    dbname      text NOT NULL,
    table_name  text NOT NULL,   -- schema-qualified, quoted
    previous    text NOT NULL,   -- pg_class.relreplident before pgbaton: d or n
    PRIMARY KEY (migration, dbname, table_name),
    FOREIGN KEY (migration, dbname) REFERENCES {schema}.migration_database ON DELETE CASCADE
);

-- switchover progress: a step is recorded 'started' before it acts and 'done' after, so that a
-- rerun after a crash undoes (or, once the switcher points at the target, finishes) exactly
-- what was begun.  detail: what the step observed (the source LSN per database).
CREATE TABLE IF NOT EXISTS {schema}.switchover_step (
    migration   text NOT NULL REFERENCES {schema}.migration (name) ON DELETE CASCADE,
    action      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('started', 'done')),
    detail      jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, action)
);

-- every switch (switchover or switchback) of a migration, newest last: when it began and ended,
-- how long the clients were paused (PAUSE .. RESUME as pgbaton saw it) and how it ended.
-- outcome: running (under way, or interrupted: the rerun closes it), complete (clients on the
-- new side), rolled_back (a step failed or the switch was interrupted, and it was undone: clients
-- on the old side), cancelled (refused before the pause: nothing was changed).
-- databases: per database, the seconds each step took for it (database -> step -> seconds).
CREATE TABLE IF NOT EXISTS {schema}.switch_history (
    migration       text NOT NULL REFERENCES {schema}.migration (name) ON DELETE CASCADE,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    direction       text NOT NULL CHECK (direction IN ('switchover', 'switchback')),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at        timestamptz,
    paused_seconds  double precision,
    outcome         text NOT NULL DEFAULT 'running'
                    CHECK (outcome IN ('running', 'complete', 'rolled_back', 'cancelled')),
    reason          text,
    databases       jsonb NOT NULL DEFAULT jsonb_build_object(),
    PRIMARY KEY (migration, id)
);
