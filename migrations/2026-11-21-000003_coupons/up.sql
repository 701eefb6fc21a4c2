-- First-come coupons (seed 002, 2-1) and their issues.
--
-- Invariants enforced here: never more issues than total_quantity (issued_quantity is a
-- counter changed only by a conditional update, bounded by a CHECK); a user's issues of one
-- coupon are numbered 1..per_user_limit and (coupon, user, seq) is unique, so even a bug in
-- the counting cannot hand out a second copy under the same number.

CREATE TABLE coupons (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Who published it: a seller, or an admin for a store-wide coupon.
    seller_id        BIGINT      NOT NULL REFERENCES users (id),
    -- Whose items it discounts: NULL means the whole order (an admin's coupon).
    scope_seller_id  BIGINT      REFERENCES users (id),
    name             TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    discount_type    TEXT        NOT NULL CHECK (discount_type IN ('AMOUNT', 'PERCENT')),
    amount           BIGINT,
    percent          BIGINT,
    max_discount     BIGINT,
    min_order_amount BIGINT      NOT NULL CHECK (min_order_amount >= 0),
    total_quantity   BIGINT      NOT NULL CHECK (total_quantity >= 1),
    issued_quantity  BIGINT      NOT NULL DEFAULT 0,
    per_user_limit   BIGINT      NOT NULL CHECK (per_user_limit >= 1),
    starts_at        TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT coupons_issued_within_total
        CHECK (issued_quantity BETWEEN 0 AND total_quantity),
    CONSTRAINT coupons_window CHECK (expires_at > starts_at),
    CONSTRAINT coupons_discount_shape CHECK (
        (discount_type = 'AMOUNT' AND amount >= 1 AND percent IS NULL AND max_discount IS NULL)
        OR (discount_type = 'PERCENT' AND amount IS NULL AND percent BETWEEN 1 AND 100
            AND (max_discount IS NULL OR max_discount >= 1))
    )
);

-- GET /coupons (CouponRepository::list_active): only coupons not yet expired are read.
CREATE INDEX coupons_expires_at_idx ON coupons (expires_at);

CREATE TABLE coupon_issues (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    coupon_id   BIGINT      NOT NULL REFERENCES coupons (id),
    user_id     BIGINT      NOT NULL REFERENCES users (id),
    -- 1..=per_user_limit: the user's n-th copy of this coupon.
    seq         BIGINT      NOT NULL CHECK (seq >= 1),
    -- EXPIRED is never stored: it is how an ISSUED coupon past its expiry is reported.
    status      TEXT        NOT NULL CHECK (status IN ('ISSUED', 'USED')),
    issued_at   TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    -- The order that uses it (foreign key added with the orders table).
    order_id    BIGINT,
    -- POST /coupons/{id}/issue (CouponRepository::issue: the per-user count and the backstop
    -- against a double issue) and CouponRepository::issued_counts (gate rebuild).
    CONSTRAINT coupon_issues_coupon_user_seq_key UNIQUE (coupon_id, user_id, seq),
    CONSTRAINT coupon_issues_used_shape CHECK (
        (status = 'USED' AND order_id IS NOT NULL AND used_at IS NOT NULL)
        OR (status = 'ISSUED' AND order_id IS NULL AND used_at IS NULL)
    )
);

-- GET /coupons/my (CouponRepository::issues_of_user): newest first per user.
CREATE INDEX coupon_issues_user_id_id_idx ON coupon_issues (user_id, id DESC);
