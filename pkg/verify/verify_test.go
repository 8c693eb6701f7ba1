package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/authly/authly/internal/keys"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
	"github.com/authly/authly/pkg/verify"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

const issuer = "https://auth.authly.test"

var t0 = time.Date(2030, time.March, 14, 15, 9, 26, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// authly is the Authly side of a test: a real key store, an issuer signing with it, and an
// HTTP server publishing its JWKS as Authly will, counting the fetches.
type authly struct {
	store   *keys.Store
	issuer  *token.Issuer
	server  *httptest.Server
	fetches atomic.Int32
	down    atomic.Bool // answer 503 instead of the JWKS
}

func newAuthly(t *testing.T, clk *clock) *authly {
	t.Helper()
	store, err := keys.Open(context.Background(), keys.Options{
		DB: testdb.Pool(t), KEK: make([]byte, keys.KEKSize), TokenLifetime: 7 * 24 * time.Hour,
		Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	is, err := token.NewIssuer(token.Config{Algorithm: token.ES256, Keys: store, Issuer: issuer,
		AccessTTL: 30 * time.Minute, RefreshTTL: 7 * 24 * time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := &authly{store: store, issuer: is}
	a.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		a.fetches.Add(1)
		if a.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(store.JWKSMaxAge()/time.Second)))
		w.Write(store.JWKS())
	}))
	t.Cleanup(a.server.Close)
	return a
}

func (a *authly) jwksURL() string { return a.server.URL + "/.well-known/jwks.json" }

