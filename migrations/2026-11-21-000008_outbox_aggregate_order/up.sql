-- The relay publishes one aggregate's events in order (OutboxRepository::claim_ready must not
-- hand out an event while an older READY event of the same aggregate is backing off or held
-- by another relay). The claim looks up the older READY events of each candidate's aggregate
-- through this index.
CREATE INDEX outbox_events_ready_aggregate_idx
    ON outbox_events (aggregate_id, aggregate_type, id) WHERE status = 'READY';
