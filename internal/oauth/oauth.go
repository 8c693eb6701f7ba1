// Package oauth is Authly's OAuth 2.1 authorization server domain: clients and their
// secrets, the scope registry, authorization requests and their validation, PKCE,
// authorization codes, consents, the browser's single sign-on sessions, and the audit events
// of all of these. It speaks Go: the HTTP endpoints and pages call it with plain values and
// map its *Error to responses, and it never imports net/http or the generated API. Tokens
// are not issued here: the token endpoint redeems a code with RedeemCode and issues the
// session and tokens in the same transaction through the IssueFunc it passes.
package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// DB is the database handle: a pool, or a wrapper of one such as database.Bounded.
type DB interface {
	db.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Defaults for the zero fields of Options.
const (
	DefaultCodeTTL                   = 60 * time.Second
	DefaultCodeRetention             = 24 * time.Hour
	DefaultBrowserSessionIdleTimeout = 12 * time.Hour
	DefaultBrowserSessionMaxLifetime = 7 * 24 * time.Hour
)

// Options configure a Service. Clock and Random are fields, not globals, so that tests
// control them.
type Options struct {
	DB DB
	// Issuer is the authorization server's issuer identifier (AUTHLY_PUBLIC_URL). Every
	// authorization response carries it as iss (RFC 9207); empty leaves iss out.
	Issuer string
	Clock  func() time.Time
	// Random is the source of client ids, secrets, codes and cookie secrets; nil is
	// crypto/rand.
	Random io.Reader
	// SecretPepper, when set, makes the stored digest of a client secret HMAC-SHA-256 keyed
	// with it rather than SHA-256, so that a copy of the database alone cannot even be used
	// to check a guess. Changing it invalidates every client secret.
	SecretPepper []byte
	// CodeTTL is how long an authorization code may be redeemed (60 s).
	CodeTTL time.Duration
	// CodeRetention is how long a code is kept after it expires, so that a replay is still
	// recognised and the tokens issued from it revoked (24 h).
	CodeRetention time.Duration
	// BrowserSessionIdleTimeout ends a single sign-on session that is not used for this
	// long (12 h); BrowserSessionMaxLifetime ends it this long after the login however
	// often it is used (7 days).
	BrowserSessionIdleTimeout time.Duration
	BrowserSessionMaxLifetime time.Duration
}

// Service implements the authorization server's use cases.
type Service struct {
	db            DB
	q             *db.Queries
	issuer        string
	clock         func() time.Time
	random        io.Reader
	pepper        []byte
	codeTTL       time.Duration
	codeRetention time.Duration
	browserIdle   time.Duration
	browserMax    time.Duration
	// dummySecretHash is compared against when a client id is unknown, so that an unknown
	// client costs the same work as a known one with a wrong secret.
	dummySecretHash []byte
}

// New builds a Service.
func New(o Options) (*Service, error) {
	if o.DB == nil {
		return nil, errors.New("oauth: a database handle is required")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Random == nil {
		o.Random = rand.Reader
	}
	if o.CodeTTL == 0 {
		o.CodeTTL = DefaultCodeTTL
	}
	if o.CodeRetention == 0 {
		o.CodeRetention = DefaultCodeRetention
	}
	if o.BrowserSessionIdleTimeout == 0 {
		o.BrowserSessionIdleTimeout = DefaultBrowserSessionIdleTimeout
	}
	if o.BrowserSessionMaxLifetime == 0 {
		o.BrowserSessionMaxLifetime = DefaultBrowserSessionMaxLifetime
	}
	for name, d := range map[string]time.Duration{
		"CodeTTL": o.CodeTTL, "CodeRetention": o.CodeRetention,
		"BrowserSessionIdleTimeout": o.BrowserSessionIdleTimeout, "BrowserSessionMaxLifetime": o.BrowserSessionMaxLifetime,
	} {
		if d < 0 {
			return nil, fmt.Errorf("oauth: %s must not be negative", name)
		}
	}
	s := &Service{
		db:            o.DB,
		q:             db.New(o.DB),
		issuer:        o.Issuer,
		clock:         o.Clock,
		random:        o.Random,
		pepper:        append([]byte(nil), o.SecretPepper...),
		codeTTL:       o.CodeTTL,
		codeRetention: o.CodeRetention,
		browserIdle:   o.BrowserSessionIdleTimeout,
		browserMax:    o.BrowserSessionMaxLifetime,
	}
	s.dummySecretHash = s.hashClientSecret("authly-dummy-client-secret")
	return s, nil
}

// now is the clock at PostgreSQL's precision, so that a time read back equals the one
// written.
func (s *Service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// inTx runs fn in one transaction: it commits when fn returns nil and rolls back otherwise.
func (s *Service) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return dbError(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := fn(s.q.WithTx(tx)); err != nil {
		return dbError(err)
	}
	return dbError(tx.Commit(ctx))
}

// secretBytes is the entropy of every client secret, code and cookie secret: 256 bits, so
// that guessing one is hopeless and a single fast hash suffices to store it.
const secretBytes = 32

// secretLen is the length of such a value in unpadded base64url.
var secretLen = base64.RawURLEncoding.EncodedLen(secretBytes)

// randomString returns n random bytes from the service's source as unpadded base64url.
func (s *Service) randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.random, b); err != nil {
		return "", serverError(fmt.Errorf("reading random bytes: %w", err))
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashClientSecret is the stored form of a client secret: SHA-256, or HMAC-SHA-256 keyed
// with the pepper. A fast hash is right for a 256-bit random secret (docs/security.md).
func (s *Service) hashClientSecret(secret string) []byte {
	if len(s.pepper) > 0 {
		m := hmac.New(sha256.New, s.pepper)
		m.Write([]byte(secret))
		return m.Sum(nil)
	}
	return hashValue(secret)
}

// hashValue is the stored form of an authorization code or a cookie secret.
func hashValue(v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return sum[:]
}

// isSecretSyntax reports whether v looks like a value this package made: unpadded
// base64url of secretBytes bytes. Anything else is refused before the database is asked.
func isSecretSyntax(v string) bool {
	if len(v) != secretLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isBase64URL(v[i]) {
			return false
		}
	}
	return true
}

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
