DROP TABLE product_sales_daily;
