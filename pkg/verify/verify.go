// Package verify checks Authly access tokens in resource servers: services that receive
// requests carrying an Authly access token and must decide whether to serve them, without
// calling Authly for each request.
//
// A Verifier fetches Authly's public keys (the JWKS at /.well-known/jwks.json), caches them,
// and checks each token's signature, algorithm, issuer, audience (when configured), expiry,
// not-before time and type: only access tokens (typ "at+jwt") pass, never refresh tokens.
// Its Middleware does this for every request and puts the token's claims in the request's
// context.
//
//	v, err := verify.New(verify.Options{
//		JWKSURL: "https://auth.example.com/.well-known/jwks.json",
//		Issuer:  "https://auth.example.com",
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	http.Handle("/api/", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		claims, _ := verify.ClaimsFromContext(r.Context())
//		fmt.Fprintf(w, "hello, user %s\n", claims.Subject)
//	})))
//	log.Fatal(http.ListenAndServe(":8080", nil))
//
// Authly publishes a new key before it signs with it, so tokens of a rotated key verify
// with the keys already cached. A token naming a key the cache does not hold makes the
// Verifier fetch the JWKS again, at most once per MinRefetchInterval, so tokens with forged
// key ids cannot make it flood Authly with requests. A key Authly revokes stops verifying
// here when the cached JWKS is next refreshed, at most CacheFor (or the JWKS response's
// max-age) later.
//
// The signature check is golang-jwt's; the key of each token is chosen by its kid, and the
// token's alg must equal the algorithm published with that key. Keys a token carries or
// points at (jwk, jku, x5u headers) are never used or fetched, and HMAC algorithms are
// never accepted.
package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authly/authly/internal/token"
)

// Defaults of Options.
const (
	DefaultCacheFor           = 5 * time.Minute
	DefaultMinRefetchInterval = 30 * time.Second
	DefaultLeeway             = 5 * time.Second
	DefaultFetchTimeout       = 10 * time.Second
)

// maxCacheFor bounds a max-age the JWKS response asks for.
const maxCacheFor = 24 * time.Hour

// maxJWKSBytes bounds the JWKS body read; Authly's holds a handful of keys.
const maxJWKSBytes = 1 << 20

// maxTokenBytes bounds the token read from a request.
const maxTokenBytes = 8 << 10

// Errors. Every refused token wraps ErrInvalidToken; the wrapped reason is for logs.
var (
	ErrInvalidToken    = errors.New("verify: invalid token")
	ErrJWKSUnavailable = errors.New("verify: the JWKS could not be fetched")
)

// Options configures a Verifier.
type Options struct {
	// JWKSURL is Authly's JWKS, such as https://auth.example.com/.well-known/jwks.json.
	JWKSURL string
	// Issuer is the iss every token must carry: Authly's issuer (AUTHLY_ISSUER).
	Issuer string
	// Audience, when set, must be among the token's aud values.
	Audience string
	// Algorithms accepted; the default is ES256, EdDSA and RS256. HMAC algorithms are refused.
	Algorithms []string
	// HTTPClient fetches the JWKS; the default has a DefaultFetchTimeout timeout.
	HTTPClient *http.Client
	// CacheFor is how long a fetched JWKS is used before it is fetched again, when the
	// response gives no Cache-Control max-age. Default DefaultCacheFor.
	CacheFor time.Duration
	// MinRefetchInterval is the least time between two fetches, whatever tokens arrive.
	// Default DefaultMinRefetchInterval.
	MinRefetchInterval time.Duration
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; the default is time.Now.
	Now func() time.Time
}

// Claims are the checked claims of an access token.
type Claims struct {
	Subject   string // the user id
	SessionID string // the Authly session (login) the token belongs to
	ID        string // jti
	Issuer    string
	Audience  []string
	KeyID     string // the key that signed it
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
}

// Verifier checks Authly access tokens. It is safe for concurrent use.
type Verifier struct {
	jwksURL    string
	issuer     string
	client     *http.Client
	algs       []string
	cacheFor   time.Duration
	minRefetch time.Duration
	now        func() time.Time
	parser     *jwt.Parser

	keys        atomic.Pointer[keySet]
	fetchMu     sync.Mutex // one fetch at a time; guards lastAttempt and lastErr
	lastAttempt time.Time
	lastErr     error
	refreshing  atomic.Bool
}

type keySet struct {
	byKID   map[string]publicKey
	expires time.Time
}

type publicKey struct {
	alg string
	key any
}

