-- Progressive login lockout. Accounts keep their state in users; login names that match no
-- account keep the same state in login_failures, under the same rule (login_lock_until), so
-- that the two cannot be told apart.
--
-- An attempt is counted as a failure before its password is checked, in one statement that
-- queues on the row: attempts racing on several instances are counted one after another, and
-- no more passwords are ever checked than the threshold allows before the lock. A right
-- password then resets the count. A locked login is left as it is.

-- name: ClaimLoginAttempt :one
-- One round trip before the password check: finds the account by username or by email (one of
-- the two is NULL) and counts the attempt on it, or, when no account has that name, on the
-- login name. account_id is NULL for an unknown name. claimed is false when the login is
-- locked: then nothing was counted. The counting UPDATE and upsert queue on their row, so
-- racing attempts are counted one after another even though the account was read from the
-- statement's snapshot.
--
-- The statement commits without waiting for its commit record to reach the disk
-- (synchronous_commit off, for this transaction only). Other sessions see the count as soon
-- as it commits either way, so racing attempts stay counted one after another; what a
-- PostgreSQL crash can lose is the count of the last few hundred milliseconds' attempts. That
-- spares every login one disk flush, which costs more CPU than the rest of the statement.
WITH relaxed_commit AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
),
account AS (
    SELECT u.id, u.password_hash, u.is_active, u.is_verified
    FROM users u
    WHERE u.username = sqlc.narg(username)::citext OR u.email = sqlc.narg(email)::citext
),
account_claim AS (
    UPDATE users SET
        failed_login_attempts = login_failure_count(users.failed_login_attempts, users.last_failed_login_at, @forget_before),
        locked_until = login_lock_until(
            login_failure_count(users.failed_login_attempts, users.last_failed_login_at, @forget_before),
            @threshold, @base_lock_seconds, @max_lock_seconds, sqlc.arg(now)::timestamptz),
        last_failed_login_at = sqlc.arg(now)::timestamptz
    FROM account
    WHERE users.id = account.id
      AND (users.locked_until IS NULL OR users.locked_until <= sqlc.arg(now)::timestamptz)
    RETURNING users.failed_login_attempts AS attempts, users.locked_until
),
name_claim AS (
    INSERT INTO login_failures AS f (login_name, failed_attempts, locked_until, last_failed_at)
    SELECT @login_name, 1, login_lock_until(1, @threshold, @base_lock_seconds, @max_lock_seconds, sqlc.arg(now)::timestamptz),
        sqlc.arg(now)::timestamptz
    WHERE NOT EXISTS (SELECT 1 FROM account)
    ON CONFLICT (login_name) DO UPDATE SET
        failed_attempts = login_failure_count(f.failed_attempts, f.last_failed_at, @forget_before),
        locked_until = login_lock_until(
            login_failure_count(f.failed_attempts, f.last_failed_at, @forget_before),
            @threshold, @base_lock_seconds, @max_lock_seconds, sqlc.arg(now)::timestamptz),
        last_failed_at = sqlc.arg(now)::timestamptz
    WHERE f.locked_until IS NULL OR f.locked_until <= sqlc.arg(now)::timestamptz
    RETURNING f.failed_attempts AS attempts, f.locked_until
),
claim AS (
    SELECT attempts, locked_until FROM account_claim
    UNION ALL
    SELECT attempts, locked_until FROM name_claim
)
SELECT a.id AS account_id, a.password_hash, a.is_active, a.is_verified,
    (c.attempts IS NOT NULL)::boolean AS claimed, coalesce(c.attempts, 0)::integer AS attempts, c.locked_until
FROM relaxed_commit
LEFT JOIN account a ON true
LEFT JOIN claim c ON true;

-- name: GetUserLockedUntil :one
SELECT locked_until FROM users WHERE id = $1;

-- name: GetLoginNameLockedUntil :one
SELECT locked_until FROM login_failures WHERE login_name = $1;

-- name: RefundUserLoginAttempt :exec
-- Takes back an attempt whose password could not be checked (the server was busy), unless
-- another attempt was counted since. The lock it may have set goes too: the attempt was only
-- claimed while the account was not locked.
UPDATE users SET
    failed_login_attempts = failed_login_attempts - 1,
    locked_until = NULL
WHERE id = @user_id AND failed_login_attempts = @claimed_attempts AND failed_login_attempts > 0;

-- name: RefundLoginNameAttempt :exec
UPDATE login_failures SET
    failed_attempts = failed_attempts - 1,
    locked_until = NULL
WHERE login_name = @login_name AND failed_attempts = @claimed_attempts AND failed_attempts > 0;

-- name: ResetUserLoginFailures :exec
-- A right password: the count starts again.
UPDATE users SET failed_login_attempts = 0, locked_until = NULL, last_failed_login_at = NULL
WHERE id = $1 AND (failed_login_attempts <> 0 OR locked_until IS NOT NULL OR last_failed_login_at IS NOT NULL);

-- name: UnlockUser :one
-- An admin clears an account's lock and its failure count.
UPDATE users SET failed_login_attempts = 0, locked_until = NULL, last_failed_login_at = NULL
WHERE id = $1
RETURNING *;

-- name: DeleteLapsedLoginFailures :execrows
-- Periodic cleanup, in bounded batches: a row whose count has lapsed is the same as no row.
DELETE FROM login_failures
WHERE login_failures.login_name IN (
    SELECT lapsed.login_name FROM login_failures lapsed
    WHERE lapsed.last_failed_at <= @forget_before
      AND (lapsed.locked_until IS NULL OR lapsed.locked_until <= sqlc.arg(now)::timestamptz)
    LIMIT @batch_size
    FOR UPDATE SKIP LOCKED
);
