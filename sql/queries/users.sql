-- name: CreateUser :one
INSERT INTO users (username, email, password_hash, is_active, is_verified, is_admin)
VALUES (@username, lower(@email), @password_hash, @is_active, @is_verified, @is_admin)
RETURNING *;

-- name: GetUserByID :one
SELECT * FROM users WHERE id = $1;

-- name: GetUserByUsername :one
SELECT * FROM users WHERE username = $1;

-- name: GetUserByEmail :one
SELECT * FROM users WHERE email = $1;

-- name: SetUserVerified :one
UPDATE users SET is_verified = true WHERE id = $1
RETURNING *;

-- name: GetUserByIDForUpdate :one
SELECT * FROM users WHERE id = $1 FOR UPDATE;

-- name: ListUsers :many
SELECT * FROM users
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows) OFFSET sqlc.arg(skip_rows);

-- name: LockActiveAdmins :many
-- Locks every active admin row, so that two concurrent demotions cannot both see another
-- admin left and remove the last one.
SELECT id FROM users WHERE is_admin AND is_active ORDER BY id FOR UPDATE;

-- name: UpdateUser :one
UPDATE users SET
    username      = coalesce(sqlc.narg(username), username),
    email         = coalesce(lower(sqlc.narg(email)), email),
    password_hash = coalesce(sqlc.narg(password_hash), password_hash),
    is_active     = coalesce(sqlc.narg(is_active), is_active),
    is_verified   = coalesce(sqlc.narg(is_verified), is_verified),
    is_admin      = coalesce(sqlc.narg(is_admin), is_admin)
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: DeleteUser :execrows
DELETE FROM users WHERE id = $1;

-- name: MarkEmailVerified :one
-- Verification by link: only while the account still has the address the link was sent to.
UPDATE users SET is_verified = true WHERE id = @id AND email = @email
RETURNING *;

-- name: SetUserPassword :one
-- A password reset also clears the account's lockout: whoever follows the link has proved
-- they read the account's mail.
UPDATE users SET password_hash = @password_hash,
    failed_login_attempts = CASE WHEN sqlc.arg(clear_lockout)::boolean THEN 0 ELSE failed_login_attempts END,
    locked_until = CASE WHEN sqlc.arg(clear_lockout)::boolean THEN NULL ELSE locked_until END,
    last_failed_login_at = CASE WHEN sqlc.arg(clear_lockout)::boolean THEN NULL ELSE last_failed_login_at END
WHERE id = @id
RETURNING *;

-- name: RehashUserPassword :execrows
-- A login replaces a hash made with an old algorithm or cost, unless the password changed
-- meanwhile.
UPDATE users SET password_hash = @new_hash WHERE id = @id AND password_hash = @old_hash;

-- name: SetUserEmail :one
-- A confirmed email change: the new address is proven, so the account is verified.
UPDATE users SET email = lower(@email), is_verified = true WHERE id = @id
RETURNING *;
