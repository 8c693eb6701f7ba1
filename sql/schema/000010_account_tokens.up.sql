-- One-time tokens of the account flows: email verification, password reset and email change.
-- The token itself travels only in the emailed link; the table keeps its SHA-256, so a copy of
-- the database holds nothing a link could be rebuilt from. A token works once (using it deletes
-- its row) and only until expires_at; the periodic cleanup deletes the expired ones.
CREATE TABLE account_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash bytea NOT NULL,
    purpose    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The address the link was sent to: the account's address for a verification or a reset,
    -- the new address for an email change. A verification link works only while the account
    -- still has this address.
    email      citext NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT account_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT account_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT account_tokens_purpose_check CHECK (purpose IN ('verify_email', 'password_reset', 'email_change')),
    CONSTRAINT account_tokens_expiry_check CHECK (expires_at > created_at)
);

CREATE INDEX account_tokens_user_id_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);
