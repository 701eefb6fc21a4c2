-- Users (seed 000: one table, the role as a column) and their point wallets (seed 002).
--
-- Invariant enforced here: a balance is never negative. "balance = sum of the user's
-- transaction amounts" cannot be a constraint; the adapter writes both in one statement pair
-- inside one transaction, and the tests check the sum.

CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role        TEXT        NOT NULL CHECK (role IN ('ADMIN', 'SELLER', 'BUYER')),
    -- SHA-256 of the bearer token, hex. The token itself is never stored.
    token_hash  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_token_hash_key UNIQUE (token_hash)
);

CREATE TABLE wallets (
    user_id     BIGINT      PRIMARY KEY REFERENCES users (id),
    balance     BIGINT      NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT wallets_balance_not_negative CHECK (balance >= 0)
);

CREATE TABLE wallet_transactions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT      NOT NULL REFERENCES wallets (user_id),
    kind          TEXT        NOT NULL CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND')),
    -- Signed: a payment takes money out, a charge or a refund puts it in.
    amount        BIGINT      NOT NULL,
    balance_after BIGINT      NOT NULL CHECK (balance_after >= 0),
    -- The order a payment or refund belongs to (foreign key added with the orders table).
    order_id      BIGINT,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT wallet_transactions_amount_sign CHECK (
        (kind = 'PAYMENT' AND amount <= 0) OR (kind <> 'PAYMENT' AND amount >= 0)
    )
);

-- GET /balance/transactions (WalletRepository::transactions): newest first per user, keyset.
CREATE INDEX wallet_transactions_user_id_id_idx ON wallet_transactions (user_id, id DESC);
