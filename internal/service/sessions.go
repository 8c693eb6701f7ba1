package service

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// Session policy defaults: AUTHLY_MAX_SESSIONS_PER_USER, AUTHLY_SESSION_IDLE_TIMEOUT and
// AUTHLY_SESSION_MAX_LIFETIME.
const (
	DefaultMaxSessionsPerUser = 10
	DefaultSessionIdleTimeout = 7 * 24 * time.Hour
	DefaultSessionMaxLifetime = 30 * 24 * time.Hour
)

// SessionPolicy bounds each user's sessions. A session is one login: one refresh-token
// family. A zero field takes its default.
type SessionPolicy struct {
	// MaxPerUser is how many live sessions a user may hold. A login beyond it revokes the
	// oldest.
	MaxPerUser int
	// IdleTimeout ends a session that goes this long without a refresh.
	IdleTimeout time.Duration
	// MaxLifetime ends a session this long after its login, however often it is refreshed.
	MaxLifetime time.Duration
}

func (p SessionPolicy) withDefaults() SessionPolicy {
	if p.MaxPerUser <= 0 {
		p.MaxPerUser = DefaultMaxSessionsPerUser
	}
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = DefaultSessionIdleTimeout
	}
	if p.MaxLifetime <= 0 {
		p.MaxLifetime = DefaultSessionMaxLifetime
	}
	return p
}

// idleCutoff is the last use before which a session counts as idle at now.
func (s *Service) idleCutoff(now time.Time) time.Time {
	return now.Add(-s.sessions.IdleTimeout)
}

// issuePair signs the tokens of a session used at now. The refresh token expires at the
// earliest of its own lifetime, the idle timeout and the session's absolute end, so it
// carries the session's real deadline. The access token never outlives the refresh token:
// nothing in a session outlives the session.
func (s *Service) issuePair(userID, sessionID uuid.UUID, now, absoluteEnd time.Time) (access, refresh token.Issued, err error) {
	sessionEnd := now.Add(s.sessions.IdleTimeout)
	if absoluteEnd.Before(sessionEnd) {
		sessionEnd = absoluteEnd
	}
	refresh, err = s.tokens.Issue(token.Refresh, userID, sessionID, sessionEnd)
	if err != nil {
		return token.Issued{}, token.Issued{}, Internal(err)
	}
	access, err = s.tokens.Issue(token.Access, userID, sessionID, refresh.ExpiresAt)
	if err != nil {
		return token.Issued{}, token.Issued{}, Internal(err)
	}
	return access, refresh, nil
}

func tokenPair(access, refresh token.Issued, now time.Time) TokenPair {
	return TokenPair{
		AccessToken:  access.Token,
		RefreshToken: refresh.Token,
		ExpiresIn:    access.ExpiresAt.Sub(now.Truncate(time.Second)),
	}
}

// enforceSessionLimit queues, on the login's pipeline q, the statement that revokes the
// user's oldest live sessions beyond the cap, with their tokens, and records each revocation.
// It runs after the statement that inserts the new session and locks the user's row, so
// concurrent logins cannot both slip under the cap.
func (s *Service) enforceSessionLimit(ctx context.Context, q *db.Queries, userID uuid.UUID, now time.Time, client Client) error {
	return q.RevokeSessionsOverLimit(ctx, db.RevokeSessionsOverLimitParams{
		UserID:      userID,
		Now:         now,
		IdleCutoff:  s.idleCutoff(now),
		MaxSessions: int32(s.sessions.MaxPerUser),
		EventType:   AuditSessionRevoked,
		Reason:      reasonSessionLimit,
		Ip:          optional(client.IP),
		UserAgent:   optional(truncate(client.UserAgent, maxUserAgent)),
	})
}

// Session is one live session: one login, one refresh-token family.
type Session struct {
	ID         uuid.UUID
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	IP         string
	UserAgent  string
	Current    bool // the session of the caller's token
}

// ListSessions returns the caller's live sessions, newest first.
//
// Errors: unavailable; internal.
func (s *Service) ListSessions(ctx context.Context, actor Principal) ([]Session, error) {
	now := s.now()
	rows, err := s.queries().ListLiveSessions(ctx, db.ListLiveSessionsParams{
		UserID: actor.User.ID, Now: now, IdleCutoff: s.idleCutoff(now),
	})
	if err != nil {
		return nil, dbError(err)
	}
	sessions := make([]Session, len(rows))
	for i, r := range rows {
		sessions[i] = Session{
			ID:         r.ID,
			CreatedAt:  r.CreatedAt,
			LastUsedAt: r.LastUsedAt,
			ExpiresAt:  r.ExpiresAt,
			IP:         r.Ip,
			UserAgent:  r.UserAgent,
			Current:    r.ID == actor.SessionID,
		}
	}
	return sessions, nil
}

