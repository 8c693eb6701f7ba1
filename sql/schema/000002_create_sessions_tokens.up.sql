-- One session per login: a refresh-token family (RFC 9700 §4.14.2).
CREATE TABLE sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    user_agent     text NOT NULL DEFAULT '',
    ip             text NOT NULL DEFAULT ''
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- One row per issued JWT. The token string is never stored, only its jti.
CREATE TABLE tokens (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_jti      text NOT NULL,
    token_type     text NOT NULL,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    invalidated_at timestamptz,
    CONSTRAINT tokens_token_jti_key UNIQUE (token_jti),
    CONSTRAINT tokens_token_type_check CHECK (token_type IN ('access', 'refresh'))
);

CREATE INDEX tokens_user_active_idx ON tokens (user_id) WHERE invalidated_at IS NULL;
CREATE INDEX tokens_session_id_idx ON tokens (session_id);
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at);
