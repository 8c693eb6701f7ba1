-- name: CreateOAuthScope :one
INSERT INTO oauth_scopes (name, description, built_in, created_at)
VALUES (@name, @description, false, @now)
RETURNING *;

-- name: GetOAuthScope :one
SELECT * FROM oauth_scopes WHERE name = @name;

-- name: ListOAuthScopes :many
SELECT * FROM oauth_scopes ORDER BY built_in DESC, name;

-- name: ListOAuthScopesNamed :many
-- The registered scopes among @names; a name missing from the answer is unknown.
SELECT name FROM oauth_scopes WHERE name = ANY (@names::text[]);

-- name: DeleteOAuthScope :execrows
-- Deletes a scope that is not built in and is allowed to no client (a client's scope fails
-- the statement on oauth_client_scopes_scope_fkey). The scope leaves every consent too, so
-- a scope created again later under the same name is never taken as already granted.
WITH pruned AS (
    UPDATE oauth_consents
    SET scopes = array_remove(scopes, @name::text)
    WHERE @name::text = ANY (scopes)
)
DELETE FROM oauth_scopes WHERE name = @name::text AND NOT built_in;
