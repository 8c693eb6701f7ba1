-- name: CreateAccountToken :exec
INSERT INTO account_tokens (token_hash, purpose, user_id, email, created_at, expires_at)
VALUES (@token_hash, @purpose, @user_id, lower(@email), @created_at, @expires_at);

-- name: DeleteUserAccountTokens :execrows
-- Withdraws a user's outstanding links of one purpose: a new link replaces the older ones,
-- and a password change or reset makes every reset link useless.
DELETE FROM account_tokens WHERE user_id = @user_id AND purpose = @purpose;

-- name: ConsumeAccountToken :one
-- Uses a token: deletes it and returns what it was for. No row means the token is unknown,
-- already used, expired, or of another purpose. Of two requests racing with one token, exactly
-- one gets the row.
DELETE FROM account_tokens
WHERE token_hash = @token_hash AND purpose = @purpose AND expires_at > sqlc.arg(now)::timestamptz
RETURNING user_id, email, expires_at;

-- name: FindAccountToken :one
-- Looks a token up without using it, for the page that asks a person to confirm.
SELECT t.user_id, t.email, t.expires_at, u.username
FROM account_tokens t
JOIN users u ON u.id = t.user_id
WHERE t.token_hash = @token_hash AND t.purpose = @purpose AND t.expires_at > sqlc.arg(now)::timestamptz;

-- name: DeleteExpiredAccountTokens :execrows
-- Periodic cleanup, in bounded batches; SKIP LOCKED lets several instances clean at once.
DELETE FROM account_tokens
WHERE account_tokens.id IN (
    SELECT expired.id FROM account_tokens expired
    WHERE expired.expires_at < @now
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);
