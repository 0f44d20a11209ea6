-- The users of the recipe, shaped for Aurora DSQL:
-- * a random UUID key: DSQL has no SERIAL, and random keys spread writes across its storage;
-- * timestamptz, so both regions agree on the instant whatever their time zone;
-- * the unique email declared with the table: DSQL cannot add a UNIQUE constraint later.
-- Emails are stored normalised (trimmed, lower case) by the application: DSQL has no expression
-- index, so lower(email) could not be indexed.
CREATE TABLE IF NOT EXISTS users (
    id         uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    name       varchar(100) NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    email      varchar(255) NOT NULL UNIQUE,
    created_at timestamptz  NOT NULL DEFAULT now(),
    updated_at timestamptz  NOT NULL DEFAULT now()
);
