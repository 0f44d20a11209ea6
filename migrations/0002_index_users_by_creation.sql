-- GET /users pages newest first with a keyset cursor (created_at, id): this index serves it without
-- a sort or a scan. DSQL builds indexes only asynchronously (CREATE INDEX ASYNC returns a job id that
-- the runner waits for with sys.wait_for_job) and has no DESC indexes: it scans this one backwards.
CREATE INDEX ASYNC IF NOT EXISTS users_created_at_id_idx ON users (created_at, id);
