-- The key that signs bearer tokens (HMAC-SHA256, see application::tokens): one per database,
-- so that every instance on it accepts the others' tokens and tokens survive restarts.
--
-- One row at most (id = 1). The first instance to start stores it with
-- INSERT ... ON CONFLICT DO NOTHING and everyone reads it back: concurrent first starts agree.
-- It is never updated; whoever reads it can mint a token for any user and role.
CREATE TABLE token_secrets (
    id          SMALLINT    PRIMARY KEY CHECK (id = 1),
    secret      BYTEA       NOT NULL CHECK (octet_length(secret) = 32),
    -- When it was made (for a future rotation); set by the database, nobody reads it.
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
