-- In-band DDL replication for one database: installed the same way on both clusters.
--
-- Capture: event triggers (ddl_command_end, sql_drop) write each DDL command into
-- pgbaton_ddl.queue inside the transaction that runs it, so rolled-back DDL never exists.
-- The queue is an ordinary table, so it travels in the publication (FOR ALL TABLES) with the data.
-- Apply: a trigger on the queue, enabled for REPLICA only, runs the command in the
-- subscription's apply worker, in commit order with the data around it.  Event triggers do
-- not fire in the apply worker (session_replication_role = replica), so nothing echoes back.
-- Safe to run again: every object is created or replaced.  The installing session sets
-- pgbaton.ddl_capture = off so that installing is not captured itself.

CREATE SCHEMA IF NOT EXISTS pgbaton_ddl;
GRANT USAGE ON SCHEMA pgbaton_ddl TO PUBLIC;  -- the capture functions run as the role doing DDL

-- options.unreplicable_ddl of the migration: 'error' or 'warn' (pgbaton writes the value)
CREATE OR REPLACE FUNCTION pgbaton_ddl.unreplicable_policy()
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$ SELECT text '__POLICY__' $fn$;

CREATE TABLE IF NOT EXISTS pgbaton_ddl.queue (
    node        text        NOT NULL,           -- system identifier of the cluster that ran it
    id          bigint      NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    role        text        NOT NULL,           -- current_user of the session that ran it
    search_path text        NOT NULL,
    tag         text        NOT NULL,           -- command tag, e.g. ALTER TABLE
    objects     text[]      NOT NULL DEFAULT '{}',
    statement   text,                           -- the single statement to run; NULL: not replicable
    query       text        NOT NULL,           -- the whole top-level query string, for the record
    note        text,                           -- set where it was applied: skipped, not replicable
    PRIMARY KEY (node, id)
);
CREATE SEQUENCE IF NOT EXISTS pgbaton_ddl.queue_id OWNED BY pgbaton_ddl.queue.id;
-- from the first version of this file
ALTER TABLE pgbaton_ddl.queue ADD COLUMN IF NOT EXISTS note text;
DROP TABLE IF EXISTS pgbaton_ddl.applied;

-- Split a query string into statements at top-level semicolons.  A lexer, not a pattern:
-- it walks quotes ('', E'', ""), dollar quotes, line and nested block comments.
-- words: the first bare words of each statement, upper-cased, for matching command tags.
CREATE OR REPLACE FUNCTION pgbaton_ddl.statements(q text)
RETURNS TABLE (ord int, stmt text, words text[])
LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
DECLARE
    ch      text[] := string_to_array(q, NULL);
    n       int := coalesce(array_length(ch, 1), 0);
    i       int := 1;
    s       int := 1;       -- where the current statement starts
    c       text;
    word    text := '';
    w       text[] := '{}';
    depth   int;
    tag     text;
    j       int;
    esc     boolean;
