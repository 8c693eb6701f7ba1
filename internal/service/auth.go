package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// Client describes where a request came from, for sessions and audit.
type Client struct {
	IP        string
	UserAgent string
}

// TokenPair is what a successful login or refresh returns.
type TokenPair struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
}

// Principal is the authenticated caller of a bearer request.
type Principal struct {
	User      db.User
	SessionID uuid.UUID
	TokenID   string
}

// maxUserAgent bounds what a client can make Authly store per session.
const maxUserAgent = 512

// PasswordLogin checks a username (or email) and password and opens a new session. In order:
// the login name's rate limit; a place in line in the bounded bcrypt pool; the lockout, which
// refuses a locked login without spending bcrypt; the password; then the account's state. A
// name that matches no account goes through the same steps, with the same answers, as a wrong
// password for one that does.
//
// Errors: rate limited (rate_limited, account_locked); unauthenticated (invalid_credentials)
// for an unknown name or a wrong password, whatever the account's state; forbidden
// (account_inactive, account_unverified) once the password is right; unavailable
// (server_busy, database_unavailable); internal.
func (s *Service) PasswordLogin(ctx context.Context, login, password string, client Client) (TokenPair, error) {
	if err := s.limitLogin(ctx, login); err != nil {
		return TokenPair{}, err
	}
	// Admission to the bcrypt pool comes first: when the server is too busy to check the
	// password soon, the answer is a fast 503 that has cost no database work.
	reservation, err := s.reservePasswordCheck(ctx)
	if err != nil {
		return TokenPair{}, err
	}
	defer reservation.Cancel()
	// An unknown name is counted, locked and hashed below exactly like a known one, so that
	// neither the answers nor their timing reveal it.
	account, attempt, err := s.claimLoginAttempt(ctx, login, client)
	if err != nil {
		return TokenPair{}, err
	}
	hash := account.passwordHash
	ok, err := s.checkPassword(ctx, reservation, hash, password)
	if err != nil {
		s.refundLoginAttempt(ctx, attempt)
		return TokenPair{}, err
	}
	if !ok {
		reason := reasonWrongPassword
		if hash == nil {
			reason = reasonUnknownUser
		}
		s.loginFailed(ctx, attempt, reason, client)
		return TokenPair{}, errInvalidCredentials()
	}
	// The password is right, so the count of failures starts again: here for an account
	// that cannot log in, and in openSession's own statement otherwise. And telling the
	// caller about the account's state leaks nothing.
	if !account.isActive || !account.isVerified {
		if err := s.resetLoginFailures(ctx, attempt); err != nil {
			return TokenPair{}, err
		}
	}
	if !account.isActive {
		s.auditLoginFailure(ctx, account.id, reasonAccountInactive, client)
		return TokenPair{}, Errorf(KindForbidden, CodeAccountInactive, "The account is inactive.")
	}
	if !account.isVerified {
		s.auditLoginFailure(ctx, account.id, reasonAccountUnverified, client)
		return TokenPair{}, Errorf(KindForbidden, CodeAccountUnverified, "The account has not been verified.")
	}
	return s.openSession(ctx, account.id, client)
}

// auditLoginFailure records a failed login. The login name is not recorded: it may be a
// password typed into the wrong field.
func (s *Service) auditLoginFailure(ctx context.Context, userID uuid.UUID, reason string, client Client) {
	s.auditOutsideTx(ctx, auditEvent{Type: AuditLoginFailed, UserID: userID, Client: client,
		Details: map[string]any{"reason": reason}})
}

// loginAccount is what a login needs of the account its name matches.
type loginAccount struct {
	id                   uuid.UUID // uuid.Nil when the name matches no account
	passwordHash         []byte    // nil when the name matches no account
	isActive, isVerified bool
}

// loginNames splits a login into the username or the email it is: an email when it contains
// '@' (usernames cannot), a username otherwise. The other is nil.
func loginNames(login string) (username, email *string) {
	if strings.Contains(login, "@") {
		email := strings.ToLower(login)
		return nil, &email
	}
	return &login, nil
}

