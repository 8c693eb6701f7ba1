package token

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signed signs claims under header with golang-jwt, keeping header exactly as given (alg
// included, even when it names another algorithm than method).
func signed(t *testing.T, method jwt.SigningMethod, key any, header, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	tok.Header = header
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing a test token: %v", err)
	}
	return raw
}

func esHeader(kid string) map[string]any {
	return map[string]any{"alg": ES256, "typ": "at+jwt", "kid": kid}
}

func ecJWK(pub *ecdsa.PublicKey) map[string]any {
	b, _ := pub.Bytes() // 0x04 || X || Y
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
}

// TestHostileTokensAreRefused is what an attacker would try against an ES256 issuer that
// also still verifies the HS256 secrets of a migration. Each case differs from the accepted
// control in the one respect its name gives.
func TestHostileTokensAreRefused(t *testing.T) {
	loadTestKeys(t)
	clk := newClock(fixedNow)
	cfg, keys := asymConfig(t, ES256, clk)
	cfg.AccessKey, cfg.RefreshKey = testAccessKey, testRefreshKey
	is, err := NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kid := kidFor(ES256)
	access := mustIssue(t, is, Access, time.Time{}).Token
	refresh := mustIssue(t, is, Refresh, time.Time{}).Token
	parts := strings.Split(access, ".")

	control := signed(t, jwt.SigningMethodES256, testECDSA, esHeader(kid), validClaims())
	if _, err := is.Verify(Access, control); err != nil {
		t.Fatalf("the control token, signed with the current key, is refused: %v", err)
	}

	// The public key in the forms an attacker can read from the JWKS or a certificate.
	der, err := x509.MarshalPKIXPublicKey(testECDSA.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	point, _ := testECDSA.PublicKey.Bytes()

	// A server that would record any attempt to fetch a key a token points at.
	var fetched atomic.Int32
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer lure.Close()

	with := func(h map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for hk, hv := range h {
			out[hk] = hv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	hs := func(header map[string]any, secret []byte) string {
		return signed(t, jwt.SigningMethodHS256, secret, header, validClaims())
	}
	es := func(header map[string]any, key *ecdsa.PrivateKey) string {
		return signed(t, jwt.SigningMethodES256, key, header, validClaims())
	}

	tests := []struct {
		name string
		typ  Type
		raw  string
	}{
		// Unsigned.
		{`alg "none" naming the current key, without a signature`, Access,
			handToken(t, with(esHeader(kid), "alg", "none"), validClaims(), nil)},
		{`alg "none" naming the current key, keeping a real signature`, Access,
			handToken(t, with(esHeader(kid), "alg", "none"), validClaims(), nil) + parts[2]},

		// Algorithm confusion: the public key used as an HMAC secret.
		{"HS256 naming the ES256 key, keyed with its public key as PKIX DER", Access,
			hs(with(esHeader(kid), "alg", HS256), der)},
		{"HS256 naming the ES256 key, keyed with its public key as PEM", Access,
			hs(with(esHeader(kid), "alg", HS256), pemBytes)},
		{"HS256 naming the ES256 key, keyed with its public point", Access,
			hs(with(esHeader(kid), "alg", HS256), point)},
		{"HS256 without kid, keyed with the public key as PEM", Access,
			hs(with(with(esHeader(kid), "alg", HS256), "kid", nil), pemBytes)},
		{"HS256 naming the ES256 key, keyed with the real HMAC access secret", Access,
			hs(with(esHeader(kid), "alg", HS256), testAccessKey)},
		{"ES256 naming the HMAC access key id, signed with the current ES256 key", Access,
			es(esHeader(HMACAccessKeyID), testECDSA)},
		{"RS256 in the header of a token signed with the ES256 key", Access,
			handToken(t, with(esHeader(kid), "alg", RS256), validClaims(), nil) + parts[2]},
		{"ES384 in the header of a token signed with the ES256 key", Access,
			handToken(t, with(esHeader(kid), "alg", "ES384"), validClaims(), nil) + parts[2]},

		// Key ids.
		{"an unknown kid", Access, es(esHeader("20300101-unknown"), testECDSA)},
		{"a kid with SQL in it", Access, es(esHeader(`x' OR '1'='1`), testECDSA)},
		{"a kid that is a path", Access, es(esHeader("../../../../etc/passwd"), testECDSA)},
		{"a kid with a NUL byte", Access, es(esHeader(kid+"\x00"), testECDSA)},
		{"a kid of 65 characters", Access, es(esHeader(strings.Repeat("a", 65)), testECDSA)},
		{"an empty kid", Access, es(esHeader(""), testECDSA)},
		{"a kid that is a number", Access, es(with(esHeader(kid), "kid", 7), testECDSA)},
		{"a kid that is a list", Access, es(with(esHeader(kid), "kid", []any{kid}), testECDSA)},
		{"no kid on an ES256 token", Access, es(with(esHeader(kid), "kid", nil), testECDSA)},
		{"the current key's kid on a token signed by another key", Access, es(esHeader(kid), otherECDSA)},

		// Keys a token brings or points at are never used, nor fetched.
		{"an embedded jwk of the attacker's key, naming the current kid", Access,
			es(with(esHeader(kid), "jwk", ecJWK(&otherECDSA.PublicKey)), otherECDSA)},
		{"an embedded jwk of the attacker's key, without kid", Access,
			es(with(with(esHeader(kid), "kid", nil), "jwk", ecJWK(&otherECDSA.PublicKey)), otherECDSA)},
		{"a jku pointing at the attacker's JWKS, with an unknown kid", Access,
			es(with(esHeader("attacker"), "jku", lure.URL+"/jwks.json"), otherECDSA)},
		{"a jku pointing at the attacker's JWKS, naming the current kid", Access,
			es(with(esHeader(kid), "jku", lure.URL+"/jwks.json"), otherECDSA)},
		{"an x5u pointing at the attacker's certificate", Access,
			es(with(esHeader(kid), "x5u", lure.URL+"/cert.pem"), otherECDSA)},

		// Token types.
		{"a refresh token where an access token is expected", Access, refresh},
		{"an access token where a refresh token is expected", Refresh, access},
		{`typ "JWT" on a token signed with the current key`, Access, es(with(esHeader(kid), "typ", "JWT"), testECDSA)},
		{"no typ on a token signed with the current key", Access, es(with(esHeader(kid), "typ", nil), testECDSA)},
		{"an HS256 token with typ at+jwt naming the refresh secret's kid, signed with it", Access,
			hs(with(with(esHeader(kid), "alg", HS256), "kid", HMACRefreshKeyID), testRefreshKey)},
		{"an HS256 token with typ rt+jwt naming the access secret's kid, signed with it", Refresh,
			hs(map[string]any{"alg": HS256, "typ": "rt+jwt", "kid": HMACAccessKeyID}, testAccessKey)},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			got, err := is.Verify(tc.typ, tc.raw)
			checkVerifyErr(t, err, false, nil)
			if got != (Verified{}) {
				t.Errorf("Verify returned claims %+v along with its error", got)
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("verification fetched %d URLs named in token headers", n)
	}

	t.Run("a token of a key that was retired is refused", func(t *testing.T) {
		old := mustIssue(t, is, Access, time.Time{})
		keys.Set(mustKeySet(t, mustSigningKey(t, "20300401-newkey", ES256, otherECDSA)))
		defer keys.Set(mustKeySet(t, mustSigningKey(t, kid, ES256, testECDSA)))
		_, err := is.Verify(Access, old.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenUnverifiable)
	})
}
