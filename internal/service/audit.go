package service

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/logctx"
)

// Audit event types: the event_type of each row in audit_events.
const (
	AuditLoginSucceeded      = "login_succeeded"
	AuditLoginFailed         = "login_failed"
	AuditRefreshTokenReused  = "refresh_token_reused"
	AuditLogout              = "logout"
	AuditSessionRevoked      = "session_revoked"       // one session, by its user or by the session cap
	AuditUserSessionsRevoked = "user_sessions_revoked" // every session of a user, by an admin
	AuditUserChanged         = "user_changed"          // an admin changed a user's account
	AuditAccountLocked       = "account_locked"        // failed logins locked an account, or a name that matches none
	AuditAccountUnlocked     = "account_unlocked"      // an admin cleared a lock
	AuditRateLimited         = "rate_limited"          // a client or login name tripped a rate limit
	AuditServerBusy          = "server_busy"           // the hash pool refused work

	AuditUserRegistered         = "user_registered"          // someone registered an account
	AuditAdminCreated           = "admin_created"            // the bootstrap admin or the create-admin command made an admin
	AuditEmailVerified          = "email_verified"           // a verification link was followed
	AuditEmailChangeRequested   = "email_change_requested"   // a user asked to change its own email; a link went to the new one
	AuditEmailChanged           = "email_changed"            // an email change was confirmed by its link
	AuditPasswordChanged        = "password_changed"         // a user changed its own password
	AuditPasswordResetRequested = "password_reset_requested" // a reset link was sent to an account
	AuditPasswordReset          = "password_reset"           // a reset link set a new password
	AuditUserDeleted            = "user_deleted"             // a user deleted its own account
	AuditMailQueued             = "mail_queued"              // a message was queued for sending: its kind and recipient, never its link
)

// AuditEventTypes lists every event type, in the order openapi.yaml's AuditEventType enum
// declares them; a test keeps the two equal.
var AuditEventTypes = []string{
	AuditLoginSucceeded, AuditLoginFailed, AuditAccountLocked, AuditAccountUnlocked,
	AuditRateLimited, AuditServerBusy, AuditRefreshTokenReused, AuditLogout,
	AuditSessionRevoked, AuditUserSessionsRevoked, AuditUserChanged,
	AuditUserRegistered, AuditAdminCreated, AuditEmailVerified, AuditEmailChangeRequested, AuditEmailChanged,
	AuditPasswordChanged, AuditPasswordResetRequested, AuditPasswordReset, AuditUserDeleted, AuditMailQueued,
}

// Reasons, in details.reason of failed logins and in sessions.revoked_reason.
const (
	reasonUnknownUser       = "unknown_user"
	reasonWrongPassword     = "wrong_password"
	reasonAccountInactive   = "account_inactive"
	reasonAccountUnverified = "account_unverified"
	reasonLocked            = "locked"
	reasonSessionLimit      = "session_limit"
	reasonRevokedByUser     = "revoked_by_user"
	reasonRevokedByAdmin    = "revoked_by_admin"
	reasonLogout            = "logout"
	// A wrong current password given to confirm a sensitive change; it counts like a failed
	// login.
	reasonReauthenticationFailed = "reauthentication_failed"
)

// auditEntry is one security event to record. Details must never hold a secret: no password,
// token, token id or hash, only ids, counts and reasons.
type auditEntry struct {
	Type    string
	UserID  uuid.UUID // the user the event is about; uuid.Nil when there is none
	Client  Client
	Details map[string]any
}

// audit records an event with q, inside the caller's transaction, so the event commits or
// rolls back with the change it describes.
func (s *Service) audit(ctx context.Context, q *db.Queries, ev auditEntry) error {
	details := ev.Details
	if details == nil {
		details = map[string]any{}
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
		Ip:        optional(ev.Client.IP),
		UserAgent: optional(truncate(ev.Client.UserAgent, maxUserAgent)),
		Details:   raw,
		CreatedAt: s.now(),
	})
}

// auditOutsideTx records an event that belongs to no transaction, such as a failed login.
// A failure is logged, not returned: the answer to the client must not depend on it. The
// record is written even when the request's client has gone away meanwhile: what happened
// still happened.
func (s *Service) auditOutsideTx(ctx context.Context, ev auditEntry) {
	ctx = context.WithoutCancel(ctx)
	if err := s.audit(ctx, s.queries(), ev); err != nil {
		logctx.From(ctx, s.log).LogAttrs(ctx, slog.LevelError, "writing an audit event",
			slog.String("event_type", ev.Type), slog.Any("err", err))
	}
}

// auditLoginFailure records a failed login. The login name is not recorded: it may be a
// password typed into the wrong field.
func (s *Service) auditLoginFailure(ctx context.Context, userID uuid.UUID, reason string, client Client) {
	s.auditOutsideTx(ctx, auditEntry{Type: AuditLoginFailed, UserID: userID, Client: client,
		Details: map[string]any{"reason": reason}})
}

// auditUserChange records an admin's change to a user's account, in the change's
// transaction. changes names the fields set and their new values; never a password or hash.
func (s *Service) auditUserChange(ctx context.Context, q *db.Queries, actor Principal, target uuid.UUID, changes map[string]any, client Client) error {
	return s.audit(ctx, q, auditEntry{Type: AuditUserChanged, UserID: target, Client: client,
		Details: map[string]any{"actor_id": actor.User.ID, "changes": changes}})
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
