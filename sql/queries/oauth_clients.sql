-- name: CreateOAuthClient :one
INSERT INTO oauth_clients (client_id, name, client_type, secret_hash, redirect_uris, post_logout_redirect_uris,
    grant_types, skip_consent, token_endpoint_auth_method, id_token_signed_response_alg,
    created_at, updated_at, secret_rotated_at)
VALUES (@client_id, @name, @client_type, @secret_hash, @redirect_uris, @post_logout_redirect_uris,
    @grant_types, @skip_consent, @token_endpoint_auth_method, sqlc.narg(id_token_signed_response_alg),
    @now, @now, sqlc.narg(secret_rotated_at))
RETURNING *;

-- name: SetOAuthClientScopes :exec
-- Makes a client's allowed scopes exactly @scopes. A name that is not in the registry
-- fails on oauth_client_scopes_scope_fkey.
WITH removed AS (
    DELETE FROM oauth_client_scopes
    WHERE client_id = @client_id AND scope <> ALL (@scopes::text[])
)
INSERT INTO oauth_client_scopes (client_id, scope)
SELECT @client_id, s FROM unnest(@scopes::text[]) AS s
ON CONFLICT DO NOTHING;

-- name: GetOAuthClient :one
SELECT sqlc.embed(oauth_clients),
    ARRAY(SELECT cs.scope FROM oauth_client_scopes cs
          WHERE cs.client_id = oauth_clients.client_id ORDER BY cs.scope)::text[] AS scopes
FROM oauth_clients
WHERE oauth_clients.client_id = @client_id;

-- name: GetOAuthClientForUpdate :one
-- The client's row, locked for a change that reads it first.
SELECT sqlc.embed(oauth_clients),
    ARRAY(SELECT cs.scope FROM oauth_client_scopes cs
          WHERE cs.client_id = oauth_clients.client_id ORDER BY cs.scope)::text[] AS scopes
FROM oauth_clients
WHERE oauth_clients.client_id = @client_id
FOR NO KEY UPDATE OF oauth_clients;

-- name: ListOAuthClients :many
-- A page of clients, newest first.
SELECT sqlc.embed(oauth_clients),
    ARRAY(SELECT cs.scope FROM oauth_client_scopes cs
          WHERE cs.client_id = oauth_clients.client_id ORDER BY cs.scope)::text[] AS scopes
FROM oauth_clients
ORDER BY oauth_clients.created_at DESC, oauth_clients.client_id DESC
LIMIT @max_rows OFFSET @skip_rows;

-- name: UpdateOAuthClient :one
-- Everything but the type and the secret, which have their own rules.
UPDATE oauth_clients
SET name = @name,
    redirect_uris = @redirect_uris,
    post_logout_redirect_uris = @post_logout_redirect_uris,
    grant_types = @grant_types,
    skip_consent = @skip_consent,
    token_endpoint_auth_method = @token_endpoint_auth_method,
    id_token_signed_response_alg = sqlc.narg(id_token_signed_response_alg)
WHERE client_id = @client_id
RETURNING *;

-- name: RotateOAuthClientSecret :one
-- Replaces a confidential client's secret; the old one stops working at once.
UPDATE oauth_clients
SET secret_hash = @secret_hash, secret_rotated_at = sqlc.arg(now)::timestamptz
WHERE client_id = @client_id AND client_type = 'confidential'
RETURNING *;

-- name: DeleteOAuthClient :one
-- Deletes a client. Its codes, consents, sessions and tokens go with it (ON DELETE
-- CASCADE), so every token issued to it stops working at once.
DELETE FROM oauth_clients WHERE client_id = @client_id
RETURNING client_id, name;
