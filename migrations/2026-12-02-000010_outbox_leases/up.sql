-- Outbox leases: the relay claims rows with a lease in one short transaction, publishes them
-- with no transaction open, then records the outcomes in another short transaction, only for
-- the rows its lease still holds (OutboxRepository::claim_ready / settle). Before, it held the
-- rows' locks and a pooled connection idle in transaction for as long as the broker took to
-- answer.
--
-- A row is leased while lease_token is set; lease_until is when another relay may claim it
-- again (its relay is presumed dead). Settling ends the lease, so only READY rows carry one.
ALTER TABLE outbox_events
    ADD COLUMN lease_token BIGINT,
    ADD COLUMN lease_until TIMESTAMPTZ,
    ADD CONSTRAINT outbox_events_lease_shape CHECK (
        (lease_token IS NULL) = (lease_until IS NULL)
        AND (lease_token IS NULL OR status = 'READY')
    );

-- One token per claim, never reused: a relay that outlived its lease cannot be mistaken for
-- the relay that claimed the rows after it.
CREATE SEQUENCE outbox_lease_token_seq AS BIGINT;
