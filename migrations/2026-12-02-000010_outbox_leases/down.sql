DROP SEQUENCE outbox_lease_token_seq;
ALTER TABLE outbox_events
    DROP CONSTRAINT outbox_events_lease_shape,
    DROP COLUMN lease_until,
    DROP COLUMN lease_token;
