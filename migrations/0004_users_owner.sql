-- Every profile has an owner: the `sub` claim of the Cognito ID token that created it (handler/users.py
-- puts `owner_sub = <sub>` in every statement a non-administrator can run).
-- * Nullable, no default: DSQL cannot ADD COLUMN with DEFAULT or NOT NULL, and a row with no owner has
--   a meaning: it belongs to no one and only members of the `admins` group see or change it. That is
--   every row written before this migration, and every row an administrator creates with POST /users.
--   Nothing is backfilled: nobody's sub is known for them.
-- * One profile per sub: a unique index (DSQL adds uniqueness only as CREATE UNIQUE INDEX ASYNC; the
--   runner waits for the job with sys.wait_for_job). NULLs are distinct, so unowned rows never collide.
--   It also serves the lookups by owner (/users/me) without a scan.
ALTER TABLE users ADD COLUMN IF NOT EXISTS owner_sub text;

CREATE UNIQUE INDEX ASYNC IF NOT EXISTS users_owner_sub_idx ON users (owner_sub);
