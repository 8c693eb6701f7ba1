package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/keys"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
	"github.com/authly/authly/pkg/verify"
)

var testKEK = bytes.Repeat([]byte{7}, 32)

// keyed is an Authly instance that signs ES256 with a key store, as serve builds it.
type keyed struct {
	*env
	store *keys.Store
}

// keyStoreOptions are the key store's options of the tests: a short JWKS max age and poll, so
// that instances notice each other's changes within a second.
func keyStoreOptions(pool *pgxpool.Pool, clk *clock) keys.Options {
	return keys.Options{DB: pool, KEK: testKEK, TokenLifetime: 7 * 24 * time.Hour, JWKSMaxAge: time.Second,
		PollInterval: 100 * time.Millisecond, Now: clk.Now}
}

// newKeyed opens a key store with opts and builds an instance on it, running the store until
// the test ends.
func newKeyed(t *testing.T, pool *pgxpool.Pool, clk *clock, opts keys.Options) *keyed {
	t.Helper()
	store, err := keys.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e := newInstance(t, pool, clk, httpapi.ServerOptions{JWKS: store}, func(c *token.Config, _ *service.Deps) {
		c.Algorithm, c.AccessKey, c.RefreshKey, c.Keys = token.ES256, nil, nil, store
	})
	return &keyed{env: e, store: store}
}

// jwks fetches the instance's JWKS through the contract-checked client.
func (e *env) jwks() (body []byte, cacheControl string) {
	e.t.Helper()
	resp, err := e.client.GetJWKSWithResponse(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.HTTPResponse.Header.Get("Content-Type") != "application/jwk-set+json" {
		e.t.Fatalf("GET /.well-known/jwks.json: %d %q", resp.StatusCode(), resp.HTTPResponse.Header.Get("Content-Type"))
	}
	return bytes.TrimSpace(resp.Body), resp.HTTPResponse.Header.Get("Cache-Control")
}

// firstKid is the kid of the first key of a JWKS: the one that signs.
func firstKid(t *testing.T, body []byte) string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	return set.Keys[0].KeyID
}

