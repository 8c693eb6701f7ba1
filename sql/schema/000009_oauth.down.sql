DROP TABLE IF EXISTS oauth_consents;
DROP TABLE IF EXISTS oauth_authorization_codes;
-- Tokens issued to OAuth clients go with them: without their client_id they would pass for
-- first-party tokens.
DELETE FROM tokens WHERE client_id IS NOT NULL;
DELETE FROM sessions WHERE client_id IS NOT NULL;
DROP INDEX IF EXISTS tokens_client_id_idx;
DROP INDEX IF EXISTS sessions_client_user_idx;
ALTER TABLE tokens DROP COLUMN IF EXISTS scope, DROP COLUMN IF EXISTS client_id;
ALTER TABLE sessions DROP COLUMN IF EXISTS scope, DROP COLUMN IF EXISTS client_id;
DROP TABLE IF EXISTS browser_sessions;
DROP TABLE IF EXISTS oauth_client_scopes;
DROP TABLE IF EXISTS oauth_clients;
DROP TABLE IF EXISTS oauth_scopes;
