-- name: CreateAuditEvent :exec
INSERT INTO audit_events (user_id, event_type, ip, user_agent, details, created_at)
VALUES (@user_id, @event_type, @ip, @user_agent, @details, @created_at);