// New checks opts and returns a Verifier. It fetches nothing until the first token arrives.
func New(opts Options) (*Verifier, error) {
	u, err := url.Parse(opts.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("verify: JWKSURL must be an http or https URL, got %q", opts.JWKSURL)
	}
	if opts.Issuer == "" {
		return nil, errors.New("verify: Issuer is required")
	}
	algs := opts.Algorithms
	if len(algs) == 0 {
		algs = []string{token.ES256, token.EdDSA, token.RS256}
	}
	for _, alg := range algs {
		if !token.Asymmetric(alg) {
			return nil, fmt.Errorf("verify: algorithm %q is not accepted (ES256, EdDSA and RS256 are)", alg)
		}
	}
	v := &Verifier{
		jwksURL:    opts.JWKSURL,
		issuer:     opts.Issuer,
		client:     opts.HTTPClient,
		algs:       slices.Clone(algs),
		cacheFor:   positiveOr(opts.CacheFor, DefaultCacheFor),
		minRefetch: positiveOr(opts.MinRefetchInterval, DefaultMinRefetchInterval),
		now:        opts.Now,
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: DefaultFetchTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	parserOpts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithLeeway(positiveOr(opts.Leeway, DefaultLeeway)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
	}
	if opts.Audience != "" {
		parserOpts = append(parserOpts, jwt.WithAudience(opts.Audience))
	}
	v.parser = jwt.NewParser(parserOpts...)
	return v, nil
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

type tokenClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// Verify checks an access token and returns its claims. A refused token gives an error
// wrapping ErrInvalidToken; when no key could ever be fetched the error wraps
// ErrJWKSUnavailable instead.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: bad length", ErrInvalidToken)
	}
	var claims tokenClaims
	var kid string
	var unavailable error
	_, err := v.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != token.AccessTokenTyp {
			return nil, fmt.Errorf("typ %q is not an access token's", typ)
		}
		var ok bool
		if kid, ok = t.Header["kid"].(string); !ok || !token.ValidKeyID(kid) {
			return nil, errors.New("missing or malformed kid")
		}
		k, err := v.key(ctx, kid)
		if errors.Is(err, ErrJWKSUnavailable) {
			unavailable = err
		}
		if err != nil {
			return nil, err
		}
		if t.Method.Alg() != k.alg {
			return nil, fmt.Errorf("alg %s does not match key %s (%s)", t.Method.Alg(), kid, k.alg)
		}
		return k.key, nil
	})
	if unavailable != nil {
		return nil, unavailable
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" || claims.ID == "" {
		return nil, fmt.Errorf("%w: missing sub or jti", ErrInvalidToken)
	}
	out := &Claims{
		Subject: claims.Subject, SessionID: claims.SessionID, ID: claims.ID, Issuer: claims.Issuer,
		Audience: claims.Audience, KeyID: kid, ExpiresAt: claims.ExpiresAt.Time,
	}
	if claims.IssuedAt != nil {
		out.IssuedAt = claims.IssuedAt.Time
	}
	if claims.NotBefore != nil {
		out.NotBefore = claims.NotBefore.Time
	}
	return out, nil
}

// key returns the public key with the given kid. A known key is served from the cache,
// which is refreshed in the background once it is older than its lifetime. An unknown kid
// fetches the JWKS at once, unless a fetch happened less than MinRefetchInterval ago.
func (v *Verifier) key(ctx context.Context, kid string) (publicKey, error) {
	if set := v.keys.Load(); set != nil {
		if k, ok := set.byKID[kid]; ok {
			if !v.now().Before(set.expires) {
				v.refreshInBackground()
			}
			return k, nil
		}
	}
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	set := v.keys.Load()
	if set != nil {
		if k, ok := set.byKID[kid]; ok {
			return k, nil
		}
	}
	if err := v.fetchLocked(ctx); err != nil && set == nil {
		return publicKey{}, fmt.Errorf("%w: %w", ErrJWKSUnavailable, err)
	}
	if set = v.keys.Load(); set != nil {
		if k, ok := set.byKID[kid]; ok {
			return k, nil
		}
	}
	return publicKey{}, errors.New("unknown kid")
}

// refreshInBackground fetches the JWKS again without holding up the request that noticed
// it was stale.
func (v *Verifier) refreshInBackground() {
	if !v.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer v.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), DefaultFetchTimeout)
		defer cancel()
		v.fetchMu.Lock()
		defer v.fetchMu.Unlock()
		if set := v.keys.Load(); set != nil && v.now().Before(set.expires) {
			return // fetched meanwhile
		}
		_ = v.fetchLocked(ctx) // on failure the stale keys stay in use
	}()
}

