-- name: CreateSessionWithTokens :exec
-- One round trip for a login: the session (a refresh-token family), its first access and
-- refresh token, and the user's last_login; the right password also starts the count of
-- failed logins again. Foreign keys are checked at the end of the statement, so the tokens
-- may reference the session inserted beside them.
WITH new_session AS (
    INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, absolute_expires_at, user_agent, ip)
    VALUES (@session_id, @user_id, @now, @now, @session_expires_at, @session_absolute_expires_at, @user_agent, @ip)
),
new_tokens AS (
    INSERT INTO tokens (token_jti, token_type, user_id, session_id, created_at, expires_at)
    VALUES (@access_jti, 'access', @user_id, @session_id, @now, @access_expires_at),
           (@refresh_jti, 'refresh', @user_id, @session_id, @now, @refresh_expires_at)
)
UPDATE users SET last_login = sqlc.arg(now)::timestamptz,
    failed_login_attempts = 0, locked_until = NULL, last_failed_login_at = NULL
WHERE users.id = @user_id;
