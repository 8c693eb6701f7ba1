// Package token issues and verifies Authly's signed JWTs: short-lived access tokens and
// longer-lived refresh tokens, each marked with its own type, with the key that signed it
// named in the "kid" header. golang-jwt does every signature and every check of the claims.
//
// Tokens are signed either with the HMAC secrets (JWT_SECRET_KEY for access tokens,
// JWT_REFRESH_SECRET_KEY for refresh tokens) or with the current private key of a KeySource,
// such as the key store of internal/keys. The verifier looks each token's key up by kid and
// accepts only the algorithm that key was made for, so neither "none" nor an algorithm
// confusion (a public key used as an HMAC secret) can pass.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Type tells an access token from a refresh token. The two carry different JOSE "typ"
// headers, and HMAC-signed ones are signed with different secrets, so neither is ever
// accepted in the other's place (RFC 8725 §3.11).
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
		return AccessTokenTyp
	}
	return RefreshTokenTyp
}

// The JOSE "typ" headers of the two token types.
const (
	AccessTokenTyp  = "at+jwt"
	RefreshTokenTyp = "rt+jwt"
)

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

// ErrNoSigningKey is returned by Issue when the key source has no current key.
var ErrNoSigningKey = errors.New("token: no signing key")

// Config configures an Issuer.
type Config struct {
	// Algorithm is JWT_ALGORITHM. With HS256, HS384 or HS512 tokens are signed with
	// AccessKey and RefreshKey. With ES256, EdDSA or RS256 they are signed with the current
	// key of Keys, in that key's own algorithm (during a change of algorithm the key store's
	// current key may still be of the old one until it rotates).
	Algorithm string
	// AccessKey and RefreshKey are the HMAC secrets. An HMAC Algorithm needs both. With a
	// public-key Algorithm they are optional (both or neither): when set they only verify,
	// so that tokens signed before a switch from HMAC keep working until they expire.
	AccessKey  []byte
	RefreshKey []byte
	// HMACAlgorithm is the algorithm of those verify-only secrets when Algorithm is a
	// public-key one; it defaults to HS256. With an HMAC Algorithm it must be empty or equal.
	HMACAlgorithm string
	// Keys supplies the public-key signing and verification keys. A public-key Algorithm needs
	// it; with an HMAC Algorithm its keys, when given, only verify.
	Keys       KeySource
	Issuer     string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Now        func() time.Time // defaults to time.Now
	Random     io.Reader        // defaults to crypto/rand.Reader
	// CacheSize bounds the cache of verified tokens: 0 means DefaultCacheSize, a negative
	// number turns the cache off.
	CacheSize int
}

// hmacKey is one HMAC secret with its fixed key id, bound to one token type.
type hmacKey struct {
	method jwt.SigningMethod
	verify *VerificationKey
}

// Issuer signs and verifies tokens. It is safe for concurrent use.
type Issuer struct {
	signWithHMAC bool
	hmac         map[Type]hmacKey            // nil without HMAC secrets
	hmacByID     map[string]*VerificationKey // the same keys by kid
	keys         KeySource                   // nil without public keys
	issuer       string
	accessTTL    time.Duration
	refreshTTL   time.Duration
	now          func() time.Time
	random       io.Reader
	parser       *jwt.Parser
	cache        *verifiedCache         // nil when off
	swept        atomic.Pointer[KeySet] // the key set the cache was last swept against
}

