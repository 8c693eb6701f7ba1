package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

// PasswordLogin checks a username (or email) and password and opens a new session.
//
// Errors: unauthenticated (invalid_credentials) for an unknown name or a wrong password,
// whatever the account's state; forbidden (account_inactive, account_unverified) once the
// password is right; unavailable; internal.
func (s *Service) PasswordLogin(ctx context.Context, login, password string, client Client) (TokenPair, error) {
	user, err := s.userByLogin(ctx, login)
	var hash []byte
	switch {
	case err == nil:
		hash = []byte(user.PasswordHash)
	case errors.Is(err, pgx.ErrNoRows):
		// Unknown names spend the same bcrypt work below, so timing does not reveal them.
	default:
		return TokenPair{}, dbError(err)
	}
	if !s.checkPassword(hash, password) {
		return TokenPair{}, errInvalidCredentials()
	}
	// The password is right, so telling the caller about the account's state leaks nothing.
	if !user.IsActive {
		return TokenPair{}, Errorf(KindForbidden, CodeAccountInactive, "The account is inactive.")
	}
	if !user.IsVerified {
		return TokenPair{}, Errorf(KindForbidden, CodeAccountUnverified, "The account has not been verified.")
	}
	return s.openSession(ctx, user.ID, client)
}

// userByLogin finds a user by email when the login contains '@' (usernames cannot), and by
// username otherwise.
func (s *Service) userByLogin(ctx context.Context, login string) (db.User, error) {
	if strings.Contains(login, "@") {
		return s.q.GetUserByEmail(ctx, strings.ToLower(login))
	}
	return s.q.GetUserByUsername(ctx, login)
}

// openSession creates a session with its first token pair in one statement.
func (s *Service) openSession(ctx context.Context, userID uuid.UUID, client Client) (TokenPair, error) {
	now := s.now()
	sessionID := uuid.New()
	sessionExpiry := now.Add(s.tokens.TTL(token.Refresh))
	access, err := s.tokens.Issue(token.Access, userID, sessionID, time.Time{})
	if err != nil {
		return TokenPair{}, internal(err)
	}
	refresh, err := s.tokens.Issue(token.Refresh, userID, sessionID, sessionExpiry)
	if err != nil {
		return TokenPair{}, internal(err)
	}
	err = s.q.CreateSessionWithTokens(ctx, db.CreateSessionWithTokensParams{
		Now:              now,
		UserID:           userID,
		SessionID:        sessionID,
		SessionExpiresAt: sessionExpiry,
		UserAgent:        truncate(client.UserAgent, maxUserAgent),
		Ip:               client.IP,
		AccessJti:        access.ID,
		AccessExpiresAt:  access.ExpiresAt,
		RefreshJti:       refresh.ID,
		RefreshExpiresAt: refresh.ExpiresAt,
	})
	if err != nil {
		return TokenPair{}, dbError(err)
	}
	return TokenPair{
		AccessToken:  access.Token,
		RefreshToken: refresh.Token,
		ExpiresIn:    access.ExpiresAt.Sub(now.Truncate(time.Second)),
	}, nil
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
	row, err := s.q.GetAccessTokenUser(ctx, v.ID)
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
