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
