-- Idempotency-Key records (API.md conventions): one row per (user, method, path, key).
--
-- A row is IN_PROGRESS from the first request's start until it completes (the response is
-- stored for replay) or is abandoned (the row is deleted). The primary key makes "two
-- concurrent first requests both start" impossible.

CREATE TABLE idempotency_keys (
    user_id        BIGINT      NOT NULL REFERENCES users (id),
    method         TEXT        NOT NULL,
    path           TEXT        NOT NULL,
    key            TEXT        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the request body, hex: a different body under the same key is refused.
    fingerprint    TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('IN_PROGRESS', 'COMPLETED')),
    started_at     TIMESTAMPTZ NOT NULL,
    completed_at   TIMESTAMPTZ,
    response_status INTEGER,
    content_type   TEXT,
    body           BYTEA,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, method, path, key),
    CONSTRAINT idempotency_keys_completed_shape CHECK (
        (status = 'IN_PROGRESS' AND completed_at IS NULL AND response_status IS NULL
            AND content_type IS NULL AND body IS NULL)
        OR (status = 'COMPLETED' AND completed_at IS NOT NULL AND response_status IS NOT NULL
            AND content_type IS NOT NULL AND body IS NOT NULL)
    )
);

-- For a periodic purge of records past their retention (24 h).
CREATE INDEX idempotency_keys_started_at_idx ON idempotency_keys (started_at);
