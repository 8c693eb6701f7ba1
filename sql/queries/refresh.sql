-- name: LockUserSession :one
-- Opens a refresh-token rotation (RFC 9700 §4.14.2). A session is one refresh-token family:
-- each rotation invalidates the presented refresh token and the access token issued beside
-- it, and issues the next pair into the same session. The user's row is locked first, as by
-- every change to a user's sessions and tokens, so that rotations, reuse revocations,
-- logouts and session revocations of one user run one at a time and each sees what the one
-- before it committed. The session's absolute end never changes, so reading it here is safe.
SELECT u.is_active, s.absolute_expires_at
FROM users u
JOIN sessions s ON s.user_id = u.id
WHERE u.id = @user_id AND s.id = @session_id
FOR NO KEY UPDATE OF u;

-- name: RevokeReusedRefreshFamily :one
-- Reuse detection. The presented refresh token was rotated away when a newer refresh token
-- exists in its session; a token that was merely revoked (logout, session revocation) has
-- none. On reuse the whole family dies: the session is revoked, if it was not already, and
-- every live token in it is invalidated, the newest pair included. No row means no reuse.
WITH presented AS (
    SELECT t.session_id
    FROM tokens t
    WHERE t.token_jti = @presented_jti
      AND t.token_type = 'refresh'
      AND t.user_id = @user_id
      AND t.session_id = @session_id
      AND t.invalidated_at IS NOT NULL
      AND EXISTS (
          SELECT 1 FROM tokens successor
          WHERE successor.session_id = t.session_id
            AND successor.token_type = 'refresh'
            AND successor.id > t.id
      )
),
revoked AS (
    UPDATE sessions s
    SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = 'refresh_token_reused'
    FROM presented p
    WHERE s.id = p.session_id AND s.revoked_at IS NULL
    RETURNING s.id
),
killed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM presented p
    WHERE t.session_id = p.session_id AND t.invalidated_at IS NULL
    RETURNING t.id
)
SELECT p.session_id,
       (SELECT count(*) FROM revoked)::bigint AS revoked_sessions,
       (SELECT count(*) FROM killed)::bigint AS invalidated_tokens
FROM presented p;

-- name: RotateRefreshTokenAtOnce :one
-- The rotation in one statement: the presented refresh token is consumed only if it is
-- live, its session is neither revoked nor past its idle or absolute end, and its user is
-- active; then the sibling access token dies, the new pair is stored and the session is
-- touched. Everything hangs on the consumed row, so when none is consumed nothing changes
-- and it returns 0; the token row's lock settles a race by itself, since a second UPDATE
-- waits, re-reads the row and finds it invalidated.
-- Alone, it is the usual rotation in one round trip (refresh.go). Its new refresh
-- token is then signed without knowing the session's absolute end, so the statement
-- applies only when that end is not before the token's expiry; every other case falls to
-- the transactional path, which runs this same statement after LockUserSession with the
-- expiry already capped. The user's row is locked first, as by LockUserSession: "locked"
-- is joined into "consumed", so its lock is taken before the UPDATE locks the token's
-- row, and a logout or revocation that committed meanwhile is seen.
WITH locked AS (
    SELECT u.id
    FROM users u
    WHERE u.id = @user_id AND u.is_active
    FOR NO KEY UPDATE
),
consumed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM sessions s, locked u
    WHERE t.token_jti = @presented_jti
      AND t.token_type = 'refresh'
      AND t.invalidated_at IS NULL
      AND t.expires_at > sqlc.arg(now)::timestamptz
      AND t.user_id = @user_id
      AND t.session_id = @session_id
      AND s.id = t.session_id
      AND s.revoked_at IS NULL
      AND s.absolute_expires_at > sqlc.arg(now)::timestamptz
      AND s.absolute_expires_at >= sqlc.arg(refresh_expires_at)::timestamptz
      AND s.last_used_at > sqlc.arg(idle_cutoff)::timestamptz
      AND u.id = t.user_id
    RETURNING t.session_id, t.user_id
),
sibling_access AS (
    UPDATE tokens a
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM consumed c
    WHERE a.session_id = c.session_id
      AND a.token_type = 'access'
      AND a.invalidated_at IS NULL
),
new_tokens AS (
    INSERT INTO tokens (token_jti, token_type, user_id, session_id, created_at, expires_at)
    SELECT sqlc.arg(access_jti)::text, 'access', c.user_id, c.session_id,
           sqlc.arg(now)::timestamptz, sqlc.arg(access_expires_at)::timestamptz
    FROM consumed c
    UNION ALL
    SELECT sqlc.arg(refresh_jti)::text, 'refresh', c.user_id, c.session_id,
           sqlc.arg(now)::timestamptz, sqlc.arg(refresh_expires_at)::timestamptz
    FROM consumed c
),
touched_session AS (
    UPDATE sessions s
    SET last_used_at = sqlc.arg(now)::timestamptz,
        expires_at = sqlc.arg(refresh_expires_at)::timestamptz,
        ip = sqlc.arg(ip)::text,
        user_agent = sqlc.arg(user_agent)::text
    FROM consumed c
    WHERE s.id = c.session_id
)
SELECT count(*) FROM consumed;
