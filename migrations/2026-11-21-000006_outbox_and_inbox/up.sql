-- The transactional outbox (seed 003 OUTBOX_EVENTS) and the consumers' bookkeeping.

CREATE TABLE outbox_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The envelope of EVENTS.md, one column per field.
    event_id        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    aggregate_type  TEXT        NOT NULL,
    aggregate_id    TEXT        NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    payload         JSONB       NOT NULL,
    -- Delivery state.
    status          TEXT        NOT NULL CHECK (status IN ('READY', 'SENT', 'FAILED')),
    attempts        INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    -- Consumers de-duplicate on the event id: it must be unique at the source too.
    CONSTRAINT outbox_events_event_id_key UNIQUE (event_id),
    CONSTRAINT outbox_events_sent_shape CHECK ((status = 'SENT') = (sent_at IS NOT NULL))
);

-- The relay (OutboxRepository::claim_ready): READY rows, oldest first. Small, because rows
-- leave it once sent.
CREATE INDEX outbox_events_ready_idx ON outbox_events (id) INCLUDE (next_attempt_at)
    WHERE status = 'READY';
-- GET /admin/outbox?status (OutboxRepository::list with a status) and count_by_status
-- (metrics). Without a status the primary key serves the list.
CREATE INDEX outbox_events_status_id_idx ON outbox_events (status, id DESC);

-- Which events each consumer has handled (InboxRepository::record), written in the same
-- transaction as the consumer's effect.
CREATE TABLE inbox_events (
    consumer    TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT inbox_events_pkey PRIMARY KEY (consumer, event_id)
);

-- Where each consumer reads from next (InboxRepository::position / save_position).
CREATE TABLE consumer_positions (
    consumer    TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL CHECK (partition >= 0),
    next_offset BIGINT  NOT NULL CHECK (next_offset >= 0),
    CONSTRAINT consumer_positions_pkey PRIMARY KEY (consumer, topic, partition)
);
