-- name: GetAccessTokenUser :one
-- The bearer check: one indexed lookup that the token was issued, is an access token, has
-- not been invalidated, has not expired as issued (so a re-signed exp cannot stretch it),
-- and belongs to a user who still exists and is active.
SELECT sqlc.embed(users), t.session_id
FROM tokens t
JOIN users ON users.id = t.user_id
WHERE t.token_jti = @jti
  AND t.token_type = 'access'
  AND t.invalidated_at IS NULL
  AND t.expires_at > sqlc.arg(expired_before)::timestamptz
  AND users.is_active;

-- name: InvalidateUserTokens :execrows
-- Kills every live token of a user, in every session. The count is what this call
-- invalidated, not what was already dead.
UPDATE tokens SET invalidated_at = sqlc.arg(now)::timestamptz
WHERE user_id = sqlc.arg(user_id) AND invalidated_at IS NULL;