// RevokeSession revokes one of the caller's live sessions and invalidates its tokens at
// once. Someone else's session, or one that has already ended, is not found, so session
// ids cannot be probed.
//
// Errors: not found; unavailable; internal.
func (s *Service) RevokeSession(ctx context.Context, actor Principal, sessionID uuid.UUID, client Client) error {
	now := s.now()
	userID := actor.User.ID
	return s.inTx(ctx, func(q *db.Queries) error {
		if _, err := q.LockUser(ctx, userID); err != nil {
			return err
		}
		row, err := q.RevokeSession(ctx, db.RevokeSessionParams{
			Now: now, Reason: reasonRevokedByUser, SessionID: sessionID, UserID: userID, IdleCutoff: s.idleCutoff(now),
		})
		if err != nil {
			return err // no rows: not found
		}
		s.metrics.TokensRevoked(reasonRevokedByUser, row.InvalidatedTokens)
		return s.audit(ctx, q, auditEntry{Type: AuditSessionRevoked, UserID: userID, Client: client,
			Details: map[string]any{"session_id": row.ID, "reason": reasonRevokedByUser, "invalidated_tokens": row.InvalidatedTokens}})
	})
}

// Logout revokes every session of the caller and invalidates every live token the caller
// holds, in all sessions. It returns how many tokens this call invalidated; tokens that
// were already dead are not counted.
//
// Errors: unauthenticated (invalid_token) when the caller's account vanished meanwhile;
// unavailable; internal.
func (s *Service) Logout(ctx context.Context, actor Principal, client Client) (int64, error) {
	var invalidated int64
	err := s.inTx(ctx, func(q *db.Queries) error {
		revoked, tokens, err := s.endUserSessions(ctx, q, actor.User.ID, reasonLogout)
		if err != nil {
			return err
		}
		invalidated = tokens
		return s.audit(ctx, q, auditEntry{Type: AuditLogout, UserID: actor.User.ID, Client: client,
			Details: map[string]any{"session_id": actor.SessionID, "revoked_sessions": revoked, "invalidated_tokens": tokens}})
	})
	if err != nil {
		if e := AsError(err); e.Kind == KindNotFound {
			return 0, errInvalidToken(e)
		}
		return 0, err
	}
	return invalidated, nil
}

// ForcedLogout is the result of RevokeUserSessions.
type ForcedLogout struct {
	RevokedSessions   int64
	InvalidatedTokens int64
}

// RevokeUserSessions logs a user out everywhere: every session is revoked and every live
// token invalidated. Only admins may.
//
// Errors: forbidden; not found (no such user); unavailable; internal.
func (s *Service) RevokeUserSessions(ctx context.Context, actor Principal, userID uuid.UUID, client Client) (ForcedLogout, error) {
	if !actor.User.IsAdmin {
		return ForcedLogout{}, errForbidden("Admin rights are required.")
	}
	var out ForcedLogout
	err := s.inTx(ctx, func(q *db.Queries) error {
		revoked, tokens, err := s.endUserSessions(ctx, q, userID, reasonRevokedByAdmin)
		if err != nil {
			return err
		}
		out = ForcedLogout{RevokedSessions: revoked, InvalidatedTokens: tokens}
		return s.audit(ctx, q, auditEntry{Type: AuditUserSessionsRevoked, UserID: userID, Client: client,
			Details: map[string]any{"actor_id": actor.User.ID, "revoked_sessions": revoked, "invalidated_tokens": tokens}})
	})
	return out, err
}

// endUserSessions locks the user, revokes all of the user's sessions and invalidates all of
// the user's live tokens. A missing user is pgx.ErrNoRows.
func (s *Service) endUserSessions(ctx context.Context, q *db.Queries, userID uuid.UUID, reason string) (revokedSessions, invalidatedTokens int64, err error) {
	now := s.now()
	if _, err := q.LockUser(ctx, userID); err != nil {
		return 0, 0, err
	}
	revokedSessions, err = q.RevokeUserSessions(ctx, db.RevokeUserSessionsParams{Now: now, Reason: reason, UserID: userID})
	if err != nil {
		return 0, 0, err
	}
	invalidatedTokens, err = q.InvalidateUserTokens(ctx, db.InvalidateUserTokensParams{Now: now, UserID: userID})
	if err != nil {
		return 0, 0, err
	}
	s.metrics.TokensRevoked(reason, invalidatedTokens)
	return revokedSessions, invalidatedTokens, nil
}
