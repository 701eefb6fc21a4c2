-- The daily sales roll-up behind "popular products": net paid quantity per product and
-- business day, updated in the payment and refund transactions. The ranking's source of truth.
--
-- No CHECK on quantity: a refund on a later day than its payment makes that day's net negative.

CREATE TABLE product_sales_daily (
    product_id  BIGINT NOT NULL REFERENCES products (id),
    day         DATE   NOT NULL,
    quantity    BIGINT NOT NULL,
    -- SalesRepository::add upserts on it.
    CONSTRAINT product_sales_daily_pkey PRIMARY KEY (product_id, day)
);

-- GET /products/popular fallback (SalesRepository::top) and the ranking rebuild
-- (SalesRepository::day_totals): a range of days, covering the quantity.
CREATE INDEX product_sales_daily_day_idx ON product_sales_daily (day, product_id) INCLUDE (quantity);
