-- name: DeleteExpiredTokens :execrows
-- Periodic cleanup of expired rows, in bounded batches. SKIP LOCKED lets several instances
-- clean at once: each takes rows nobody else holds, and none waits for another.
DELETE FROM tokens
WHERE tokens.id IN (
    SELECT expired.id FROM tokens expired
    WHERE expired.expires_at < @now
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);

-- name: DeleteExpiredSessions :execrows
-- A session expires with its newest refresh token, so its tokens have expired too and
-- were deleted by DeleteExpiredTokens; the cascade finds little or nothing left. Revoked
-- sessions are kept until they expire, so that reuse of their tokens is still recognised.
DELETE FROM sessions
WHERE sessions.id IN (
    SELECT expired.id FROM sessions expired
    WHERE expired.expires_at < @now
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);
