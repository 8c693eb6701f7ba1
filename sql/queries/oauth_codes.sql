-- name: CreateOAuthAuthorizationCode :exec
INSERT INTO oauth_authorization_codes (code_hash, client_id, user_id, redirect_uri, scope,
    code_challenge, code_challenge_method, nonce, auth_time, amr, browser_session_id, resources,
    created_at, expires_at)
VALUES (@code_hash, @client_id, @user_id, @redirect_uri, @scope,
    @code_challenge, 'S256', sqlc.narg(nonce), @auth_time, @amr, sqlc.narg(browser_session_id), @resources,
    @now, @expires_at);

-- name: RedeemOAuthAuthorizationCode :one
-- Consumes a code: only once, only before it expires, and only while its user is active.
-- When two requests race, the row's lock settles it: the second UPDATE waits, re-reads the
-- row, finds used_at set and consumes nothing. The caller checks the code's bindings in the
-- same transaction and rolls back when they fail, which leaves the code unused.
UPDATE oauth_authorization_codes c
SET used_at = sqlc.arg(now)::timestamptz
FROM users u
WHERE c.code_hash = @code_hash
  AND c.used_at IS NULL
  AND c.expires_at > sqlc.arg(now)::timestamptz
  AND u.id = c.user_id
  AND u.is_active
RETURNING c.code_hash, c.client_id, c.user_id, c.redirect_uri, c.scope, c.code_challenge, c.nonce,
    c.auth_time, c.amr, c.browser_session_id, c.resources, c.created_at, c.expires_at;

-- name: GetOAuthAuthorizationCodeForUpdate :one
-- A code that could not be redeemed: is it unknown, expired, or already used?
SELECT * FROM oauth_authorization_codes WHERE code_hash = @code_hash FOR UPDATE;

-- name: SetOAuthAuthorizationCodeSession :exec
-- Records the session of the tokens issued from a redeemed code.
UPDATE oauth_authorization_codes SET session_id = @session_id WHERE code_hash = @code_hash;

-- name: RevokeOAuthCodeSession :one
-- A redeemed code was presented again (RFC 6749 §4.1.2): the session issued from it is
-- revoked and every live token in it invalidated. The user's row is locked first, as by
-- every change to a user's sessions and tokens.
WITH locked AS (
    SELECT u.id FROM users u WHERE u.id = @user_id FOR NO KEY UPDATE
),
revoked AS (
    UPDATE sessions s
    SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = 'authorization_code_reused'
    FROM locked l
    WHERE s.id = @session_id AND s.user_id = l.id AND s.revoked_at IS NULL
    RETURNING s.id
),
killed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM locked l
    WHERE t.session_id = @session_id AND t.user_id = l.id AND t.invalidated_at IS NULL
    RETURNING t.id
)
SELECT (SELECT count(*) FROM revoked)::bigint AS revoked_sessions,
       (SELECT count(*) FROM killed)::bigint AS invalidated_tokens;

-- name: DeleteExpiredOAuthAuthorizationCodes :execrows
-- Periodic cleanup. A used code is kept until @before passes its expiry, so that its replay
-- is still recognised, and its tokens revoked, until then. SKIP LOCKED lets several
-- instances clean at once.
DELETE FROM oauth_authorization_codes
WHERE code_hash IN (
    SELECT expired.code_hash FROM oauth_authorization_codes expired
    WHERE expired.expires_at < @before
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);
