-- A session now has two ends. expires_at is when it ends unless it is used: the expiry of its
-- newest refresh token, moved forward by each rotation. absolute_expires_at is fixed at login
-- (AUTHLY_SESSION_MAX_LIFETIME) and no rotation moves it.
ALTER TABLE sessions ADD COLUMN absolute_expires_at timestamptz;

-- Sessions opened before this migration end no later than they already would have.
UPDATE sessions SET absolute_expires_at = expires_at;

ALTER TABLE sessions ALTER COLUMN absolute_expires_at SET NOT NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_expiry_check CHECK (expires_at <= absolute_expires_at);
