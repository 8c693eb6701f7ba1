package oauth

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
)

// Audit event types: the event_type of the rows this package writes to audit_events.
const (
	AuditClientCreated        = "oauth_client_created"
	AuditClientUpdated        = "oauth_client_updated"
	AuditClientDeleted        = "oauth_client_deleted"
	AuditClientSecretRotated  = "oauth_client_secret_rotated"
	AuditScopeCreated         = "oauth_scope_created"
	AuditScopeDeleted         = "oauth_scope_deleted"
	AuditAuthorizationGranted = "oauth_authorization_granted"
	AuditAuthorizationDenied  = "oauth_authorization_denied"
	AuditCodeReused           = "oauth_code_reused"
	AuditConsentRevoked       = "oauth_consent_revoked"
)

// AuditEventTypes lists every event type this package records.
var AuditEventTypes = []string{
	AuditClientCreated, AuditClientUpdated, AuditClientDeleted, AuditClientSecretRotated,
	AuditScopeCreated, AuditScopeDeleted, AuditAuthorizationGranted, AuditAuthorizationDenied,
	AuditCodeReused, AuditConsentRevoked,
}

// Actor is who makes a change and from where, for the audit log.
type Actor struct {
	// UserID is the signed-in user making the change: an admin, or the user granting or
	// revoking access. uuid.Nil when there is none.
	UserID    uuid.UUID
	IP        string
	UserAgent string
}

// maxAuditUserAgent bounds what a client can make Authly store per event.
const maxAuditUserAgent = 512

// auditEvent is one security event. Details must never hold a secret: no client secret,
// code, cookie, token or hash, only ids, names, scopes, counts and reasons.
type auditEvent struct {
	Type string
	// UserID is the user the event is about; uuid.Nil for events about a client or scope,
	// whose acting admin goes into details as actor_id.
	UserID  uuid.UUID
	Actor   Actor
	Details map[string]any
}

// audit records an event with q, inside the caller's transaction, so that the event
// commits or rolls back with the change it describes.
func (s *Service) audit(ctx context.Context, q *db.Queries, ev auditEvent) error {
	details := ev.Details
	if details == nil {
		details = map[string]any{}
	}
	if ev.Actor.UserID != uuid.Nil && ev.Actor.UserID != ev.UserID {
		details["actor_id"] = ev.Actor.UserID
	}
	raw, err := json.Marshal(details)
	if err != nil {
		return err
	}
	var userID *uuid.UUID
	if ev.UserID != uuid.Nil {
		userID = &ev.UserID
	}
	return q.CreateAuditEvent(ctx, db.CreateAuditEventParams{
		UserID:    userID,
		EventType: ev.Type,
		Ip:        optional(ev.Actor.IP),
		UserAgent: optional(truncate(ev.Actor.UserAgent, maxAuditUserAgent)),
		Details:   raw,
		CreatedAt: s.now(),
	})
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
