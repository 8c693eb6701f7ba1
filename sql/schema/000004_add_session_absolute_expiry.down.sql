ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_expiry_check;
ALTER TABLE sessions DROP COLUMN IF EXISTS absolute_expires_at;