func TestJWKSServesTheKeyStoresPublicKeys(t *testing.T) {
	clk := &clock{now: time.Now()}
	pool := testdb.Pool(t)
	e := newKeyed(t, pool, clk, keyStoreOptions(pool, clk))
	body, cc := e.jwks()
	if !bytes.Equal(body, e.store.JWKS()) {
		t.Fatalf("served %s, the store has %s", body, e.store.JWKS())
	}
	if cc != "public, max-age=1" {
		t.Fatalf("Cache-Control %q", cc)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Fatalf("private member %q in %s", private, body)
			}
		}
	}

	access := e.admin()
	h := jwtHeader(t, access)
	if h["alg"] != "ES256" || h["kid"] != firstKid(t, body) {
		t.Fatalf("header %v, JWKS %s", h, body)
	}
	v, err := verify.New(verify.Options{JWKSURL: e.srv.URL + "/.well-known/jwks.json", Issuer: "authly-test", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(t.Context(), access); err != nil || c.KeyID != h["kid"] {
		t.Fatalf("pkg/verify: %+v %v", c, err)
	}
}

func TestJWKSWithoutAKeyStoreIsEmpty(t *testing.T) {
	e := newEnv(t)
	body, cc := e.jwks()
	if string(body) != `{"keys":[]}` || cc != "public, max-age=300" {
		t.Fatalf("JWKS %s, Cache-Control %q", body, cc)
	}
	e2 := newEnvWithServer(t, httpapi.ServerOptions{JWKS: httpapi.EmptyJWKS{MaxAge: 42 * time.Second}})
	if _, cc := e2.jwks(); cc != "public, max-age=42" {
		t.Fatalf("Cache-Control %q", cc)
	}
}

// TestTwoInstancesFollowEachOthersKeys runs two instances, each with its own key store and
// service, on one database.
func TestTwoInstancesFollowEachOthersKeys(t *testing.T) {
	clk := &clock{now: time.Now()}
	pool := testdb.Pool(t)
	a := newKeyed(t, pool, clk, keyStoreOptions(pool, clk))
	b := newKeyed(t, pool, clk, keyStoreOptions(pool, clk))
	jwksA, _ := a.jwks()
	jwksB, _ := b.jwks()
	if !bytes.Equal(jwksA, jwksB) {
		t.Fatalf("different JWKS:\n%s\n%s", jwksA, jwksB)
	}
	fromA := a.admin()
	if got := b.meStatus(fromA); got != http.StatusOK {
		t.Fatalf("A's token on B: %d", got)
	}

	clk.Advance(10 * time.Second) // the next key has been published long enough
	rotated, err := a.store.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B serves the rotation", func() bool { body, _ := b.jwks(); return firstKid(t, body) == rotated.ID })
	if body, _ := a.jwks(); firstKid(t, body) != rotated.ID {
		t.Fatalf("A does not serve its own rotation: %s", body)
	}
	fromB := b.login("root", testPassword).AccessToken
	if kid := jwtHeader(t, fromB)["kid"]; kid != rotated.ID {
		t.Fatalf("B signs with %v after the rotation to %s", kid, rotated.ID)
	}
	if got := a.meStatus(fromB); got != http.StatusOK {
		t.Fatalf("B's token on A: %d", got)
	}

	// Revoking the previous key on B refuses A's first token on both.
	old := jwtHeader(t, fromA)["kid"].(string)
	if _, err := b.store.Revoke(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	for name, inst := range map[string]*keyed{"A": a, "B": b} {
		waitFor(t, name+" refuses the revoked key's token", func() bool { return inst.meStatus(fromA) == http.StatusUnauthorized })
		if got := inst.meStatus(fromB); got != http.StatusOK {
			t.Fatalf("%s refuses the current key's token after a revocation: %d", name, got)
		}
		if body, _ := inst.jwks(); bytes.Contains(body, []byte(old)) {
			t.Fatalf("%s still publishes the revoked key", name)
		}
	}
}

// jwtHeader decodes a token's JOSE header.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	return jwtPart(t, tok, 0)
}

func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// signES256 signs claims with key under header.
func signES256(t *testing.T, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHostileTokensAreRefusedUnderES256 presents tokens an attacker can make, each with the
// claims of a real access token, to GET /api/v1/users/me: every one gets 401, and no header
// makes the server fetch anything.
func TestHostileTokensAreRefusedUnderES256(t *testing.T) {
	clk := &clock{now: time.Now()}
	pool := testdb.Pool(t)
	e := newKeyed(t, pool, clk, keyStoreOptions(pool, clk))
	login := e.login
	e.admin()
	tokens := login("root", testPassword)
	real := tokens.AccessToken
	if got := e.meStatus(real); got != http.StatusOK {
		t.Fatalf("the real token: %d", got)
	}
	claims := jwtPart(t, real, 1)
	hdr := jwtHeader(t, real)
	kid := hdr["kid"].(string)
	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	var fetched atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetched.Add(1)
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: attacker.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}}
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer lure.Close()
	attackerJWK, err := json.Marshal(jose.JSONWebKey{Key: attacker.Public(), Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	var jwk map[string]any
	_ = json.Unmarshal(attackerJWK, &jwk)

	refuse := func(name, tok string) {
		t.Helper()
		if got := e.meStatus(tok); got != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, got)
		}
	}

	// alg none, with and without the real kid.
	for _, alg := range []string{"none", "None", "NONE"} {
		refuse("alg "+alg, forge(t, map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}, claims, nil))
		refuse("alg "+alg+" without kid", forge(t, map[string]any{"alg": alg, "typ": "at+jwt"}, claims, nil))
	}

	// HS256 with the public key, in each encoding an attacker might try, as the HMAC secret.
	public := e.store.KeySet().Signing().Public()
	der, err := x509.MarshalPKIXPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	ec := public.(*ecdsa.PublicKey)
	uncompressed, err := ec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	publicJWK, _ := json.Marshal(jose.JSONWebKey{Key: public, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	body, _ := e.jwks()
	for name, secret := range map[string][]byte{"PEM": pemKey, "DER": der, "point": uncompressed, "JWK": publicJWK, "JWKS": body} {
		for _, alg := range []string{"HS256", "HS384", "HS512"} {
			refuse(alg+" keyed with the public key as "+name, forge(t, map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}, claims, secret))
		}
	}

	// Unknown kids, and kids made of SQL or path characters, signed by the attacker.
	for _, bad := range []string{"20990101T000000Z-deadbeef", "../../../../etc/passwd", "x' OR '1'='1", "kid;DROP TABLE signing_keys;--",
		"%2e%2e%2f", "\u0000", strings.Repeat("k", 4096), ""} {
		refuse("kid "+bad, signES256(t, attacker, map[string]any{"typ": "at+jwt", "kid": bad}, claims))
	}
	// The real kid with the attacker's signature.
	refuse("the real kid signed by another key", signES256(t, attacker, map[string]any{"typ": "at+jwt", "kid": kid}, claims))

	// jku, x5u and jwk name the attacker's key; they are never fetched nor trusted.
	for name, h := range map[string]map[string]any{
		"jku":            {"typ": "at+jwt", "kid": kid, "jku": lure.URL + "/jwks.json"},
		"jku unknown":    {"typ": "at+jwt", "kid": "20990101T000000Z-0badc0de", "jku": lure.URL + "/jwks.json"},
		"x5u":            {"typ": "at+jwt", "kid": kid, "x5u": lure.URL + "/cert.pem"},
		"jwk":            {"typ": "at+jwt", "kid": kid, "jwk": jwk},
		"jwk without id": {"typ": "at+jwt", "jwk": jwk},
	} {
		refuse(name+" header", signES256(t, attacker, h, claims))
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the server fetched a URL named by a token header %d times", n)
	}

	// A refresh token is not an access token, whatever its signature.
	refuse("refresh token as access token", tokens.RefreshToken)

	// A token of a revoked key.
	clk.Advance(10 * time.Second)
	if _, err := e.store.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := e.meStatus(real); got != http.StatusOK {
		t.Fatalf("a token of the previous key: %d", got)
	}
	if _, err := e.store.Revoke(t.Context(), kid); err != nil {
		t.Fatal(err)
	}
	refuse("a token of a revoked key", real)
	if !errors.Is(func() error { _, err := e.issuer.Verify(token.Access, real); return err }(), token.ErrInvalid) {
		t.Fatal("the issuer still verifies a token of a revoked key")
	}
}

