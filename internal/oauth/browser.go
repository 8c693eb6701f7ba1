package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// BrowserSession is a user's single sign-on session at Authly, held by the browser in a
// cookie. Signing in to the login page opens one; every client the user then authorizes
// from that browser is authorized from it without a new login, until it ends. It carries
// no tokens: ending it signs the browser out of Authly, not the clients out of their tokens.
type BrowserSession struct {
	ID         uuid.UUID
	UserID     uuid.UUID
	AuthTime   time.Time // when the user authenticated, for auth_time and max_age
	AMR        []string  // how, such as pwd (RFC 8176)
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // its absolute end; it also ends after the idle timeout
	IP         string
	UserAgent  string
}

func browserSessionFromRow(r db.BrowserSession) BrowserSession {
	return BrowserSession{
		ID: r.ID, UserID: r.UserID, AuthTime: r.AuthTime, AMR: r.Amr, CreatedAt: r.CreatedAt,
		LastSeenAt: r.LastSeenAt, ExpiresAt: r.ExpiresAt, IP: r.Ip, UserAgent: r.UserAgent,
	}
}

// NewBrowserSession is a login at the login page.
type NewBrowserSession struct {
	UserID    uuid.UUID
	AMR       []string
	IP        string
	UserAgent string
}

// Reasons for ending a browser session, in browser_sessions.revoked_reason.
const (
	BrowserSessionLogout  = "logout"
	BrowserSessionRelogin = "relogin" // replaced by a new login in the same browser
	BrowserSessionRevoked = "revoked" // by an admin, or by a change to the account
)

// errNoBrowserSession answers a cookie that names no live session.
func errNoBrowserSession() *Error {
	return &Error{Code: CodeLoginRequired, Description: "The user is not signed in."}
}

// CreateBrowserSession opens a single sign-on session for a user who has just signed in,
// with auth_time now. It returns the session and the cookie value that stands for it: 256
// random bits, stored only as a digest, to be set as a Secure, HttpOnly cookie. A login
// always opens a new session, so that a cookie planted before the login is worth nothing
// after it (session fixation); the caller revokes the browser's previous one.
//
// Errors: server_error, temporarily_unavailable.
func (s *Service) CreateBrowserSession(ctx context.Context, in NewBrowserSession) (BrowserSession, string, error) {
	secret, err := s.randomString(secretBytes)
	if err != nil {
		return BrowserSession{}, "", err
	}
	amr := in.AMR
	if amr == nil {
		amr = []string{}
	}
	now := s.now()
	row, err := s.q.CreateBrowserSession(ctx, db.CreateBrowserSessionParams{
		SecretHash: hashValue(secret),
		UserID:     in.UserID,
		AuthTime:   now,
		Amr:        amr,
		Now:        now,
		ExpiresAt:  now.Add(s.browserMax),
		Ip:         in.IP,
		UserAgent:  truncate(in.UserAgent, maxAuditUserAgent),
	})
	if err != nil {
		return BrowserSession{}, "", dbError(err)
	}
	return browserSessionFromRow(row), secret, nil
}

// LookupBrowserSession returns the live session a cookie value stands for: not revoked,
// not past its end or its idle timeout, and of a user who is still active. It does not
// count as use; TouchBrowserSession does.
//
// Errors: login_required (no such live session, or a malformed cookie); server_error,
// temporarily_unavailable.
func (s *Service) LookupBrowserSession(ctx context.Context, cookie string) (BrowserSession, error) {
	if !isSecretSyntax(cookie) {
		return BrowserSession{}, errNoBrowserSession()
	}
	now := s.now()
	row, err := s.q.GetBrowserSessionBySecret(ctx, db.GetBrowserSessionBySecretParams{
		SecretHash: hashValue(cookie), Now: now, IdleCutoff: now.Add(-s.browserIdle),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return BrowserSession{}, errNoBrowserSession()
	}
	if err != nil {
		return BrowserSession{}, dbError(err)
	}
	return browserSessionFromRow(row), nil
}

// TouchBrowserSession records that a live session was used now, from ip and userAgent,
// which holds off its idle timeout; its absolute end does not move.
//
// Errors: login_required (the session has ended); server_error, temporarily_unavailable.
func (s *Service) TouchBrowserSession(ctx context.Context, id uuid.UUID, ip, userAgent string) (BrowserSession, error) {
	now := s.now()
	row, err := s.q.TouchBrowserSession(ctx, db.TouchBrowserSessionParams{
		ID: id, Now: now, IdleCutoff: now.Add(-s.browserIdle), Ip: ip, UserAgent: truncate(userAgent, maxAuditUserAgent),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return BrowserSession{}, errNoBrowserSession()
	}
	if err != nil {
		return BrowserSession{}, dbError(err)
	}
	return browserSessionFromRow(row), nil
}

// RevokeBrowserSession ends a session, such as at logout. Ending one that has already
// ended is not an error. It reports whether this call ended it.
//
// Errors: server_error, temporarily_unavailable.
func (s *Service) RevokeBrowserSession(ctx context.Context, id uuid.UUID, reason string) (bool, error) {
	n, err := s.q.RevokeBrowserSession(ctx, db.RevokeBrowserSessionParams{ID: id, Now: s.now(), Reason: &reason})
	return n > 0, dbError(err)
}

// RevokeUserBrowserSessions ends every session of a user, such as after a change of
// password, and returns how many it ended.
//
// Errors: server_error, temporarily_unavailable.
func (s *Service) RevokeUserBrowserSessions(ctx context.Context, userID uuid.UUID, reason string) (int64, error) {
	n, err := s.q.RevokeUserBrowserSessions(ctx, db.RevokeUserBrowserSessionsParams{UserID: userID, Now: s.now(), Reason: &reason})
	return n, dbError(err)
}

// Cleanup counts what DeleteExpired deleted.
type Cleanup struct {
	Codes           int64
	BrowserSessions int64
}

// DeleteExpired deletes, in batches of at most batchSize rows per statement, the
// authorization codes that expired more than CodeRetention ago and the browser sessions
// past their end. Several instances may run it at once.
//
// Errors: invalid_request (a batch size below 1); server_error, temporarily_unavailable.
func (s *Service) DeleteExpired(ctx context.Context, batchSize int) (Cleanup, error) {
	if batchSize < 1 || batchSize > 1<<20 {
		return Cleanup{}, errorf(CodeInvalidRequest, "batch_size", "The batch size must be between 1 and 1048576.")
	}
	var out Cleanup
	now := s.now()
	for {
		n, err := s.q.DeleteExpiredOAuthAuthorizationCodes(ctx, db.DeleteExpiredOAuthAuthorizationCodesParams{
			Before: now.Add(-s.codeRetention), BatchSize: int32(batchSize),
		})
		if err != nil {
			return out, dbError(err)
		}
		out.Codes += n
		if n < int64(batchSize) {
			break
		}
	}
	for {
		n, err := s.q.DeleteExpiredBrowserSessions(ctx, db.DeleteExpiredBrowserSessionsParams{
			Before: now, BatchSize: int32(batchSize),
		})
		if err != nil {
			return out, dbError(err)
		}
		out.BrowserSessions += n
		if n < int64(batchSize) {
			break
		}
	}
	return out, nil
}
