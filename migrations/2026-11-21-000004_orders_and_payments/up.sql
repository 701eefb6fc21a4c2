-- Orders, their items (price and name snapshots) and wallet payments.
--
-- Invariants enforced here: totals add up (total = subtotal - discount, never negative); a
-- status change stamps its instant; an order has at most one payment that ever succeeded
-- (partial unique index); each product appears once per order.

CREATE TABLE orders (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT      NOT NULL REFERENCES users (id),
    status          TEXT        NOT NULL
                    CHECK (status IN ('CREATED', 'PAID', 'CANCELED', 'REFUNDED')),
    subtotal        BIGINT      NOT NULL CHECK (subtotal >= 0),
    discount        BIGINT      NOT NULL CHECK (discount >= 0),
    total_amount    BIGINT      NOT NULL CHECK (total_amount >= 0),
    coupon_issue_id BIGINT      REFERENCES coupon_issues (id),
    created_at      TIMESTAMPTZ NOT NULL,
    -- An unpaid order is canceled by the expiry sweeper at this instant.
    expires_at      TIMESTAMPTZ NOT NULL,
    paid_at         TIMESTAMPTZ,
    -- When it was canceled or refunded.
    canceled_at     TIMESTAMPTZ,
    CONSTRAINT orders_totals CHECK (total_amount = subtotal - discount),
    CONSTRAINT orders_status_stamps CHECK (
        (status = 'CREATED'  AND paid_at IS NULL     AND canceled_at IS NULL)
     OR (status = 'PAID'     AND paid_at IS NOT NULL AND canceled_at IS NULL)
     OR (status = 'CANCELED' AND paid_at IS NULL     AND canceled_at IS NOT NULL)
     OR (status = 'REFUNDED' AND paid_at IS NOT NULL AND canceled_at IS NOT NULL)
    )
);

-- GET /orders?status&cursor (OrderRepository::list_for_user): newest first per user; the
-- optional status is a filter on this (short) per-user range.
CREATE INDEX orders_user_id_id_idx ON orders (user_id, id DESC);
-- The expiry sweeper (OrderRepository::claim_expired): only unpaid orders, by deadline.
CREATE INDEX orders_created_expires_at_idx ON orders (expires_at, id) WHERE status = 'CREATED';

CREATE TABLE order_items (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    BIGINT NOT NULL REFERENCES orders (id),
    product_id  BIGINT NOT NULL REFERENCES products (id),
    -- Snapshots taken when the order was placed.
    seller_id   BIGINT NOT NULL REFERENCES users (id),
    name        TEXT   NOT NULL,
    unit_price  BIGINT NOT NULL CHECK (unit_price >= 1),
    quantity    BIGINT NOT NULL CHECK (quantity >= 1),
    subtotal    BIGINT NOT NULL,
    CONSTRAINT order_items_subtotal CHECK (subtotal = unit_price * quantity),
    -- Every read of an order loads its items through this index (order_id prefix).
    CONSTRAINT order_items_order_product_key UNIQUE (order_id, product_id)
);

CREATE TABLE payments (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id      BIGINT      NOT NULL REFERENCES orders (id),
    user_id       BIGINT      NOT NULL REFERENCES users (id),
    method        TEXT        NOT NULL DEFAULT 'WALLET' CHECK (method IN ('WALLET')),
    amount        BIGINT      NOT NULL CHECK (amount >= 0),
    status        TEXT        NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED', 'REFUNDED')),
    -- Why an attempt failed (INSUFFICIENT_BALANCE); NULL for a success.
    failure_code  TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);

-- One succeeded payment per order, ever (a refunded payment still counts): a second one is a
-- unique violation, i.e. RepoError::Conflict. Also serves PaymentRepository::succeeded_for_order.
CREATE UNIQUE INDEX payments_one_success_per_order
    ON payments (order_id) WHERE status IN ('SUCCEEDED', 'REFUNDED');

-- The references that had to wait for the orders table.
ALTER TABLE wallet_transactions
    ADD CONSTRAINT wallet_transactions_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE product_stock_ledger
    ADD CONSTRAINT product_stock_ledger_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE coupon_issues
    ADD CONSTRAINT coupon_issues_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id);