BEGIN
    ord := 0;
    WHILE i <= n + 1 LOOP
        c := CASE WHEN i <= n THEN ch[i] END;
        IF c IS NOT NULL AND (c ~ '[[:alnum:]_]' OR (c = '$' AND word <> '')) THEN
            word := word || c;
            i := i + 1;
            CONTINUE;
        END IF;
        IF word <> '' THEN
            IF cardinality(w) < 8 THEN w := w || upper(word); END IF;
            word := '';
        END IF;
        IF c IS NULL OR c = ';' THEN
            IF cardinality(w) > 0 THEN
                ord := ord + 1;
                stmt := btrim(array_to_string(ch[s:i - 1], ''), E' \t\r\n');
                words := w;
                RETURN NEXT;
            END IF;
            w := '{}';
            s := i + 1;
            i := i + 1;
            CONTINUE;
        END IF;
        IF c = '-' AND i < n AND ch[i + 1] = '-' THEN            -- line comment
            WHILE i <= n AND ch[i] <> E'\n' LOOP i := i + 1; END LOOP;
            CONTINUE;
        END IF;
        IF c = '/' AND i < n AND ch[i + 1] = '*' THEN            -- block comment, nested
            depth := 1;
            i := i + 2;
            WHILE i <= n AND depth > 0 LOOP
                IF ch[i] = '/' AND i < n AND ch[i + 1] = '*' THEN depth := depth + 1; i := i + 2;
                ELSIF ch[i] = '*' AND i < n AND ch[i + 1] = '/' THEN depth := depth - 1; i := i + 2;
                ELSE i := i + 1;
                END IF;
            END LOOP;
            CONTINUE;
        END IF;
        IF c = '''' THEN                                         -- string; E'' honours backslashes
            esc := i > 1 AND upper(ch[i - 1]) = 'E' AND (i = 2 OR ch[i - 2] !~ '[[:alnum:]_$]');
            IF cardinality(w) < 8 THEN w := w || '?'::text; END IF;
            i := i + 1;
            WHILE i <= n LOOP
                IF esc AND ch[i] = E'\\' THEN i := i + 2; CONTINUE; END IF;
                IF ch[i] = '''' THEN
                    IF i < n AND ch[i + 1] = '''' THEN i := i + 2; CONTINUE; END IF;
                    EXIT;
                END IF;
                i := i + 1;
            END LOOP;
            i := i + 1;
            CONTINUE;
        END IF;
        IF c = '"' THEN                                          -- quoted identifier
            IF cardinality(w) < 8 THEN w := w || '?'::text; END IF;
            i := i + 1;
            WHILE i <= n LOOP
                IF ch[i] = '"' THEN
                    IF i < n AND ch[i + 1] = '"' THEN i := i + 2; CONTINUE; END IF;
                    EXIT;
                END IF;
                i := i + 1;
            END LOOP;
            i := i + 1;
            CONTINUE;
        END IF;
        IF c = '$' THEN                                          -- dollar quote: $$ or $tag$
            j := i + 1;
            WHILE j <= n AND ch[j] ~ '[[:alnum:]_]' LOOP j := j + 1; END LOOP;
            IF j <= n AND ch[j] = '$' AND (j = i + 1 OR ch[i + 1] !~ '[0-9]') THEN
                tag := array_to_string(ch[i:j], '');
                IF cardinality(w) < 8 THEN w := w || '?'::text; END IF;
                j := strpos(array_to_string(ch[j + 1:n], ''), tag);
                -- strpos counts characters, as the array does
                i := CASE WHEN j = 0 THEN n + 1 ELSE i + length(tag) + j - 1 + length(tag) END;
                CONTINUE;
            END IF;
        END IF;
        i := i + 1;                                              -- punctuation, blanks
    END LOOP;
END
$fn$;

-- Does a statement's word list carry a command tag's words, in order (CREATE UNIQUE INDEX
-- carries CREATE INDEX; CREATE OR REPLACE FUNCTION carries CREATE FUNCTION)?
CREATE OR REPLACE FUNCTION pgbaton_ddl.carries(words text[], tag text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
DECLARE
    want text[] := string_to_array(upper(tag), ' ');
    k    int := 1;
    x    text;
BEGIN
    IF cardinality(words) = 0 OR words[1] <> want[1] THEN
        RETURN false;
    END IF;
    FOREACH x IN ARRAY words LOOP
        IF k <= cardinality(want) AND x = want[k] THEN k := k + 1; END IF;
    END LOOP;
    RETURN k > cardinality(want);
END
$fn$;

-- The queue insert, as the owner of pgbaton_ddl (any role may run DDL; none may write the queue).
-- Callable only while a DDL command runs, and only for a role the session may act as: a forged
-- entry could otherwise run as another role on the other cluster.
CREATE OR REPLACE FUNCTION pgbaton_ddl.enqueue(p_role text, p_path text, p_tag text, p_objects text[],
                                               p_statement text, p_query text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM count(*) FROM pg_event_trigger_ddl_commands();  -- raises outside an event trigger
    IF NOT pg_has_role(session_user, p_role, 'MEMBER') THEN
        RAISE EXCEPTION 'pgbaton: role % may not queue DDL as %', session_user, p_role;
    END IF;
    INSERT INTO pgbaton_ddl.queue (node, id, role, search_path, tag, objects, statement, query)
    SELECT system_identifier::text, nextval('pgbaton_ddl.queue_id'), p_role, p_path, p_tag, p_objects,
           p_statement, p_query
    FROM pg_control_system();
END
$fn$;

-- sql_drop: remember what a DROP removes (for the record, and to pass over dropped temporary objects).
CREATE OR REPLACE FUNCTION pgbaton_ddl.on_drop()
RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
    kept text[];
BEGIN
    IF current_setting('pgbaton.ddl_capture', true) = 'off' THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(object_type || ' ' || object_identity), '{}') INTO kept
    FROM pg_event_trigger_dropped_objects()
    WHERE original AND NOT is_temporary AND schema_name IS DISTINCT FROM 'pgbaton_ddl';
    PERFORM set_config('pgbaton.ddl_dropped',
                       (coalesce(nullif(current_setting('pgbaton.ddl_dropped', true), ''), '{}')::text[] || kept
                        || ARRAY['-']::text[])::text, true);  -- '-': a sql_drop fired for this command
END
$fn$;

-- ddl_command_end: the statement of this command, isolated from the rest of its query string.
CREATE OR REPLACE FUNCTION pgbaton_ddl.on_ddl()
RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
    q        text := current_query();
    dropped  text[] := coalesce(nullif(current_setting('pgbaton.ddl_dropped', true), ''), '{}')::text[];
    objs     text[];
    all_temp boolean;
    had_drop boolean;
    total    int;
    seen     jsonb;
    key      text;
    nth      int;
    stmt     text;
    policy   text := pgbaton_ddl.unreplicable_policy();
BEGIN
    PERFORM set_config('pgbaton.ddl_dropped', '', true);
    IF current_setting('pgbaton.ddl_capture', true) = 'off'
       OR tg_tag IN ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'DROP PUBLICATION',
                     'CREATE SUBSCRIPTION', 'ALTER SUBSCRIPTION', 'DROP SUBSCRIPTION') THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(DISTINCT object_type || ' ' || object_identity)
                    FILTER (WHERE NOT in_extension), '{}'),
           bool_and(schema_name LIKE 'pg\_temp%' OR schema_name = 'pgbaton_ddl'), count(*)
      INTO objs, all_temp, total
    FROM pg_event_trigger_ddl_commands();
    had_drop := '-' = ANY (dropped);
    dropped := array_remove(dropped, '-');
    IF cardinality(dropped) = 0 AND ((total > 0 AND all_temp) OR (total = 0 AND had_drop)) THEN
        RETURN;  -- only temporary objects (or pgbaton's own) were touched
    END IF;
    objs := objs || dropped;

    -- the n-th command with this tag in this query string is its n-th statement carrying the tag
    key := pg_backend_pid() || '/' || statement_timestamp() || '/' || md5(q);
    seen := coalesce(nullif(current_setting('pgbaton.ddl_seen', true), ''), '{}')::jsonb;
    IF seen ->> 'key' IS DISTINCT FROM key THEN
        seen := jsonb_build_object('key', key);
    END IF;
    nth := coalesce((seen ->> tg_tag)::int, 0) + 1;
    PERFORM set_config('pgbaton.ddl_seen', jsonb_set(seen, ARRAY[tg_tag], to_jsonb(nth))::text, false);

    SELECT s.stmt INTO stmt
    FROM pgbaton_ddl.statements(q) AS s
    WHERE pgbaton_ddl.carries(s.words, tg_tag)
    ORDER BY s.ord OFFSET nth - 1 LIMIT 1;

    IF stmt IS NULL THEN
        -- run from a function or a DO block: the command's own text cannot be known
        IF policy = 'error' THEN
            RAISE EXCEPTION 'pgbaton: % inside a function or DO block cannot be replicated by the running migration',
                            tg_tag
                USING HINT = 'Run the statement on its own while the migration runs, or set '
                             'options.unreplicable_ddl: warn and repeat it by hand on the other cluster.';
        END IF;
        RAISE WARNING 'pgbaton: % inside a function or DO block is not replicated; repeat it on the other cluster',
                      tg_tag;
    END IF;
    PERFORM pgbaton_ddl.enqueue(current_user::text, current_setting('search_path'), tg_tag, objs, stmt, q);
END
$fn$;

-- Run a captured statement (in the apply worker, from the REPLICA trigger); returns a note
-- when it was not run as such.
CREATE OR REPLACE FUNCTION pgbaton_ddl.run(r pgbaton_ddl.queue)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    old_path text := current_setting('search_path');
    stmt     text;
    note     text;
    pos      int;
BEGIN
    IF r.statement IS NULL THEN
        note := 'not replicable: ' || r.tag || ' ran inside a function or DO block';
        RAISE WARNING 'pgbaton: DDL %/% %', r.node, r.id, note;
    ELSE
        -- CONCURRENTLY cannot run inside a transaction; the plain form has the same result.  The
        -- keyword sits among the leading words (CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY,
        -- DETACH PARTITION ... CONCURRENTLY); it is cut only where no quote or comment precedes it.
        stmt := r.statement;
        pos := regexp_instr(stmt, '\mconcurrently\M', 1, 1, 0, 'i');
        IF pos > 0 AND r.tag IN ('CREATE INDEX', 'DROP INDEX', 'REINDEX', 'ALTER TABLE')
           AND strpos(translate(substr(stmt, 1, pos - 1), '''"$-/', '#####'), '#') = 0 THEN
            stmt := overlay(stmt PLACING '' FROM pos FOR length('concurrently'));
        END IF;
        PERFORM set_config('search_path', r.search_path, true);
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.role) THEN
            PERFORM set_config('role', r.role, true);
        END IF;
        BEGIN
            EXECUTE stmt;
        EXCEPTION WHEN undefined_object THEN
            IF r.tag NOT IN ('GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES') THEN
                RAISE;
            END IF;
            note := 'skipped: ' || sqlerrm;  -- a role missing on this cluster
            RAISE WARNING 'pgbaton: DDL %/% %', r.node, r.id, note;
        END;
        PERFORM set_config('role', 'none', true);
        PERFORM set_config('search_path', old_path, true);
    END IF;
    RETURN note;
