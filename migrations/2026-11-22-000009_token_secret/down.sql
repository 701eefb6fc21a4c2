DROP TABLE token_secrets;
