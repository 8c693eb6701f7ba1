// Package token issues and verifies Authly's signed JWTs: short-lived access tokens and
// longer-lived refresh tokens, each signed with its own key and marked with its own type.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Type tells an access token from a refresh token. The two are signed with different keys
// and carry different JOSE "typ" headers, so neither is ever accepted in the other's place
// (RFC 8725 §3.11).
type Type string

const (
	Access  Type = "access"
	Refresh Type = "refresh"
)

// valid reports whether t is one of the two token types.
func (t Type) valid() bool { return t == Access || t == Refresh }

// header is the JOSE "typ" value of each token type. Access tokens follow RFC 9068.
func (t Type) header() string {
	if t == Access {
		return "at+jwt"
	}
	return "rt+jwt"
}

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 5 * time.Second

// jtiBytes is the entropy of a token id: 128 bits, so ids cannot be guessed.
const jtiBytes = 16

// ErrInvalid is returned for every token that fails verification. The reason is wrapped for
// logs and tests but is never shown to a client.
var ErrInvalid = errors.New("invalid token")

// Claims are the registered claims plus the session id. The subject is the user id.
type Claims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// Config configures an Issuer.
type Config struct {
	Algorithm  string // HS256, HS384 or HS512
	AccessKey  []byte
	RefreshKey []byte
	Issuer     string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Now        func() time.Time // defaults to time.Now
	Random     io.Reader        // defaults to crypto/rand.Reader
}

// Issuer signs and verifies tokens. It is safe for concurrent use.
type Issuer struct {
	method     jwt.SigningMethod
	accessKey  []byte
	refreshKey []byte
	issuer     string
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	random     io.Reader
	parsers    map[Type]*jwt.Parser
	codec      *codec // signs, and verifies Authly's own layout fast; nil: golang-jwt does all
}

// NewIssuer validates cfg and returns an Issuer.
func NewIssuer(cfg Config) (*Issuer, error) {
	var method jwt.SigningMethod
	switch cfg.Algorithm {
	case "HS256":
		method = jwt.SigningMethodHS256
	case "HS384":
		method = jwt.SigningMethodHS384
	case "HS512":
		method = jwt.SigningMethodHS512
	default:
		return nil, fmt.Errorf("token: unsupported algorithm %q", cfg.Algorithm)
	}
	if len(cfg.AccessKey) == 0 || len(cfg.RefreshKey) == 0 {
		return nil, errors.New("token: both signing keys are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	is := &Issuer{
		method:     method,
		accessKey:  cfg.AccessKey,
		refreshKey: cfg.RefreshKey,
		issuer:     cfg.Issuer,
		accessTTL:  cfg.AccessTTL,
		refreshTTL: cfg.RefreshTTL,
		now:        cfg.Now,
		random:     cfg.Random,
		parsers:    map[Type]*jwt.Parser{},
	}
	is.codec = newCodec(method.Alg(), cfg.Issuer, is.key)
	for _, typ := range []Type{Access, Refresh} {
		// The algorithm is pinned, so "none" and every other algorithm are refused before
		// any key is looked at (RFC 8725 §3.1).
		is.parsers[typ] = jwt.NewParser(
			jwt.WithValidMethods([]string{method.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithLeeway(Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(cfg.Now),
		)
	}
	return is, nil
}

// TTL is the lifetime of tokens of the given type.
func (is *Issuer) TTL(typ Type) time.Duration {
	if typ == Access {
		return is.accessTTL
	}
	return is.refreshTTL
}

func (is *Issuer) key(typ Type) []byte {
	if typ == Access {
		return is.accessKey
	}
	return is.refreshKey
}

// Issued is a freshly signed token with the claims it carries.
type Issued struct {
	Token     string
	ID        string // jti
	ExpiresAt time.Time
}

// NewID returns a random token id with 128 bits of entropy.
func (is *Issuer) NewID() (string, error) {
	b := make([]byte, jtiBytes)
	if _, err := io.ReadFull(is.random, b); err != nil {
		return "", fmt.Errorf("token: reading random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Issue signs a token of type typ for the user and session. Its expiry is the type's TTL,
// but never later than notAfter when notAfter is not zero.
func (is *Issuer) Issue(typ Type, userID, sessionID uuid.UUID, notAfter time.Time) (Issued, error) {
	if !typ.valid() {
		return Issued{}, fmt.Errorf("token: unknown token type %q", typ)
	}
	jti, err := is.NewID()
	if err != nil {
		return Issued{}, err
	}
	now := is.now().Truncate(time.Second)
	exp := now.Add(is.TTL(typ))
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter.Truncate(time.Second)
	}
	if is.codec != nil {
		var buf [384]byte
		payload := is.codec.claimsJSON(buf[:0], userID, sessionID, jti, now, exp)
		return Issued{Token: is.codec.sign(typ, payload), ID: jti, ExpiresAt: exp}, nil
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.issuer,
			Subject:   userID.String(),
			ID:        jti,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		SessionID: sessionID.String(),
	}
	t := jwt.NewWithClaims(is.method, claims)
	t.Header["typ"] = typ.header()
	signed, err := t.SignedString(is.key(typ))
	if err != nil {
		return Issued{}, fmt.Errorf("token: signing: %w", err)
	}
	return Issued{Token: signed, ID: jti, ExpiresAt: exp}, nil
}

// Verified holds the checked claims of a token.
type Verified struct {
	ID        string
	UserID    uuid.UUID
	SessionID uuid.UUID
	ExpiresAt time.Time
}

// maxTokenLen bounds the work spent on a token before its signature is checked.
const maxTokenLen = 4096

// Verify checks the signature, algorithm, type header, issuer and time claims of a token of
// type typ. Every failure wraps ErrInvalid.
func (is *Issuer) Verify(typ Type, raw string) (Verified, error) {
	if raw == "" || len(raw) > maxTokenLen {
		return Verified{}, fmt.Errorf("%w: bad length", ErrInvalid)
	}
	parser, ok := is.parsers[typ]
	if !ok {
		return Verified{}, fmt.Errorf("%w: unknown token type %q", ErrInvalid, typ)
	}
	if is.codec != nil {
		if v, ok := is.codec.verify(typ, raw, is.now()); ok {
			return v, nil
		}
	}
	var claims Claims
	_, err := parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if h, _ := t.Header["typ"].(string); h != typ.header() {
			return nil, fmt.Errorf("unexpected typ header %q", h)
		}
		return is.key(typ), nil
	})
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if claims.ID == "" || claims.NotBefore == nil {
		return Verified{}, fmt.Errorf("%w: missing jti or nbf", ErrInvalid)
	}
	userID, err := uuid.Parse(claims.Subject)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: bad sub", ErrInvalid)
	}
	sessionID, err := uuid.Parse(claims.SessionID)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: bad sid", ErrInvalid)
	}
	return Verified{ID: claims.ID, UserID: userID, SessionID: sessionID, ExpiresAt: claims.ExpiresAt.Time}, nil
}
