package service

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// Client describes where a request came from, for sessions, audit and the per-IP limits.
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
	User      User
	SessionID uuid.UUID
	TokenID   string
}

// maxUserAgent bounds what a client can make Authly store per session.
const maxUserAgent = 512

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
	row, err := s.queries().GetAccessTokenUser(ctx, db.GetAccessTokenUserParams{Jti: v.ID, ExpiredBefore: s.now().Add(-token.Leeway)})
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, errInvalidToken(errors.New("token revoked, unknown, or user inactive"))
	}
	if err != nil {
		return Principal{}, dbError(err)
	}
	if row.User.ID != v.UserID || row.SessionID != v.SessionID {
		return Principal{}, errInvalidToken(errors.New("token claims do not match the issued token"))
	}
	return Principal{User: userFrom(row.User), SessionID: row.SessionID, TokenID: v.ID}, nil
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
