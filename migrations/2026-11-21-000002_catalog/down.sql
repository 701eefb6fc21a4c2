DROP TABLE product_stock_ledger;
DROP TABLE products;
