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
