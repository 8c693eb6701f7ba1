-- name: GetOAuthConsent :one
-- A user's live consent to a client.
SELECT * FROM oauth_consents
WHERE user_id = @user_id AND client_id = @client_id AND revoked_at IS NULL;

-- name: GrantOAuthConsent :one
-- Remembers that a user allowed a client @scopes: added to what the live consent already
-- holds, or in place of a revoked one.
INSERT INTO oauth_consents (user_id, client_id, scopes, created_at, updated_at)
VALUES (@user_id, @client_id, @scopes::text[], @now, @now)
ON CONFLICT (user_id, client_id) DO UPDATE
SET scopes = CASE
        WHEN oauth_consents.revoked_at IS NULL THEN
            ARRAY(SELECT DISTINCT s FROM unnest(oauth_consents.scopes || excluded.scopes) AS s ORDER BY s)
        ELSE excluded.scopes
    END,
    created_at = CASE WHEN oauth_consents.revoked_at IS NULL THEN oauth_consents.created_at ELSE excluded.created_at END,
    revoked_at = NULL
RETURNING *;

-- name: ListOAuthConsents :many
-- A user's live consents, with the clients' names, most recently granted first.
SELECT c.client_id, c.scopes, c.created_at, c.updated_at, cl.name AS client_name
FROM oauth_consents c
JOIN oauth_clients cl ON cl.client_id = c.client_id
WHERE c.user_id = @user_id AND c.revoked_at IS NULL
ORDER BY c.updated_at DESC, c.client_id;

-- name: RevokeOAuthConsent :one
-- Withdraws a user's consent to a client, and with it every session and token the client
-- holds for the user. The user's row is locked first, as by every change to a user's
-- sessions and tokens. No row means there was no live consent.
WITH locked AS (
    SELECT u.id FROM users u WHERE u.id = @user_id FOR NO KEY UPDATE
),
consent AS (
    UPDATE oauth_consents oc
    SET revoked_at = sqlc.arg(now)::timestamptz
    FROM locked l
    WHERE oc.user_id = l.id AND oc.client_id = @client_id AND oc.revoked_at IS NULL
    RETURNING oc.user_id, oc.client_id
),
revoked AS (
    UPDATE sessions s
    SET revoked_at = sqlc.arg(now)::timestamptz, revoked_reason = 'consent_revoked'
    FROM consent c
    WHERE s.user_id = c.user_id AND s.client_id = c.client_id AND s.revoked_at IS NULL
    RETURNING s.id
),
killed AS (
    UPDATE tokens t
    SET invalidated_at = sqlc.arg(now)::timestamptz
    FROM consent c
    WHERE t.user_id = c.user_id
      AND t.invalidated_at IS NULL
      AND (t.client_id = c.client_id OR t.session_id IN (SELECT id FROM revoked))
    RETURNING t.id
)
SELECT c.client_id,
       (SELECT count(*) FROM revoked)::bigint AS revoked_sessions,
       (SELECT count(*) FROM killed)::bigint AS invalidated_tokens
FROM consent c;
