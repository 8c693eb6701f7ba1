-- name: CreateAuditEvent :exec
INSERT INTO audit_events (user_id, event_type, ip, user_agent, details, created_at)
VALUES (@user_id, @event_type, @ip, @user_agent, @details, @created_at);

-- name: ListAuditEvents :many
-- A page of events, newest first, optionally for one user and one event type. The page
-- starts after the cursor (before_created_at, before_id) of the previous page's last event.
SELECT * FROM audit_events
WHERE (sqlc.narg(user_id)::uuid IS NULL OR user_id = sqlc.narg(user_id))
  AND (sqlc.narg(event_type)::text IS NULL OR event_type = sqlc.narg(event_type))
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.arg(before_id)::bigint))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);
