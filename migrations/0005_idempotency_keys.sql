-- Idempotency-Key on creates (handler/idempotency.py): one row per (caller, key), holding a
-- fingerprint of the request and, once the create committed, its first answer (status, body, Location).
-- * A table of its own, not columns on users: the answer must outlive later changes to the user, and
--   a key expires after 24 hours while the user stays.
-- * owner_scope is the caller (the token's sub, or "anonymous" with AUTH_MODE=none): two callers may
--   use the same key without meeting. The composite primary key is the lookup; DSQL declares it here
--   because it cannot add one later.
-- * attempt is the request that holds the key while its create is in flight (status still NULL); the
--   statement that stores the answer checks it, so an attempt that lost the key cannot write one.
-- * user_id is the user the create made: a replay is given only while that user exists (a replayed 201
--   whose Location answers 404 would mislead the client).
-- * TEXT for the body (JSON as a column type is unverified on DSQL), no default on later columns.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner_scope     text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     char(64)    NOT NULL,
    attempt         uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          integer,
    response_body   text,
    location        text,
    user_id         uuid,
    PRIMARY KEY (owner_scope, idempotency_key)
);

-- The cleanup deletes expired keys oldest first in batches (at most 1,000 rows per transaction, under
-- DSQL's 3,000): this index finds them without a scan.
CREATE INDEX ASYNC IF NOT EXISTS idempotency_keys_created_at_idx ON idempotency_keys (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO users_api;
