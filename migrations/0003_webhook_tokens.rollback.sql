ALTER TABLE workflows DROP COLUMN webhook_token_hash;