// findLoginAccount looks up the account a login names, without counting an attempt: for when
// lockout is off.
func (s *Service) findLoginAccount(ctx context.Context, login string) (loginAccount, error) {
	var (
		user db.User
		err  error
	)
	if username, email := loginNames(login); email != nil {
		user, err = s.q.GetUserByEmail(ctx, *email)
	} else {
		user, err = s.q.GetUserByUsername(ctx, *username)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return loginAccount{}, nil
	case err != nil:
		return loginAccount{}, dbError(err)
	}
	return loginAccount{id: user.ID, passwordHash: []byte(user.PasswordHash), isActive: user.IsActive, isVerified: user.IsVerified}, nil
}

// openSession creates a session with its first token pair, revokes the user's oldest
// sessions beyond the cap and records the login: three statements in one transaction, sent
// in one round trip. The first also updates the user's row, which locks it until the end, so
// concurrent logins of one user see each other's sessions when the cap is enforced (see
// LockUserSession). The session's absolute end is fixed here; no rotation moves it.
func (s *Service) openSession(ctx context.Context, userID uuid.UUID, client Client) (TokenPair, error) {
	now := s.now()
	sessionID := uuid.New()
	absoluteEnd := now.Add(s.sessions.MaxLifetime)
	access, refresh, err := s.issuePair(userID, sessionID, now, absoluteEnd)
	if err != nil {
		return TokenPair{}, err
	}
	var pipeline database.Pipeline
	q := db.New(&pipeline)
	// Queuing a statement cannot fail; running the pipeline can.
	_ = q.CreateSessionWithTokens(ctx, db.CreateSessionWithTokensParams{
		Now:                      now,
		UserID:                   userID,
		SessionID:                sessionID,
		SessionExpiresAt:         refresh.ExpiresAt,
		SessionAbsoluteExpiresAt: absoluteEnd,
		UserAgent:                truncate(client.UserAgent, maxUserAgent),
		Ip:                       client.IP,
		AccessJti:                access.ID,
		AccessExpiresAt:          access.ExpiresAt,
		RefreshJti:               refresh.ID,
		RefreshExpiresAt:         refresh.ExpiresAt,
	})
	s.enforceSessionLimit(ctx, q, userID, now, client)
	err = s.audit(ctx, q, auditEvent{Type: AuditLoginSucceeded, UserID: userID, Client: client,
		Details: map[string]any{"session_id": sessionID}})
	if err != nil {
		return TokenPair{}, internal(err)
	}
	if err := s.db.RunPipeline(ctx, &pipeline); err != nil {
		return TokenPair{}, dbError(err)
	}
	s.countIssuedPair()
	return tokenPair(access, refresh, now), nil
}

// Authenticate verifies a bearer access token: signature and claims first, then one indexed
// query that the jti was issued and not invalidated and that its user exists and is active.
//
// Errors: unauthenticated (invalid_token); unavailable; internal.
func (s *Service) Authenticate(ctx context.Context, raw string) (Principal, error) {
	v, err := s.tokens.Verify(token.Access, raw)
	if err != nil {
		return Principal{}, errInvalidToken(err)
	}
	// The stored expiry allows the same leeway as the signed one.
	row, err := s.q.GetAccessTokenUser(ctx, db.GetAccessTokenUserParams{Jti: v.ID, ExpiredBefore: s.now().Add(-token.Leeway)})
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, errInvalidToken(errors.New("token revoked, unknown, or user inactive"))
	}
	if err != nil {
		return Principal{}, dbError(err)
	}
	if row.User.ID != v.UserID || row.SessionID != v.SessionID {
		return Principal{}, errInvalidToken(errors.New("token claims do not match the issued token"))
	}
	return Principal{User: row.User, SessionID: row.SessionID, TokenID: v.ID}, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
