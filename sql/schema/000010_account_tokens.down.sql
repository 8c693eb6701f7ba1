DROP TABLE IF EXISTS account_tokens;
