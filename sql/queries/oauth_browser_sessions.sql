-- name: CreateBrowserSession :one
INSERT INTO browser_sessions (secret_hash, user_id, auth_time, amr, created_at, last_seen_at, expires_at, ip, user_agent)
VALUES (@secret_hash, @user_id, @auth_time, @amr, @now, @now, @expires_at, @ip, @user_agent)
RETURNING *;

-- name: GetBrowserSessionBySecret :one
-- The live session whose cookie secret hashes to @secret_hash: not revoked, not past its
-- end or its idle timeout, and of an active user.
SELECT b.*
FROM browser_sessions b
JOIN users u ON u.id = b.user_id
WHERE b.secret_hash = @secret_hash
  AND b.revoked_at IS NULL
  AND b.expires_at > sqlc.arg(now)::timestamptz
  AND b.last_seen_at > sqlc.arg(idle_cutoff)::timestamptz
  AND u.is_active;

-- name: TouchBrowserSession :one
-- Marks a live session as seen now, which holds off its idle timeout.
UPDATE browser_sessions b
SET last_seen_at = sqlc.arg(now)::timestamptz, ip = @ip, user_agent = @user_agent
WHERE b.id = @id
  AND b.revoked_at IS NULL
  AND b.expires_at > sqlc.arg(now)::timestamptz
  AND b.last_seen_at > sqlc.arg(idle_cutoff)::timestamptz
RETURNING *;

-- name: RevokeBrowserSession :execrows
UPDATE browser_sessions
SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = @reason
WHERE id = @id AND revoked_at IS NULL;

-- name: RevokeUserBrowserSessions :execrows
UPDATE browser_sessions
SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = @reason
WHERE user_id = @user_id AND revoked_at IS NULL AND expires_at > sqlc.arg(now)::timestamptz;

-- name: DeleteExpiredBrowserSessions :execrows
-- Periodic cleanup, in batches, safe from several instances at once.
DELETE FROM browser_sessions
WHERE id IN (
    SELECT expired.id FROM browser_sessions expired
    WHERE expired.expires_at < @before
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);
