-- Claims are owned: the request that claims a key (or takes a dead claim over) stores a random
-- token with it, and completing or releasing the key is conditional on that token. A request
-- whose claim was taken over can then neither store its answer nor give the key back, and its
-- transaction, which stores the answer together with the change, rolls back.
ALTER TABLE idempotency_keys ADD COLUMN claim_token BIGINT NOT NULL DEFAULT 0;
