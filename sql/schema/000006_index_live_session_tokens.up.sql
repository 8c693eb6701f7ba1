-- The live tokens of one session. Each rotation invalidates the access token beside the
-- presented refresh token, and each revocation of a session its live tokens; without this
-- index both walk every token the session was ever issued, which grows with each rotation.
-- CONCURRENTLY keeps token writes flowing while it builds. If the build fails, drop the
-- invalid index before retrying the migration.
CREATE INDEX CONCURRENTLY tokens_session_live_idx ON tokens (session_id) WHERE invalidated_at IS NULL;
