-- Catalog products and the stock ledger.
--
-- Invariants enforced here: stock stays within 0..=MAX_STOCK (domain::product::MAX_STOCK), price
-- within 1..=MAX_PRICE. "stock = sum of the ledger deltas" is kept by writing the ledger row in
-- the same transaction as every conditional stock update; the tests check the sum.

CREATE TABLE products (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seller_id   BIGINT      NOT NULL REFERENCES users (id),
    name        TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    price       BIGINT      NOT NULL CHECK (price BETWEEN 1 AND 1000000000),
    stock       BIGINT      NOT NULL,
    status      TEXT        NOT NULL CHECK (status IN ('ON_SALE', 'PAUSED', 'OFF')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT products_stock_in_range CHECK (stock BETWEEN 0 AND 1000000000)
);

-- GET /products?status= (ProductRepository::list with a status): filter and order by id.
-- Without a status the primary key serves the same query.
CREATE INDEX products_status_id_idx ON products (status, id);

CREATE TABLE product_stock_ledger (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  BIGINT      NOT NULL REFERENCES products (id),
    delta       BIGINT      NOT NULL,
    reason      TEXT        NOT NULL CHECK (reason IN ('INITIAL', 'ORDER', 'CANCEL', 'ADJUST')),
    -- Foreign key added with the orders table.
    order_id    BIGINT,
    note        TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

-- GET /products/{id}/stock-ledger (ProductRepository::ledger): newest first per product.
CREATE INDEX product_stock_ledger_product_id_id_idx ON product_stock_ledger (product_id, id DESC);
