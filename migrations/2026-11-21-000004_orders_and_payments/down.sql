ALTER TABLE coupon_issues DROP CONSTRAINT coupon_issues_order_id_fkey;
ALTER TABLE product_stock_ledger DROP CONSTRAINT product_stock_ledger_order_id_fkey;
ALTER TABLE wallet_transactions DROP CONSTRAINT wallet_transactions_order_id_fkey;
DROP TABLE payments;
DROP TABLE order_items;
DROP TABLE orders;
