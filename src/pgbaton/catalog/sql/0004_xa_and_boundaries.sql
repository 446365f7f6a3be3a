-- pgbaton catalog, version 4: XA transactions kept durably between PREPARE and COMMIT.
--
-- A transaction prepared with XA PREPARE is stored as a batch in state 'prepared'
-- under a negative batch id (minus the id it was read under), so that no replay range
-- of positive ids can include its rows.  XA COMMIT moves it to a new, current batch id
-- in state 'closed' (replayed in its commit place); XA ROLLBACK deletes it.
ALTER TABLE batches DROP CONSTRAINT batches_status_check;
ALTER TABLE batches ADD CONSTRAINT batches_status_check
    CHECK (status IN ('open', 'closed', 'replayed', 'prepared'));
ALTER TABLE batches ADD COLUMN xa_xid text;
CREATE UNIQUE INDEX batches_prepared_xid ON batches (source, xa_xid) WHERE status = 'prepared';
