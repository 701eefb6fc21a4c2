DROP TABLE consumer_positions;
DROP TABLE inbox_events;
DROP TABLE outbox_events;
