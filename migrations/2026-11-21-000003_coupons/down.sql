DROP TABLE coupon_issues;
DROP TABLE coupons;
