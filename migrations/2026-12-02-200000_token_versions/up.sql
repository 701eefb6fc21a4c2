-- Bearer tokens can be replaced (rolled by their user, re-issued by an admin, or the bootstrap
-- admin's ADMIN_TOKEN changed). Each replacement stores the new token's hash and increments
-- token_version in one UPDATE; a signed token carries the version it was issued at and is
-- valid only while that is the row's version (see application::tokens). Existing users and
-- their tokens (which carry no version) are at version 1.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 1
    CONSTRAINT users_token_version_positive CHECK (token_version >= 1);