func (a *authly) issue(t *testing.T, typ token.Type) token.Issued {
	t.Helper()
	issued, err := a.issuer.Issue(typ, uuid.New(), uuid.New(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return issued
}

func newVerifier(t *testing.T, a *authly, clk *clock, mutate ...func(*verify.Options)) *verify.Verifier {
	t.Helper()
	opts := verify.Options{JWKSURL: a.jwksURL(), Issuer: issuer, Now: clk.Now}
	for _, m := range mutate {
		m(&opts)
	}
	v, err := verify.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// protected serves the claims the middleware put in the context, as JSON.
func protected(v *verify.Verifier) http.Handler {
	return v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := verify.ClaimsFromContext(r.Context())
		if !ok {
			http.Error(w, "no claims in the context", http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(claims)
	}))
}

func call(t *testing.T, h http.Handler, authorization string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/things", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), body
}

func TestMiddlewarePassesAValidAccessToken(t *testing.T) {
	clk := &clock{now: t0}
	a := newAuthly(t, clk)
	h := protected(newVerifier(t, a, clk))
	issued := a.issue(t, token.Access)
	want, err := a.issuer.Verify(token.Access, issued.Token)
	if err != nil {
		t.Fatal(err)
	}

	resp, body := call(t, h, "Bearer "+issued.Token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got verify.Claims
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Subject != want.UserID.String() || got.SessionID != want.SessionID.String() || got.ID != issued.ID ||
		got.KeyID != issued.KeyID || got.Issuer != issuer || !got.ExpiresAt.Equal(issued.ExpiresAt) || !got.IssuedAt.Equal(t0) {
		t.Fatalf("claims %+v, want those of %+v", got, want)
	}
	if resp, _ := call(t, h, "bearer "+issued.Token); resp.StatusCode != http.StatusOK {
		t.Fatalf("the scheme in lower case is refused: %d", resp.StatusCode)
	}
	if n := a.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for two requests, want 1", n)
	}
}

func TestMiddlewareRefusesBadRequests(t *testing.T) {
	clk := &clock{now: t0}
	a := newAuthly(t, clk)
	h := protected(newVerifier(t, a, clk))
	access := a.issue(t, token.Access)
	refresh := a.issue(t, token.Refresh)
	parts := strings.Split(access.Token, ".")

	// The published key in the forms an attacker can read, used as an HMAC secret.
	publicKey := a.store.KeySet().Signing().Public()
	der, err := x509.MarshalPKIXPublicKey(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	header := func(alg, typ, kid string) map[string]any {
		return map[string]any{"alg": alg, "typ": typ, "kid": kid}
	}
	claims := jwt.MapClaims{"iss": issuer, "sub": uuid.NewString(), "jti": "AAECAwQFBgcICQoLDA0ODw", "sid": uuid.NewString(),
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix()}
	sign := func(method jwt.SigningMethod, key any, h map[string]any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		tok.Header = h
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherIssuer := jwt.MapClaims{}
	for k, v := range claims {
		otherIssuer[k] = v
	}
	otherIssuer["iss"] = "https://evil.example"

	tests := []struct {
		name, authorization string
		challenge           string
	}{
		{"no Authorization header", "", "Bearer"},
		{"the Basic scheme", "Basic YWxpY2U6c2VjcmV0", "Bearer"},
		{"Bearer without a token", "Bearer ", "Bearer"},
		{"a refresh token", "Bearer " + refresh.Token, `Bearer error="invalid_token"`},
		{"an access token with a tampered payload", "Bearer " + parts[0] + "." + parts[1] + "x." + parts[2], `Bearer error="invalid_token"`},
		{`alg "none"`, "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, header("none", "at+jwt", access.KeyID), claims), `Bearer error="invalid_token"`},
		{"HS256 keyed with the published public key", "Bearer " + sign(jwt.SigningMethodHS256, der, header("HS256", "at+jwt", access.KeyID), claims), `Bearer error="invalid_token"`},
		{"a token signed by another key under the real kid", "Bearer " + sign(jwt.SigningMethodES256, attacker, header("ES256", "at+jwt", access.KeyID), claims), `Bearer error="invalid_token"`},
		{"a token from another issuer", "Bearer " + sign(jwt.SigningMethodES256, attacker, header("ES256", "at+jwt", access.KeyID), otherIssuer), `Bearer error="invalid_token"`},
		{"a kid with a path in it", "Bearer " + sign(jwt.SigningMethodES256, attacker, header("ES256", "at+jwt", "../../jwks"), claims), `Bearer error="invalid_token"`},
		{"an oversized token", "Bearer " + strings.Repeat("a", 9000), `Bearer error="invalid_token"`},
	}
	for _, tc := range tests {
		t.Run(tc.name+" gets 401", func(t *testing.T) {
			resp, body := call(t, h, tc.authorization)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}

	t.Run("an expired access token gets 401", func(t *testing.T) {
		clk.Advance(30*time.Minute + verify.DefaultLeeway + time.Second)
		defer clk.Advance(-(30*time.Minute + verify.DefaultLeeway + time.Second))
		if resp, body := call(t, h, "Bearer "+access.Token); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("an access token before its nbf gets 401", func(t *testing.T) {
		clk.Advance(-time.Minute)
		defer clk.Advance(time.Minute)
		if resp, body := call(t, h, "Bearer "+access.Token); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("the valid token passes (control)", func(t *testing.T) {
		if resp, body := call(t, h, "Bearer "+access.Token); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}

// TestForgedKidsDoNotHammerAuthly: tokens naming unknown keys make the verifier fetch the
// JWKS at most once per MinRefetchInterval, however many arrive.
func TestForgedKidsDoNotHammerAuthly(t *testing.T) {
	clk := &clock{now: t0}
	a := newAuthly(t, clk)
	v := newVerifier(t, a, clk)
	h := protected(v)
	if resp, _ := call(t, h, "Bearer "+a.issue(t, token.Access).Token); resp.StatusCode != http.StatusOK {
		t.Fatal("the control token was refused")
	}
	if n := a.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first request, want 1", n)
	}
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": issuer, "sub": "x", "exp": t0.Add(time.Hour).Unix()})
		tok.Header["typ"] = "at+jwt"
		tok.Header["kid"] = "forged-" + uuid.NewString()
		s, err := tok.SignedString(attacker)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	hammer := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, _ := call(t, h, forged()); resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("a forged kid got %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
	}

	hammer(500)
	if n := a.fetches.Load(); n != 1 {
		t.Fatalf("500 forged kids right after a fetch caused %d fetches in all, want still 1", n)
	}
	clk.Advance(verify.DefaultMinRefetchInterval)
	hammer(500)
	if n := a.fetches.Load(); n != 2 {
		t.Fatalf("500 forged kids after MinRefetchInterval caused %d fetches in all, want 2", n)
	}
	clk.Advance(verify.DefaultMinRefetchInterval / 2)
	hammer(200)
	if n := a.fetches.Load(); n != 2 {
		t.Fatalf("forged kids within MinRefetchInterval of the last fetch caused %d fetches in all, want 2", n)
	}
}

// TestRotationNeedsNoFetch: Authly publishes the next key before it signs, so the first
// token of a rotated key verifies from the JWKS already cached.
func TestRotationNeedsNoFetch(t *testing.T) {
	clk := &clock{now: t0}
	a := newAuthly(t, clk)
	h := protected(newVerifier(t, a, clk))
	// The next key has been published long enough to sign by the time the verifier first
	// fetches the JWKS, which it then keeps for the JWKS's max-age.
	clk.Advance(keys.DefaultJWKSMaxAge + keys.DefaultPollInterval)
	if resp, _ := call(t, h, "Bearer "+a.issue(t, token.Access).Token); resp.StatusCode != http.StatusOK {
		t.Fatal("the control token was refused")
	}
	rotated, err := a.store.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	issued := a.issue(t, token.Access)
	if issued.KeyID != rotated.ID {
		t.Fatalf("signed by %s, want the rotated key %s", issued.KeyID, rotated.ID)
	}
	before := a.fetches.Load()
	if resp, body := call(t, h, "Bearer "+issued.Token); resp.StatusCode != http.StatusOK {
		t.Fatalf("a token of the rotated key: %d %s", resp.StatusCode, body)
	}
	if a.fetches.Load() != before {
		t.Fatal("verifying a token of the rotated key fetched the JWKS again")
	}
}

// TestARevokedKeyStopsVerifyingWhenTheCacheExpires: once the cached JWKS is older than its
// max-age, the verifier fetches it again and the revoked key's tokens fail.
func TestARevokedKeyStopsVerifyingWhenTheCacheExpires(t *testing.T) {
	clk := &clock{now: t0}
	a := newAuthly(t, clk)
	h := protected(newVerifier(t, a, clk))
	issued := a.issue(t, token.Access)
	if resp, _ := call(t, h, "Bearer "+issued.Token); resp.StatusCode != http.StatusOK {
		t.Fatal("the control token was refused")
	}
	if _, err := a.store.Revoke(context.Background(), issued.KeyID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(a.store.JWKSMaxAge())
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, _ := call(t, h, "Bearer "+issued.Token)
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked key's token still passes after the cache expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, body := call(t, h, "Bearer "+a.issue(t, token.Access).Token); resp.StatusCode != http.StatusOK {
		t.Fatalf("a token of the key that took over: %d %s", resp.StatusCode, body)
	}
}

func TestUnreachableAuthly(t *testing.T) {
	clk := &clock{now: t0}
	a := newAuthly(t, clk)

	t.Run("without any keys fetched, requests get 503", func(t *testing.T) {
		a.down.Store(true)
		defer a.down.Store(false)
		h := protected(newVerifier(t, a, clk))
		resp, _ := call(t, h, "Bearer "+a.issue(t, token.Access).Token)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})

	t.Run("with keys fetched before, they stay in use while Authly is down", func(t *testing.T) {
		h := protected(newVerifier(t, a, clk))
		issued := a.issue(t, token.Access)
		if resp, _ := call(t, h, "Bearer "+issued.Token); resp.StatusCode != http.StatusOK {
			t.Fatal("the control token was refused")
		}
		a.down.Store(true)
		defer a.down.Store(false)
		clk.Advance(2 * a.store.JWKSMaxAge())
		for range 3 {
			if resp, body := call(t, h, "Bearer "+issued.Token); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		}
	})
}

// TestJWKSContents serves hand-made key sets: only public signing keys that fit their
// algorithm are used.
func TestJWKSContents(t *testing.T) {
	clk := &clock{now: t0}
	private, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwk := func(key any, kid, alg, use string) json.RawMessage {
		b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sign := func(kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["typ"] = "at+jwt"
		tok.Header["kid"] = kid
		s, err := tok.SignedString(private)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	claims := jwt.MapClaims{"iss": issuer, "sub": "user-1", "jti": "j1", "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix()}
	serve := func(keys ...json.RawMessage) string {
		body, _ := json.Marshal(map[string]any{"keys": keys})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	withAud := jwt.MapClaims{"aud": []string{"orders-api"}}
	for k, v := range claims {
		withAud[k] = v
	}

	tests := []struct {
		name     string
		keys     []json.RawMessage
		audience string
		auth     string
		want     int
	}{
		{"a public ES256 key is used (control)", []json.RawMessage{jwk(&private.PublicKey, "k1", "ES256", "sig")}, "", sign("k1", claims), http.StatusOK},
		{"a key published with its private half is not used", []json.RawMessage{jwk(private, "k1", "ES256", "sig")}, "", sign("k1", claims), http.StatusUnauthorized},
		{"a key for encryption is not used", []json.RawMessage{jwk(&private.PublicKey, "k1", "ES256", "enc")}, "", sign("k1", claims), http.StatusUnauthorized},
		{"a key without alg is not used", []json.RawMessage{jwk(&private.PublicKey, "k1", "", "sig")}, "", sign("k1", claims), http.StatusUnauthorized},
		{"a key published for RS256 is not used for ES256", []json.RawMessage{jwk(&private.PublicKey, "k1", "RS256", "sig")}, "", sign("k1", claims), http.StatusUnauthorized},
		{"a P-384 key published for ES256 is not used", []json.RawMessage{jwk(&p384.PublicKey, "k1", "ES256", "sig")}, "", sign("k1", claims), http.StatusUnauthorized},
		{"a symmetric key is never used", []json.RawMessage{jwk([]byte("0123456789abcdef0123456789abcdef"), "k1", "HS256", "sig")}, "", sign("k1", claims), http.StatusUnauthorized},
		{"an unusable key beside a usable one leaves the usable one in use", []json.RawMessage{jwk(&p384.PublicKey, "k0", "ES256", "sig"), jwk(&private.PublicKey, "k1", "ES256", "sig")}, "", sign("k1", claims), http.StatusOK},
		{"with an audience configured, a token without aud is refused", []json.RawMessage{jwk(&private.PublicKey, "k1", "ES256", "sig")}, "orders-api", sign("k1", claims), http.StatusUnauthorized},
		{"with an audience configured, a token for it passes", []json.RawMessage{jwk(&private.PublicKey, "k1", "ES256", "sig")}, "orders-api", sign("k1", withAud), http.StatusOK},
		{"with an audience configured, a token for another audience is refused", []json.RawMessage{jwk(&private.PublicKey, "k1", "ES256", "sig")}, "billing-api", sign("k1", withAud), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := verify.New(verify.Options{JWKSURL: serve(tc.keys...), Issuer: issuer, Audience: tc.audience, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			if resp, body := call(t, protected(v), tc.auth); resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
}

func TestNewChecksItsOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts verify.Options
	}{
		{"no JWKS URL", verify.Options{Issuer: issuer}},
		{"a JWKS URL that is a file", verify.Options{JWKSURL: "file:///etc/passwd", Issuer: issuer}},
		{"no issuer", verify.Options{JWKSURL: "https://auth.example.com/.well-known/jwks.json"}},
		{"an HMAC algorithm", verify.Options{JWKSURL: "https://auth.example.com/.well-known/jwks.json", Issuer: issuer, Algorithms: []string{"HS256"}}},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if _, err := verify.New(tc.opts); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}