// TestATokenOfARetiredKeyIsRefused: once its key is retired, a token still within its own
// lifetime is refused. The store is told tokens live one hour, shorter than the access
// token's here, so that the key retires before the token expires.
func TestATokenOfARetiredKeyIsRefused(t *testing.T) {
	clk := &clock{now: time.Now()}
	pool := testdb.Pool(t)
	opts := keyStoreOptions(pool, clk)
	opts.TokenLifetime = time.Minute
	e := newKeyed(t, pool, clk, opts)
	access := e.admin()
	kid := jwtHeader(t, access)["kid"].(string)
	clk.Advance(10 * time.Second)
	if _, err := e.store.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute) // past the token lifetime, the poll, the leeway and the margin
	waitFor(t, "the previous key retires", func() bool {
		list, err := e.store.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range list {
			if k.ID == kid {
				return k.State == keys.StateRetired
			}
		}
		return false
	})
	waitFor(t, "the retired key leaves the key set", func() bool { _, ok := e.store.KeySet().Lookup(kid); return !ok })
	if got := e.meStatus(access); got != http.StatusUnauthorized {
		t.Fatalf("a token of a retired key, 5 minutes into its 30: %d", got)
	}
	// The session itself is fine: a token of the current key works.
	if got := e.meStatus(e.login("root", testPassword).AccessToken); got != http.StatusOK {
		t.Fatalf("a fresh token: %d", got)
	}
	if body, _ := e.jwks(); bytes.Contains(body, []byte(kid)) {
		t.Fatalf("the JWKS still has the retired key: %s", body)
	}
}