END
$fn$;

-- A row this node holds already was applied here, or came with the schema copy: skipped (the
-- initial copy of the queue repeats such rows).  Otherwise it is run, then stored.
CREATE OR REPLACE FUNCTION pgbaton_ddl.apply()
RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM pgbaton_ddl.queue q WHERE q.node = NEW.node AND q.id = NEW.id) THEN
        RETURN NULL;
    END IF;
    NEW.note := pgbaton_ddl.run(NEW);
    RETURN NEW;
EXCEPTION WHEN others THEN
    RAISE EXCEPTION 'pgbaton: DDL %/% (%) from another node failed here: %', NEW.node, NEW.id, NEW.tag, sqlerrm
        USING DETAIL = 'statement: ' || coalesce(NEW.statement, '(none)'),
              HINT = 'replication of this database waits until the statement can run; fix the cause '
                     '(see `pgbaton migrate status`)';
END
$fn$;

DROP TRIGGER IF EXISTS apply_ddl ON pgbaton_ddl.queue;
CREATE TRIGGER apply_ddl BEFORE INSERT ON pgbaton_ddl.queue FOR EACH ROW EXECUTE FUNCTION pgbaton_ddl.apply();
ALTER TABLE pgbaton_ddl.queue ENABLE REPLICA TRIGGER apply_ddl;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'pgbaton_ddl_end') THEN
        CREATE EVENT TRIGGER pgbaton_ddl_end ON ddl_command_end EXECUTE FUNCTION pgbaton_ddl.on_ddl();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'pgbaton_ddl_drop') THEN
        CREATE EVENT TRIGGER pgbaton_ddl_drop ON sql_drop EXECUTE FUNCTION pgbaton_ddl.on_drop();
    END IF;
END
$do$;
