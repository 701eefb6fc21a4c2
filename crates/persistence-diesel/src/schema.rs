//! The tables of `migrations/`, as diesel sees them. Written by hand (no `diesel print-schema`
//! here: it needs libpq); every column is exercised by the adapter tests, so a drift between
//! this file and the migrations fails a test.

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        token_hash -> Text,
        created_at -> Timestamptz,
        token_version -> BigInt,
    }
}

diesel::table! {
    token_secrets (id) {
        id -> SmallInt,
        secret -> Binary,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    wallets (user_id) {
        user_id -> BigInt,
        balance -> BigInt,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    wallet_transactions (id) {
        id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        amount -> BigInt,
        balance_after -> BigInt,
        order_id -> Nullable<BigInt>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    products (id) {
        id -> BigInt,
        seller_id -> BigInt,
        name -> Text,
        price -> BigInt,
        stock -> BigInt,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    product_stock_ledger (id) {
        id -> BigInt,
        product_id -> BigInt,
        delta -> BigInt,
        reason -> Text,
        order_id -> Nullable<BigInt>,
        note -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    coupons (id) {
        id -> BigInt,
        seller_id -> BigInt,
        scope_seller_id -> Nullable<BigInt>,
        name -> Text,
        discount_type -> Text,
        amount -> Nullable<BigInt>,
        percent -> Nullable<BigInt>,
        max_discount -> Nullable<BigInt>,
        min_order_amount -> BigInt,
        total_quantity -> BigInt,
        issued_quantity -> BigInt,
        per_user_limit -> BigInt,
        starts_at -> Timestamptz,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    coupon_issues (id) {
        id -> BigInt,
        coupon_id -> BigInt,
        user_id -> BigInt,
        seq -> BigInt,
        status -> Text,
        issued_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        order_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    orders (id) {
        id -> BigInt,
        user_id -> BigInt,
        status -> Text,
        subtotal -> BigInt,
        discount -> BigInt,
        total_amount -> BigInt,
        coupon_issue_id -> Nullable<BigInt>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        canceled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    order_items (id) {
        id -> BigInt,
        order_id -> BigInt,
        product_id -> BigInt,
        seller_id -> BigInt,
        name -> Text,
        unit_price -> BigInt,
        quantity -> BigInt,
        subtotal -> BigInt,
    }
}

diesel::table! {
    payments (id) {
        id -> BigInt,
        order_id -> BigInt,
        user_id -> BigInt,
        method -> Text,
        amount -> BigInt,
        status -> Text,
        failure_code -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    product_sales_daily (product_id, day) {
        product_id -> BigInt,
        day -> Date,
        quantity -> BigInt,
    }
}

diesel::table! {
    outbox_events (id) {
        id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        aggregate_type -> Text,
        aggregate_id -> Text,
        occurred_at -> Timestamptz,
        payload -> Jsonb,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        lease_token -> Nullable<BigInt>,
        lease_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    inbox_events (consumer, event_id) {
        consumer -> Text,
        event_id -> Text,
        handled_at -> Timestamptz,
    }
}

diesel::table! {
    consumer_positions (consumer, topic, partition) {
        consumer -> Text,
        topic -> Text,
        partition -> Integer,
        next_offset -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (user_id, method, path, key) {
        user_id -> BigInt,
        method -> Text,
        path -> Text,
        key -> Text,
        fingerprint -> Text,
        status -> Text,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        response_status -> Nullable<Integer>,
        content_type -> Nullable<Text>,
        body -> Nullable<Binary>,
        claim_token -> BigInt,
    }
}

diesel::joinable!(coupon_issues -> coupons (coupon_id));
diesel::joinable!(product_sales_daily -> products (product_id));
diesel::joinable!(order_items -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    wallets,
    wallet_transactions,
    products,
    product_stock_ledger,
    coupons,
    coupon_issues,
    orders,
    order_items,
    payments,
    product_sales_daily,
    outbox_events,
    inbox_events,
    consumer_positions,
    idempotency_keys,
);