// fetchLocked fetches and installs the JWKS, unless the last attempt was less than
// MinRefetchInterval ago; then it returns the last error, if any. The caller holds fetchMu.
func (v *Verifier) fetchLocked(ctx context.Context) error {
	now := v.now()
	if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.minRefetch && !now.Before(v.lastAttempt) {
		return v.lastErr
	}
	v.lastAttempt = now
	set, err := v.fetch(ctx, now)
	v.lastErr = err
	if err != nil {
		return err
	}
	v.keys.Store(set)
	return nil
}

func (v *Verifier) fetch(ctx context.Context, now time.Time) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.jwksURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", v.jwksURL, resp.Status)
	}
	if ct, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		(ct != "application/json" && ct != "application/jwk-set+json") {
		return nil, fmt.Errorf("GET %s: content type %q is not JSON", v.jwksURL, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: JWKS larger than %d bytes", v.jwksURL, maxJWKSBytes)
	}
	byKID, err := parseJWKS(body, v.algs)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", v.jwksURL, err)
	}
	return &keySet{byKID: byKID, expires: now.Add(v.lifetime(resp.Header.Get("Cache-Control")))}, nil
}

// lifetime is how long a JWKS response may be used: its max-age within
// [MinRefetchInterval, 24h], or CacheFor without one.
func (v *Verifier) lifetime(cacheControl string) time.Duration {
	for _, directive := range strings.Split(cacheControl, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		if strings.EqualFold(name, "max-age") {
			if secs, err := strconv.Atoi(strings.Trim(value, `"`)); err == nil && secs >= 0 {
				return min(max(time.Duration(secs)*time.Second, v.minRefetch), maxCacheFor)
			}
		}
	}
	return v.cacheFor
}

// privateMembers are the JWK members of private or symmetric keys (RFC 7518 §6). A JWKS
// entry holding any of them is never used: a published key must be public.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// parseJWKS reads the signing keys of a JWK Set. Keys that are not usable for verifying
// Authly tokens (no kid or a malformed one, no alg or one not accepted, another use, a key
// type that does not fit the alg, private members) are left out, as RFC 7517 §5 asks of
// keys a reader does not understand.
func parseJWKS(body []byte, algs []string) (map[string]publicKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not JSON: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS has no "keys" member`)
	}
	out := make(map[string]publicKey, len(doc.Keys))
	for _, raw := range doc.Keys {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			continue
		}
		if slices.ContainsFunc(privateMembers, func(m string) bool { _, ok := members[m]; return ok }) {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		if !token.ValidKeyID(jwk.KeyID) || !slices.Contains(algs, jwk.Algorithm) || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		if !fits(jwk.Algorithm, jwk.Key) {
			continue
		}
		if _, dup := out[jwk.KeyID]; dup {
			return nil, fmt.Errorf("JWKS lists the kid %q twice", jwk.KeyID)
		}
		out[jwk.KeyID] = publicKey{alg: jwk.Algorithm, key: jwk.Key}
	}
	return out, nil
}

// fits reports whether key is a public key of the kind alg signs with.
func fits(alg string, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == token.ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == token.EdDSA && len(k) == ed25519.PublicKeySize
	case *rsa.PublicKey:
		return alg == token.RS256 && k.N.BitLen() >= token.MinRSABits
	}
	return false
}

type contextKey struct{}

// ClaimsFromContext returns the claims Middleware put in a request's context.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(contextKey{}).(*Claims)
	return c, ok
}

// Middleware serves next only for requests with a valid access token in their
// Authorization header ("Bearer <token>"), with the token's claims in the request's context
// (see ClaimsFromContext). Other requests get 401 with a WWW-Authenticate challenge
// (RFC 6750 §3); when no key could be fetched from Authly, 503.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer`)
			problem(w, http.StatusUnauthorized, "An access token is required.")
			return
		}
		claims, err := v.Verify(r.Context(), raw)
		if errors.Is(err, ErrJWKSUnavailable) {
			w.Header().Set("Retry-After", strconv.Itoa(int(v.minRefetch/time.Second)))
			problem(w, http.StatusServiceUnavailable, "The token's keys are unavailable.")
			return
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			problem(w, http.StatusUnauthorized, "The access token is invalid or expired.")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), contextKey{}, claims)))
	})
}

// bearer takes the token out of an Authorization header value.
func bearer(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// problem writes an RFC 9457 problem document.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}
