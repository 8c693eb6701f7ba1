-- The OAuth 2.1 authorization server: clients, the scope registry, authorization codes,
-- consents and the browser's single sign-on sessions. No secret is stored: client secrets,
-- codes and cookie secrets are kept as SHA-256 digests (or HMAC-SHA-256 with a server
-- pepper) of values with at least 256 random bits.

-- The scopes a client may be allowed and a user may grant. The built-in ones are OpenID
-- Connect's and cannot be deleted.
CREATE TABLE oauth_scopes (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    built_in    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    CONSTRAINT oauth_scopes_name_check CHECK (name ~ '^[!#-\[\]-~]{1,64}$')
);

INSERT INTO oauth_scopes (name, description, built_in) VALUES
    ('openid', 'Sign in with your account', true),
    ('profile', 'Your username and the time your profile last changed', true),
    ('email', 'Your email address and whether it is verified', true),
    ('offline_access', 'Stay connected while you are away (a refresh token)', true);

CREATE TABLE oauth_clients (
    -- Public and random, so that client ids cannot be enumerated.
    client_id                    text PRIMARY KEY,
    name                         text NOT NULL,
    client_type                  text NOT NULL,
    -- SHA-256 (or HMAC-SHA-256 with the server's pepper) of a 256-bit random secret; NULL
    -- for a public client, which has none.
    secret_hash                  bytea,
    redirect_uris                text[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris    text[] NOT NULL DEFAULT '{}',
    grant_types                  text[] NOT NULL,
    skip_consent                 boolean NOT NULL DEFAULT false,
    token_endpoint_auth_method   text NOT NULL,
    -- NULL means the server's default.
    id_token_signed_response_alg text,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    secret_rotated_at            timestamptz,
    CONSTRAINT oauth_clients_client_type_check CHECK (client_type IN ('confidential', 'public')),
    CONSTRAINT oauth_clients_secret_check CHECK ((client_type = 'public') = (secret_hash IS NULL)),
    CONSTRAINT oauth_clients_auth_method_check CHECK (
        (client_type = 'public' AND token_endpoint_auth_method = 'none')
        OR (client_type = 'confidential' AND token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post'))),
    CONSTRAINT oauth_clients_grant_types_check CHECK (
        cardinality(grant_types) > 0
        AND grant_types <@ ARRAY['authorization_code', 'refresh_token', 'client_credentials', 'password']),
    CONSTRAINT oauth_clients_id_token_alg_check CHECK (id_token_signed_response_alg IN ('RS256', 'ES256', 'EdDSA'))
);

CREATE INDEX oauth_clients_created_at_idx ON oauth_clients (created_at DESC, client_id DESC);

CREATE TRIGGER oauth_clients_set_updated_at
    BEFORE UPDATE ON oauth_clients
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The scopes each client may request. A scope in use by a client cannot be deleted: the
-- foreign key refuses it, so no client is silently changed by a deletion.
CREATE TABLE oauth_client_scopes (
    client_id text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope     text NOT NULL REFERENCES oauth_scopes (name) ON DELETE RESTRICT,
    PRIMARY KEY (client_id, scope)
);

CREATE INDEX oauth_client_scopes_scope_idx ON oauth_client_scopes (scope);

-- The browser's single sign-on session, kept in a cookie. It is not a row of sessions: a
-- session there is a refresh-token family with tokens hanging off it, listed to the user as
-- a device; this is the login at Authly itself, from which any number of clients may be
-- authorized, and it carries no tokens.
CREATE TABLE browser_sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- SHA-256 of the cookie's 256-bit random secret; the cookie is looked up by it.
    secret_hash    bytea NOT NULL,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time      timestamptz NOT NULL,
    amr            text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    ip             text NOT NULL DEFAULT '',
    user_agent     text NOT NULL DEFAULT '',
    CONSTRAINT browser_sessions_secret_hash_key UNIQUE (secret_hash)
);

CREATE INDEX browser_sessions_user_id_idx ON browser_sessions (user_id, created_at);
CREATE INDEX browser_sessions_expires_at_idx ON browser_sessions (expires_at);

-- Tokens issued to an OAuth client carry the client and the scope they were granted. NULL is
-- a first-party token of the password API. A session's scope is what the user granted, the
-- bound of every refresh; a token's is what that token may do, which a refresh may narrow.
-- The foreign keys are added NOT VALID and validated apart, so that the check of existing
-- rows (all NULL) takes no lock that blocks logins and refreshes.
ALTER TABLE sessions ADD COLUMN client_id text, ADD COLUMN scope text;
ALTER TABLE tokens ADD COLUMN client_id text, ADD COLUMN scope text;
ALTER TABLE sessions ADD CONSTRAINT sessions_client_id_fkey
    FOREIGN KEY (client_id) REFERENCES oauth_clients (client_id) ON DELETE CASCADE NOT VALID;
ALTER TABLE tokens ADD CONSTRAINT tokens_client_id_fkey
    FOREIGN KEY (client_id) REFERENCES oauth_clients (client_id) ON DELETE CASCADE NOT VALID;
ALTER TABLE sessions VALIDATE CONSTRAINT sessions_client_id_fkey;
ALTER TABLE tokens VALIDATE CONSTRAINT tokens_client_id_fkey;
-- Partial, so first-party rows cost them nothing. They serve a client's deletion (the
-- cascade) and the revocation of a user's grant to one client.
CREATE INDEX sessions_client_user_idx ON sessions (client_id, user_id) WHERE client_id IS NOT NULL;
CREATE INDEX tokens_client_id_idx ON tokens (client_id) WHERE client_id IS NOT NULL;

-- One row per authorization code (RFC 6749 §4.1.2). The code itself is never stored.
CREATE TABLE oauth_authorization_codes (
    code_hash          bytea PRIMARY KEY,
    client_id          text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Exactly as the authorization request sent it; the token request must repeat it.
    redirect_uri       text NOT NULL,
    -- Space-delimited, as granted.
    scope              text NOT NULL DEFAULT '',
    -- PKCE (RFC 7636): only S256.
    code_challenge     text NOT NULL,
    code_challenge_method text NOT NULL DEFAULT 'S256',
    nonce              text,
    auth_time          timestamptz NOT NULL,
    amr                text[] NOT NULL DEFAULT '{}',
    browser_session_id uuid REFERENCES browser_sessions (id) ON DELETE SET NULL,
    -- RFC 8707 resource indicators: the audiences the tokens are for.
    resources          text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    used_at            timestamptz,
    -- The session of the tokens issued from the code, so that a second presentation of the
    -- code can revoke them (RFC 6749 §4.1.2).
    session_id         uuid REFERENCES sessions (id) ON DELETE SET NULL,
    CONSTRAINT oauth_authorization_codes_method_check CHECK (code_challenge_method = 'S256')
);

CREATE INDEX oauth_authorization_codes_expires_at_idx ON oauth_authorization_codes (expires_at);
CREATE INDEX oauth_authorization_codes_client_id_idx ON oauth_authorization_codes (client_id);
CREATE INDEX oauth_authorization_codes_user_id_idx ON oauth_authorization_codes (user_id);
CREATE INDEX oauth_authorization_codes_session_id_idx ON oauth_authorization_codes (session_id)
    WHERE session_id IS NOT NULL;
CREATE INDEX oauth_authorization_codes_browser_session_id_idx ON oauth_authorization_codes (browser_session_id)
    WHERE browser_session_id IS NOT NULL;

-- What a user has allowed a client: a later request for these scopes, or fewer, needs no
-- new consent. A revoked consent is kept, with its time, until the user grants again.
CREATE TABLE oauth_consents (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scopes     text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (user_id, client_id)
);

CREATE INDEX oauth_consents_client_id_idx ON oauth_consents (client_id);

CREATE TRIGGER oauth_consents_set_updated_at
    BEFORE UPDATE ON oauth_consents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