// NewIssuer validates cfg and returns an Issuer.
func NewIssuer(cfg Config) (*Issuer, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	is := &Issuer{
		keys:       cfg.Keys,
		issuer:     cfg.Issuer,
		accessTTL:  cfg.AccessTTL,
		refreshTTL: cfg.RefreshTTL,
		now:        cfg.Now,
		random:     cfg.Random,
	}
	hmacAlg := cfg.HMACAlgorithm
	haveSecrets := len(cfg.AccessKey) > 0 || len(cfg.RefreshKey) > 0
	switch {
	case HMAC(cfg.Algorithm):
		if hmacAlg != "" && hmacAlg != cfg.Algorithm {
			return nil, fmt.Errorf("token: HMAC algorithm %q differs from the signing algorithm %s", hmacAlg, cfg.Algorithm)
		}
		if len(cfg.AccessKey) == 0 || len(cfg.RefreshKey) == 0 {
			return nil, errors.New("token: both signing keys are required")
		}
		hmacAlg, is.signWithHMAC = cfg.Algorithm, true
	case Asymmetric(cfg.Algorithm):
		if cfg.Keys == nil {
			return nil, fmt.Errorf("token: %s needs a key source", cfg.Algorithm)
		}
		if hmacAlg == "" {
			hmacAlg = HS256
		}
		if !HMAC(hmacAlg) {
			return nil, fmt.Errorf("token: unsupported HMAC algorithm %q", hmacAlg)
		}
		if haveSecrets && (len(cfg.AccessKey) == 0 || len(cfg.RefreshKey) == 0) {
			return nil, errors.New("token: set both HMAC secrets or neither")
		}
	default:
		return nil, fmt.Errorf("token: unsupported algorithm %q", cfg.Algorithm)
	}

	methods := []string{}
	if haveSecrets {
		is.hmac = map[Type]hmacKey{
			Access:  {methodFor(hmacAlg), &VerificationKey{ID: HMACAccessKeyID, Algorithm: hmacAlg, Key: cfg.AccessKey, Type: Access}},
			Refresh: {methodFor(hmacAlg), &VerificationKey{ID: HMACRefreshKeyID, Algorithm: hmacAlg, Key: cfg.RefreshKey, Type: Refresh}},
		}
		is.hmacByID = map[string]*VerificationKey{HMACAccessKeyID: is.hmac[Access].verify, HMACRefreshKeyID: is.hmac[Refresh].verify}
		methods = append(methods, hmacAlg)
	}
	if cfg.Keys != nil {
		methods = append(methods, ES256, EdDSA, RS256)
	}
	// Only the algorithms this issuer has keys for get past the parser, so "none" is refused
	// before any key is looked at (RFC 8725 §3.1); the key function then pins each token to
	// the one algorithm of the key its kid names.
	is.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.Now),
	)
	switch {
	case cfg.CacheSize == 0:
		is.cache = newVerifiedCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		is.cache = newVerifiedCache(cfg.CacheSize)
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

// Issued is a freshly signed token with the claims it carries.
type Issued struct {
	Token     string
	ID        string // jti
	KeyID     string // kid: the key that signed it
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
// but never later than notAfter when notAfter is not zero. It fails with ErrNoSigningKey
// when a key source has no current key.
func (is *Issuer) Issue(typ Type, userID, sessionID uuid.UUID, notAfter time.Time) (Issued, error) {
	if !typ.valid() {
		return Issued{}, fmt.Errorf("token: unknown token type %q", typ)
	}
	var (
		method jwt.SigningMethod
		key    any
		kid    string
	)
	if is.signWithHMAC {
		k := is.hmac[typ]
		method, key, kid = k.method, k.verify.Key, k.verify.ID
	} else {
		sk := is.keys.KeySet().Signing()
		if sk == nil {
			return Issued{}, ErrNoSigningKey
		}
		method, key, kid = sk.method, sk.key, sk.id
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
	t := jwt.NewWithClaims(method, claims)
	t.Header["typ"] = typ.header()
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return Issued{}, fmt.Errorf("token: signing: %w", err)
	}
	return Issued{Token: signed, ID: jti, KeyID: kid, ExpiresAt: exp}, nil
}

// Verified holds the checked claims of a token.
type Verified struct {
	ID        string
	UserID    uuid.UUID
	SessionID uuid.UUID
	KeyID     string // the key that signed it
	ExpiresAt time.Time
}

// maxTokenLen bounds the work spent on a token before its signature is checked.
const maxTokenLen = 4096

// Verify checks the signature, algorithm, key, type header, issuer and time claims of a
// token of type typ. Every failure wraps ErrInvalid.
//
// A token verified before is answered from a bounded cache, keyed by the whole token
// string, until it expires, unless the key that signed it has left the key set since.
func (is *Issuer) Verify(typ Type, raw string) (Verified, error) {
	if raw == "" || len(raw) > maxTokenLen {
		return Verified{}, fmt.Errorf("%w: bad length", ErrInvalid)
	}
	if !typ.valid() {
		return Verified{}, fmt.Errorf("%w: unknown token type %q", ErrInvalid, typ)
	}
	var ks *KeySet
	if is.keys != nil {
		ks = is.keys.KeySet()
	}
	now := is.now()
	if is.cache != nil {
		is.sweepCache(ks)
		if v, kid, ok := is.cache.get(typ, raw, now); ok {
			if _, known := is.lookup(ks, kid); known {
				return v, nil
			}
			is.cache.remove(raw)
		}
	}

	var claims Claims
	var kid string
	_, err := is.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		key, err := is.keyFor(ks, typ, t)
		if err != nil {
			return nil, err
		}
		kid = key.ID
		return key.Key, nil
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
	v := Verified{ID: claims.ID, UserID: userID, SessionID: sessionID, KeyID: kid, ExpiresAt: claims.ExpiresAt.Time}
	if is.cache != nil {
		is.cache.put(typ, raw, kid, v, now)
	}
	return v, nil
}

// keyFor picks the key that verifies t as a token of type typ: the one its kid names, in the
// algorithm that key was made for. The jku, x5u and jwk headers are never read: a token
// cannot bring or point at its own key.
func (is *Issuer) keyFor(ks *KeySet, typ Type, t *jwt.Token) (*VerificationKey, error) {
	if h, _ := t.Header["typ"].(string); h != typ.header() {
		return nil, fmt.Errorf("unexpected typ header %q", h)
	}
	var key *VerificationKey
	rawKID, present := t.Header["kid"]
	if !present {
		// Tokens signed with the HMAC secrets before key ids were written into headers.
		k, ok := is.hmac[typ]
		if !ok {
			return nil, errors.New("no kid header")
		}
		key = k.verify
	} else {
		kid, ok := rawKID.(string)
		if !ok || !ValidKeyID(kid) {
			return nil, errors.New("malformed kid header")
		}
		if key, ok = is.lookup(ks, kid); !ok {
			return nil, errors.New("unknown kid")
		}
	}
	if key.Type != "" && key.Type != typ {
		return nil, fmt.Errorf("key %s does not sign %s tokens", key.ID, typ)
	}
	if alg := t.Method.Alg(); alg != key.Algorithm {
		return nil, fmt.Errorf("algorithm %s does not match key %s (%s)", alg, key.ID, key.Algorithm)
	}
	return key, nil
}

func (is *Issuer) lookup(ks *KeySet, kid string) (*VerificationKey, bool) {
	if k, ok := is.hmacByID[kid]; ok {
		return k, true
	}
	return ks.Lookup(kid)
}

// sweepCache drops the cached tokens of keys that are gone, once per new key set.
func (is *Issuer) sweepCache(ks *KeySet) {
	old := is.swept.Load()
	if old == ks || !is.swept.CompareAndSwap(old, ks) || old == nil {
		return
	}
	is.cache.sweep(func(kid string) bool {
		_, ok := is.lookup(ks, kid)
		return ok
	})
}
