-- name: LockUser :one
-- Locks a user's row for a change to the user's sessions and tokens. Every change to
-- sessions below runs after it (or after another lock on the user's row, such as the
-- login's UPDATE of last_login) in the same transaction; see LockUserSession. A session
-- is live when it is not revoked and not past its expiry, its absolute end or its idle
-- timeout.
SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE;

-- name: ListLiveSessions :many
SELECT id, created_at, last_used_at, expires_at, ip, user_agent
FROM sessions
WHERE user_id = @user_id
  AND revoked_at IS NULL
  AND expires_at > sqlc.arg(now)::timestamptz
  AND absolute_expires_at > sqlc.arg(now)::timestamptz
  AND last_used_at > sqlc.arg(idle_cutoff)::timestamptz
ORDER BY created_at DESC, id DESC;

-- name: RevokeSession :one
-- Revokes one live session of a user and invalidates its tokens. No row means the user
-- has no such live session.
WITH revoked AS (
    UPDATE sessions s
    SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = sqlc.arg(reason)::text
    WHERE s.id = @session_id
      AND s.user_id = @user_id
      AND s.revoked_at IS NULL
      AND s.expires_at > sqlc.arg(now)::timestamptz
      AND s.absolute_expires_at > sqlc.arg(now)::timestamptz
      AND s.last_used_at > sqlc.arg(idle_cutoff)::timestamptz
    RETURNING s.id
),
killed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM revoked r
    WHERE t.session_id = r.id AND t.invalidated_at IS NULL
    RETURNING t.id
)
SELECT r.id, (SELECT count(*) FROM killed)::bigint AS invalidated_tokens
FROM revoked r;

-- name: RevokeUserSessions :execrows
-- Marks every unexpired session of a user revoked. Their tokens are invalidated beside it
-- with InvalidateUserTokens. The count is what this call revoked.
UPDATE sessions
SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = sqlc.arg(reason)::text
WHERE user_id = @user_id
  AND revoked_at IS NULL
  AND expires_at > sqlc.arg(now)::timestamptz;

-- name: RevokeSessionsOverLimit :exec
-- Concurrent session control: keeps a user's newest @max_sessions live sessions, revokes
-- the older ones, invalidates their tokens and records each revocation as an audit event of
-- type @event_type.
WITH evicted AS (
    SELECT live.id
    FROM sessions live
    WHERE live.user_id = @user_id
      AND live.revoked_at IS NULL
      AND live.expires_at > sqlc.arg(now)::timestamptz
      AND live.absolute_expires_at > sqlc.arg(now)::timestamptz
      AND live.last_used_at > sqlc.arg(idle_cutoff)::timestamptz
    ORDER BY live.created_at DESC, live.id DESC
    OFFSET @max_sessions
),
revoked AS (
    UPDATE sessions s
    SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = sqlc.arg(reason)::text
    FROM evicted e
    WHERE s.id = e.id
    RETURNING s.id
),
killed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM revoked r
    WHERE t.session_id = r.id AND t.invalidated_at IS NULL
)
INSERT INTO audit_events (user_id, event_type, ip, user_agent, details, created_at)
SELECT sqlc.arg(user_id)::uuid, @event_type, sqlc.narg(ip), sqlc.narg(user_agent),
    jsonb_build_object('session_id', r.id, 'reason', sqlc.arg(reason)::text), sqlc.arg(now)::timestamptz
FROM revoked r;

-- name: EndUserSessions :one
-- Revokes every unexpired session of a user, except @keep_session_id when it is set, with
-- @reason, and invalidates every live token outside that session. The counts are what this
-- call changed. Run it after LockUser (or another lock on the user's row).
WITH revoked AS (
    UPDATE sessions s
    SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = sqlc.arg(reason)::text
    WHERE s.user_id = sqlc.arg(user_id)::uuid
      AND s.revoked_at IS NULL
      AND s.expires_at > sqlc.arg(now)::timestamptz
      AND (sqlc.narg(keep_session_id)::uuid IS NULL OR s.id <> sqlc.narg(keep_session_id)::uuid)
    RETURNING s.id
),
killed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    WHERE t.user_id = sqlc.arg(user_id)::uuid
      AND t.invalidated_at IS NULL
      AND (sqlc.narg(keep_session_id)::uuid IS NULL OR t.session_id <> sqlc.narg(keep_session_id)::uuid)
    RETURNING t.id
)
SELECT (SELECT count(*) FROM revoked)::bigint AS revoked_sessions,
    (SELECT count(*) FROM killed)::bigint AS invalidated_tokens;
