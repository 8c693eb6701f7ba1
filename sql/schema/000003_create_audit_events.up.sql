-- Security events: logins, refresh-token reuse, logouts, session revocations and admin
-- changes to users. Rows hold who, from where, when and what, never a secret: no password,
-- token or hash goes into details.
CREATE TABLE audit_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The user the event is about. Kept as NULL when the user is deleted, so the trail
    -- outlives the account.
    user_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    event_type text NOT NULL,
    ip         text,
    user_agent text,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_events_details_object_check CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX audit_events_created_at_idx ON audit_events (created_at DESC);
CREATE INDEX audit_events_user_id_idx ON audit_events (user_id, created_at DESC);
CREATE INDEX audit_events_event_type_idx ON audit_events (event_type, created_at DESC);
