DROP TABLE wallet_transactions;
DROP TABLE wallets;
DROP TABLE users;
