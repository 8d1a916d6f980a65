DROP TABLE webhook_calls;
ALTER TABLE workflows DROP COLUMN webhook_token_hash;
