package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Fixed test material: every key is at least 32 bytes and the clock is injected, so no test
// depends on the wall clock or sleeps.
var (
	testAccessKey  = []byte("authly-test-access-signing-key-0123456789abcdef")
	testRefreshKey = []byte("authly-test-refresh-signing-key-0123456789abcdef")
	otherKey       = []byte("an-attacker-chosen-signing-key-0123456789abcdef")

	testUserID    = uuid.MustParse("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
	testSessionID = uuid.MustParse("0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d")

	// fixedNow is on a whole second, so now+TTL is exactly representable in a NumericDate.
	fixedNow = time.Date(2030, time.March, 14, 15, 9, 26, 0, time.UTC)

	jtiPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
)

const (
	testIssuer     = "https://auth.authly.test"
	testAccessTTL  = 15 * time.Minute
	testRefreshTTL = 30 * 24 * time.Hour
)

// clock is an adjustable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func testConfig(alg string, clk *clock) Config {
	return Config{
		Algorithm:  alg,
		AccessKey:  testAccessKey,
		RefreshKey: testRefreshKey,
		Issuer:     testIssuer,
		AccessTTL:  testAccessTTL,
		RefreshTTL: testRefreshTTL,
		Now:        clk.Now,
	}
}

func newTestIssuer(t *testing.T, alg string, clk *clock) *Issuer {
	t.Helper()
	is, err := NewIssuer(testConfig(alg, clk))
	if err != nil {
		t.Fatalf("NewIssuer(%s): %v", alg, err)
	}
	return is
}

func mustIssue(t *testing.T, is *Issuer, typ Type, notAfter time.Time) Issued {
	t.Helper()
	iss, err := is.Issue(typ, testUserID, testSessionID, notAfter)
	if err != nil {
		t.Fatalf("Issue(%s): %v", typ, err)
	}
	return iss
}

// --- hand-built tokens -------------------------------------------------------------------

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func segment(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal segment: %v", err)
	}
	return b64(b)
}

// hmacSign signs input with the HMAC named by alg. Any other alg (none and its variants)
// yields an empty signature.
func hmacSign(t *testing.T, alg string, key []byte, input string) string {
	t.Helper()
	var h func() hash.Hash
	switch alg {
	case "HS256":
		h = sha256.New
	case "HS384":
		h = sha512.New384
	case "HS512":
		h = sha512.New
	default:
		return ""
	}
	m := hmac.New(h, key)
	m.Write([]byte(input))
	return b64(m.Sum(nil))
}

// handToken builds a compact JWS without the jwt library: base64url(header) "."
// base64url(payload) "." base64url(signature).
func handToken(t *testing.T, header, claims map[string]any, key []byte) string {
	t.Helper()
	input := segment(t, header) + "." + segment(t, claims)
	alg, _ := header["alg"].(string)
	return input + "." + hmacSign(t, alg, key, input)
}

// validClaims are claims that Authly would accept at fixedNow.
func validClaims() map[string]any {
	now := fixedNow.Unix()
	return map[string]any{
		"iss": testIssuer,
		"sub": testUserID.String(),
		"jti": "AAECAwQFBgcICQoLDA0ODw",
		"sid": testSessionID.String(),
		"iat": now,
		"nbf": now,
		"exp": now + int64(testAccessTTL/time.Second),
	}
}

func with(claims map[string]any, key string, value any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	if value == nil {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

func hdr(alg, typ string) map[string]any {
	h := map[string]any{"alg": alg}
	if typ != "" {
		h["typ"] = typ
	}
	return h
}

// decodeSegment decodes one base64url JSON segment of a compact token.
func decodeSegment(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3: %q", len(parts), raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("segment %d is not base64url: %v", i, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("segment %d is not a JSON object: %v", i, err)
	}
	return m
}

func numericClaim(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %q = %#v, want a JSON number", name, claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %q = %s, want an integer number of seconds: %v", name, n, err)
	}
	return v
}

// --- tests -------------------------------------------------------------------------------

func TestIssuedTokensVerifyWithTheirClaims(t *testing.T) {
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		for _, tc := range []struct {
			typ     Type
			ttl     time.Duration
			typHdr  string
			signKey []byte
		}{
			{Access, testAccessTTL, "at+jwt", testAccessKey},
			{Refresh, testRefreshTTL, "rt+jwt", testRefreshKey},
		} {
			name := "an issued " + string(tc.typ) + " token signed with " + alg + " verifies with the claims it was issued with"
			t.Run(name, func(t *testing.T) {
				is := newTestIssuer(t, alg, newClock(fixedNow))
				issued := mustIssue(t, is, tc.typ, time.Time{})

				wantExp := fixedNow.Add(tc.ttl)
				if !issued.ExpiresAt.Equal(wantExp) {
					t.Errorf("Issued.ExpiresAt = %v, want now+TTL = %v", issued.ExpiresAt, wantExp)
				}
				if !jtiPattern.MatchString(issued.ID) {
					t.Errorf("jti %q is not 22 base64url characters", issued.ID)
				}
				if raw, err := base64.RawURLEncoding.DecodeString(issued.ID); err != nil || len(raw) != 16 {
					t.Errorf("jti %q decodes to %d bytes (err %v), want 16 bytes = 128 bits", issued.ID, len(raw), err)
				}

				got, err := is.Verify(tc.typ, issued.Token)
				if err != nil {
					t.Fatalf("Verify(%s) of a freshly issued token: %v", tc.typ, err)
				}
				if got.ID != issued.ID {
					t.Errorf("Verified.ID = %q, want %q", got.ID, issued.ID)
				}
				if got.UserID != testUserID {
					t.Errorf("Verified.UserID = %v, want %v", got.UserID, testUserID)
				}
				if got.SessionID != testSessionID {
					t.Errorf("Verified.SessionID = %v, want %v", got.SessionID, testSessionID)
				}
				if !got.ExpiresAt.Equal(wantExp) {
					t.Errorf("Verified.ExpiresAt = %v, want now+TTL = %v", got.ExpiresAt, wantExp)
				}

				header := decodeSegment(t, issued.Token, 0)
				if header["typ"] != tc.typHdr {
					t.Errorf("header typ = %#v, want %q", header["typ"], tc.typHdr)
				}
				if header["alg"] != alg {
					t.Errorf("header alg = %#v, want %q", header["alg"], alg)
				}
				wantKID := map[Type]string{Access: HMACAccessKeyID, Refresh: HMACRefreshKeyID}[tc.typ]
				if header["kid"] != wantKID || issued.KeyID != wantKID || got.KeyID != wantKID {
					t.Errorf("header kid = %#v, Issued.KeyID %q, Verified.KeyID %q, want the fixed HMAC kid %q", header["kid"], issued.KeyID, got.KeyID, wantKID)
				}

				payload := decodeSegment(t, issued.Token, 1)
				for _, c := range []string{"iss", "sub", "jti", "sid", "iat", "nbf", "exp"} {
					if _, ok := payload[c]; !ok {
						t.Errorf("claim %q is missing from the payload %v", c, payload)
					}
				}
				if payload["iss"] != testIssuer {
					t.Errorf("iss = %#v, want %q", payload["iss"], testIssuer)
				}
				if payload["sub"] != testUserID.String() {
					t.Errorf("sub = %#v, want the user id %q", payload["sub"], testUserID)
				}
				if payload["sid"] != testSessionID.String() {
					t.Errorf("sid = %#v, want the session id %q", payload["sid"], testSessionID)
				}
				if payload["jti"] != issued.ID {
					t.Errorf("jti = %#v, want Issued.ID %q", payload["jti"], issued.ID)
				}
				if iat := numericClaim(t, payload, "iat"); iat != fixedNow.Unix() {
					t.Errorf("iat = %d, want %d", iat, fixedNow.Unix())
				}
				if nbf := numericClaim(t, payload, "nbf"); nbf != fixedNow.Unix() {
					t.Errorf("nbf = %d, want %d", nbf, fixedNow.Unix())
				}
				if exp := numericClaim(t, payload, "exp"); exp != wantExp.Unix() {
					t.Errorf("exp = %d, want %d", exp, wantExp.Unix())
				}

				// The signature really is made with the type's own key and algorithm.
				parts := strings.Split(issued.Token, ".")
				if want := hmacSign(t, alg, tc.signKey, parts[0]+"."+parts[1]); parts[2] != want {
					t.Errorf("signature is not %s over header.payload with the %s key", alg, tc.typ)
				}
			})
		}
	}
}

func TestTokenIDs(t *testing.T) {
	t.Run("a thousand issued tokens never share a jti", func(t *testing.T) {
		is := newTestIssuer(t, "HS256", newClock(fixedNow))
		seen := make(map[string]bool)
		for i := 0; i < 1000; i++ {
			typ := Access
			if i%2 == 1 {
				typ = Refresh
			}
			id := mustIssue(t, is, typ, time.Time{}).ID
			if !jtiPattern.MatchString(id) {
				t.Fatalf("jti %q is not 22 base64url characters", id)
			}
			if seen[id] {
				t.Fatalf("jti %q was issued twice", id)
			}
			seen[id] = true
		}
	})

	t.Run("two tokens issued in the same second never share a jti", func(t *testing.T) {
		is := newTestIssuer(t, "HS256", newClock(fixedNow))
		a := mustIssue(t, is, Access, time.Time{})
		b := mustIssue(t, is, Access, time.Time{})
		if a.ID == b.ID {
			t.Fatalf("two tokens share jti %q", a.ID)
		}
		if a.Token == b.Token {
			t.Fatal("two tokens issued for the same session in the same second are identical")
		}
	})

	t.Run("the jti is 16 bytes read from Config.Random, base64url-encoded", func(t *testing.T) {
		cfg := testConfig("HS256", newClock(fixedNow))
		seed := []byte{0xfb, 0xff, 0xbf, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}
		cfg.Random = bytes.NewReader(seed)
		is, err := NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := mustIssue(t, is, Access, time.Time{}).ID
		if want := base64.RawURLEncoding.EncodeToString(seed[:16]); got != want {
			t.Fatalf("jti = %q, want %q", got, want)
		}
	})

	t.Run("issuing fails when the random source runs dry instead of using a short id", func(t *testing.T) {
		cfg := testConfig("HS256", newClock(fixedNow))
		cfg.Random = bytes.NewReader(make([]byte, 15))
		is, err := NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := is.Issue(Access, testUserID, testSessionID, time.Time{}); err == nil {
			t.Fatalf("Issue with 15 random bytes succeeded with jti %q", got.ID)
		}
	})
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name     string
		now      time.Time
		typ      Type
		notAfter time.Time
		wantExp  time.Time
	}{
		{
			name:    "a zero notAfter leaves the access expiry at now+TTL",
			now:     fixedNow,
			typ:     Access,
			wantExp: fixedNow.Add(testAccessTTL),
		},
		{
			name:     "a notAfter later than now+TTL does not extend the access expiry",
			now:      fixedNow,
			typ:      Access,
			notAfter: fixedNow.Add(time.Hour),
			wantExp:  fixedNow.Add(testAccessTTL),
		},
		{
			name:     "a notAfter equal to now+TTL gives now+TTL",
			now:      fixedNow,
			typ:      Refresh,
			notAfter: fixedNow.Add(testRefreshTTL),
			wantExp:  fixedNow.Add(testRefreshTTL),
		},
		{
			name:     "a notAfter earlier than now+TTL caps the refresh expiry",
			now:      fixedNow,
			typ:      Refresh,
			notAfter: fixedNow.Add(2 * time.Hour),
			wantExp:  fixedNow.Add(2 * time.Hour),
		},
		{
			name:     "a notAfter earlier than now+TTL caps the access expiry",
			now:      fixedNow,
			typ:      Access,
			notAfter: fixedNow.Add(time.Minute),
			wantExp:  fixedNow.Add(time.Minute),
		},
		{
			name:     "a notAfter with a fraction of a second is rounded down, never up",
			now:      fixedNow,
			typ:      Refresh,
			notAfter: fixedNow.Add(time.Hour + 999*time.Millisecond),
			wantExp:  fixedNow.Add(time.Hour),
		},
		{
			name:    "a clock with a fraction of a second issues whole-second times",
			now:     fixedNow.Add(750 * time.Millisecond),
			typ:     Access,
			wantExp: fixedNow.Add(testAccessTTL),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := newTestIssuer(t, "HS256", newClock(tc.now))
			issued := mustIssue(t, is, tc.typ, tc.notAfter)
			if !issued.ExpiresAt.Equal(tc.wantExp) {
				t.Errorf("Issued.ExpiresAt = %v, want %v", issued.ExpiresAt, tc.wantExp)
			}
			payload := decodeSegment(t, issued.Token, 1)
			if exp := numericClaim(t, payload, "exp"); exp != tc.wantExp.Unix() {
				t.Errorf("exp claim = %d, want %d", exp, tc.wantExp.Unix())
			}
			if iat := numericClaim(t, payload, "iat"); iat != fixedNow.Unix() {
				t.Errorf("iat claim = %d, want %d", iat, fixedNow.Unix())
			}
			got, err := is.Verify(tc.typ, issued.Token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !got.ExpiresAt.Equal(tc.wantExp) {
				t.Errorf("Verified.ExpiresAt = %v, want %v", got.ExpiresAt, tc.wantExp)
			}
		})
	}
}

func TestVerifyHonoursTheClockAndLeeway(t *testing.T) {
	exp := fixedNow.Add(testAccessTTL)
	tests := []struct {
		name   string
		at     time.Time
		wantOK bool
		reason error
	}{
		{"an issued token is valid one second before it expires", exp.Add(-time.Second), true, nil},
		{"an issued token is still accepted 3s after exp, within the 5s leeway", exp.Add(3 * time.Second), true, nil},
		{"an issued token is refused 6s after exp, beyond the leeway", exp.Add(6 * time.Second), false, jwt.ErrTokenExpired},
		{"an issued token is refused an hour after exp", exp.Add(time.Hour), false, jwt.ErrTokenExpired},
		{"an issued token is accepted by a clock 3s behind the issuer's", fixedNow.Add(-3 * time.Second), true, nil},
		{"an issued token is refused by a clock 6s behind the issuer's, before nbf and iat", fixedNow.Add(-6 * time.Second), false, jwt.ErrTokenNotValidYet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(fixedNow)
			is := newTestIssuer(t, "HS256", clk)
			issued := mustIssue(t, is, Access, time.Time{})
			clk.Set(tc.at)
			_, err := is.Verify(Access, issued.Token)
			checkVerifyErr(t, err, tc.wantOK, tc.reason)
		})
	}
}

func checkVerifyErr(t *testing.T, err error, wantOK bool, reason error) {
	t.Helper()
	if wantOK {
		if err != nil {
			t.Fatalf("Verify: %v, want success", err)
		}
		return
	}
	if err == nil {
		t.Fatal("Verify succeeded, want an error")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify error %q does not wrap ErrInvalid", err)
	}
	if reason != nil && !errors.Is(err, reason) {
		t.Fatalf("Verify error %q does not wrap the expected reason %q", err, reason)
	}
}

func TestAlgorithmIsPinned(t *testing.T) {
	tests := []struct {
		name      string
		issuerAlg string
		tokenAlg  string
		wantOK    bool
	}{
		{"an HS256 issuer accepts a hand-built HS256 token (control)", "HS256", "HS256", true},
		{"an HS384 issuer accepts a hand-built HS384 token (control)", "HS384", "HS384", true},
		{"an HS512 issuer accepts a hand-built HS512 token (control)", "HS512", "HS512", true},
		{"an HS256 issuer refuses an HS512 token signed with the same key", "HS256", "HS512", false},
		{"an HS256 issuer refuses an HS384 token signed with the same key", "HS256", "HS384", false},
		{"an HS512 issuer refuses an HS256 token signed with the same key", "HS512", "HS256", false},
		{"an HS384 issuer refuses an HS512 token signed with the same key", "HS384", "HS512", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := newTestIssuer(t, tc.issuerAlg, newClock(fixedNow))
			raw := handToken(t, hdr(tc.tokenAlg, "at+jwt"), validClaims(), testAccessKey)
			_, err := is.Verify(Access, raw)
			checkVerifyErr(t, err, tc.wantOK, jwt.ErrTokenSignatureInvalid)
		})
	}

	t.Run("an issued HS512 token is refused by an HS256 issuer with the same keys", func(t *testing.T) {
		clk := newClock(fixedNow)
		issued := mustIssue(t, newTestIssuer(t, "HS512", clk), Access, time.Time{})
		_, err := newTestIssuer(t, "HS256", clk).Verify(Access, issued.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenSignatureInvalid)
	})
	t.Run("an issued HS256 token is refused by an HS512 issuer with the same keys", func(t *testing.T) {
		clk := newClock(fixedNow)
		issued := mustIssue(t, newTestIssuer(t, "HS256", clk), Refresh, time.Time{})
		_, err := newTestIssuer(t, "HS512", clk).Verify(Refresh, issued.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenSignatureInvalid)
	})
}

// TestForgedTokensAreRefused is the catalogue of tokens an attacker or a bug might present.
// Each must fail with an error wrapping ErrInvalid.
func TestForgedTokensAreRefused(t *testing.T) {
	clk := newClock(fixedNow)
	is := newTestIssuer(t, "HS256", clk)
	access := mustIssue(t, is, Access, time.Time{}).Token
	refresh := mustIssue(t, is, Refresh, time.Time{}).Token
	ap := strings.Split(access, ".")

	now := fixedNow.Unix()
	atHS := hdr("HS256", "at+jwt")

	// A payload that differs from the signed one only in its subject.
	tampered := decodeSegment(t, access, 1)
	tampered["sub"] = uuid.MustParse("11111111-2222-4333-8444-555555555555").String()
	tamperedToken := ap[0] + "." + segment(t, tampered) + "." + ap[2]

	// A validly signed token that is too big to be worth parsing.
	huge := handToken(t, atHS, with(validClaims(), "pad", strings.Repeat("A", 100*1024)), testAccessKey)

	tests := []struct {
		name   string
		typ    Type
		raw    string
		reason error // a more specific cause that must also be wrapped, if any
	}{
		// Unsigned tokens.
		{name: `alg "none" with an empty signature is refused`, typ: Access,
			raw: handToken(t, hdr("none", "at+jwt"), validClaims(), nil)},
		{name: `alg "None" with an empty signature is refused`, typ: Access,
			raw: handToken(t, hdr("None", "at+jwt"), validClaims(), nil)},
		{name: `alg "NONE" with an empty signature is refused`, typ: Access,
			raw: handToken(t, hdr("NONE", "at+jwt"), validClaims(), nil)},
		{name: `alg "nOnE" with an empty signature is refused`, typ: Access,
			raw: handToken(t, hdr("nOnE", "at+jwt"), validClaims(), nil)},
		{name: `alg "none" on a refresh token is refused`, typ: Refresh,
			raw: handToken(t, hdr("none", "rt+jwt"), validClaims(), nil)},
		{name: "a header without alg is refused", typ: Access,
			raw: handToken(t, map[string]any{"typ": "at+jwt"}, validClaims(), nil)},

		// Signature problems.
		{name: "a token signed with another key is refused", typ: Access,
			raw: handToken(t, atHS, validClaims(), otherKey), reason: jwt.ErrTokenSignatureInvalid},
		{name: "an issued token with its signature stripped is refused", typ: Access,
			raw: ap[0] + "." + ap[1] + ".", reason: jwt.ErrTokenSignatureInvalid},
		{name: "an issued token with a tampered subject and the original signature is refused", typ: Access,
			raw: tamperedToken, reason: jwt.ErrTokenSignatureInvalid},
		{name: "an issued token with a corrupted signature is refused", typ: Access,
			raw:    ap[0] + "." + ap[1] + "." + hmacSign(t, "HS256", testAccessKey, "something else"),
			reason: jwt.ErrTokenSignatureInvalid},

		// Time claims.
		{name: "exp 6s in the past, beyond the 5s leeway, is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "exp", now-6), testAccessKey), reason: jwt.ErrTokenExpired},
		{name: "exp a day in the past is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "exp", now-86400), testAccessKey), reason: jwt.ErrTokenExpired},
		{name: "nbf 6s in the future, beyond the leeway, is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "nbf", now+6), testAccessKey), reason: jwt.ErrTokenNotValidYet},
		{name: "iat an hour in the future is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "iat", now+3600), testAccessKey), reason: jwt.ErrTokenUsedBeforeIssued},
		{name: "exp that is not a number is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "exp", "tomorrow"), testAccessKey)},

		// Issuer.
		{name: "a token from another issuer is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "iss", "https://evil.example"), testAccessKey), reason: jwt.ErrTokenInvalidIssuer},
		{name: "an issuer differing only in case is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "iss", strings.ToUpper(testIssuer)), testAccessKey), reason: jwt.ErrTokenInvalidIssuer},

		// Missing or bad claims.
		{name: "a token without exp is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "exp", nil), testAccessKey), reason: jwt.ErrTokenRequiredClaimMissing},
		{name: "a token without iss is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "iss", nil), testAccessKey), reason: jwt.ErrTokenRequiredClaimMissing},
		{name: "a token without jti is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "jti", nil), testAccessKey)},
		{name: "a token with an empty jti is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "jti", ""), testAccessKey)},
		{name: "a token without nbf is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "nbf", nil), testAccessKey)},
		{name: "a token without sub is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "sub", nil), testAccessKey)},
		{name: "a token whose sub is not a user id is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "sub", "admin"), testAccessKey)},
		{name: "a token without sid is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "sid", nil), testAccessKey)},
		{name: "a token whose sid is not a session id is refused", typ: Access,
			raw: handToken(t, atHS, with(validClaims(), "sid", "session-1"), testAccessKey)},

		// Type confusion: each defence (key and typ header) is tested on its own and together.
		{name: "an issued refresh token is refused where an access token is expected", typ: Access,
			raw: refresh, reason: jwt.ErrTokenUnverifiable},
		{name: "an issued access token is refused where a refresh token is expected", typ: Refresh,
			raw: access, reason: jwt.ErrTokenUnverifiable},
		{name: "an access-key-signed token with typ rt+jwt is refused as an access token", typ: Access,
			raw: handToken(t, hdr("HS256", "rt+jwt"), validClaims(), testAccessKey), reason: jwt.ErrTokenUnverifiable},
		{name: "an access-key-signed token with typ rt+jwt is refused as a refresh token", typ: Refresh,
			raw: handToken(t, hdr("HS256", "rt+jwt"), validClaims(), testAccessKey), reason: jwt.ErrTokenSignatureInvalid},
		{name: "a refresh-key-signed token with typ at+jwt is refused as an access token", typ: Access,
			raw: handToken(t, atHS, validClaims(), testRefreshKey), reason: jwt.ErrTokenSignatureInvalid},
		{name: "an access-key-signed token without typ is refused", typ: Access,
			raw: handToken(t, hdr("HS256", ""), validClaims(), testAccessKey), reason: jwt.ErrTokenUnverifiable},
		{name: `an access-key-signed token with the generic typ "JWT" is refused`, typ: Access,
			raw: handToken(t, hdr("HS256", "JWT"), validClaims(), testAccessKey), reason: jwt.ErrTokenUnverifiable},

		// Malformed input.
		{name: "an empty string is refused", typ: Access, raw: ""},
		{name: "a token with 2 segments is refused", typ: Access,
			raw: ap[0] + "." + ap[1], reason: jwt.ErrTokenMalformed},
		{name: "a token with 4 segments is refused", typ: Access,
			raw: access + "." + ap[2], reason: jwt.ErrTokenMalformed},
		{name: "a token with a header that is not base64url is refused", typ: Access,
			raw: "!!!not*base64!!!." + ap[1] + "." + ap[2], reason: jwt.ErrTokenMalformed},
		{name: "a token with a payload that is not base64url is refused", typ: Access,
			raw: ap[0] + ".%%%%." + ap[2], reason: jwt.ErrTokenMalformed},
		{name: "a token with a signature that is not base64url is refused", typ: Access,
			raw: ap[0] + "." + ap[1] + ".@@@@", reason: jwt.ErrTokenMalformed},
		{name: "a token whose header is not JSON is refused", typ: Access,
			raw: b64([]byte("not json")) + "." + ap[1] + "." + ap[2], reason: jwt.ErrTokenMalformed},
		{name: "three dots alone are refused", typ: Access, raw: "..", reason: jwt.ErrTokenMalformed},
		{name: "a 100 KB string is refused", typ: Access, raw: strings.Repeat("a", 100*1024)},
		{name: "a validly signed 100 KB token is refused for its size", typ: Access, raw: huge},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := is.Verify(tc.typ, tc.raw)
			if err == nil {
				t.Fatalf("Verify(%s) accepted a forged token, claims %+v", tc.typ, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify error %q does not wrap ErrInvalid", err)
			}
			if tc.reason != nil && !errors.Is(err, tc.reason) {
				t.Errorf("Verify error %q does not wrap the expected reason %q", err, tc.reason)
			}
			if got != (Verified{}) {
				t.Errorf("Verify returned claims %+v along with its error", got)
			}
		})
	}

	// The hand-built tokens above differ from this control in one respect only, so each
	// refusal is caused by that respect and not by the way the tokens are built.
	controls := []struct {
		name    string
		typ     Type
		raw     string
		wantExp int64
	}{
		{"a hand-built access token with valid claims is accepted (control)", Access,
			handToken(t, atHS, validClaims(), testAccessKey), validClaims()["exp"].(int64)},
		{"a hand-built refresh token with valid claims is accepted (control)", Refresh,
			handToken(t, hdr("HS256", "rt+jwt"), validClaims(), testRefreshKey), validClaims()["exp"].(int64)},
		{"exp 3s in the past is still accepted within the leeway", Access,
			handToken(t, atHS, with(validClaims(), "exp", now-3), testAccessKey), now - 3},
		{"nbf 3s in the future is still accepted within the leeway", Access,
			handToken(t, atHS, with(validClaims(), "nbf", now+3), testAccessKey), validClaims()["exp"].(int64)},
		{"a validly signed token just under the 4096-byte limit is accepted", Access,
			handToken(t, atHS, with(validClaims(), "pad", strings.Repeat("A", 2600)), testAccessKey), validClaims()["exp"].(int64)},
	}
	for _, tc := range controls {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.raw) > maxTokenLen {
				t.Fatalf("control token is %d bytes, over the %d limit", len(tc.raw), maxTokenLen)
			}
			got, err := is.Verify(tc.typ, tc.raw)
			if err != nil {
				t.Fatalf("Verify(%s): %v", tc.typ, err)
			}
			want := Verified{
				ID:        "AAECAwQFBgcICQoLDA0ODw",
				UserID:    testUserID,
				SessionID: testSessionID,
				ExpiresAt: time.Unix(tc.wantExp, 0),
			}
			if got.ID != want.ID || got.UserID != want.UserID || got.SessionID != want.SessionID || !got.ExpiresAt.Equal(want.ExpiresAt) {
				t.Fatalf("Verify = %+v, want %+v", got, want)
			}
		})
	}
}

func TestUnknownTokenType(t *testing.T) {
	is := newTestIssuer(t, "HS256", newClock(fixedNow))
	access := mustIssue(t, is, Access, time.Time{}).Token
	refresh := mustIssue(t, is, Refresh, time.Time{}).Token
	for _, typ := range []Type{"", "id", "ACCESS"} {
		t.Run(`Verify with the unknown type "`+string(typ)+`" refuses tokens instead of panicking`, func(t *testing.T) {
			for _, raw := range []string{access, refresh} {
				_, err := is.Verify(typ, raw)
				checkVerifyErr(t, err, false, nil)
			}
		})
		t.Run(`Issue with the unknown type "`+string(typ)+`" fails`, func(t *testing.T) {
			if got, err := is.Issue(typ, testUserID, testSessionID, time.Time{}); err == nil {
				t.Fatalf("Issue(%q) succeeded: %+v", typ, got)
			}
		})
	}
}

func TestNewIssuer(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"HS256 with both keys is accepted", func(c *Config) {}, false},
		{"HS384 with both keys is accepted", func(c *Config) { c.Algorithm = "HS384" }, false},
		{"HS512 with both keys is accepted", func(c *Config) { c.Algorithm = "HS512" }, false},
		{"a nil clock and random source default to the real ones", func(c *Config) { c.Now = nil; c.Random = nil }, false},
		{"an empty algorithm is rejected", func(c *Config) { c.Algorithm = "" }, true},
		{`the algorithm "none" is rejected`, func(c *Config) { c.Algorithm = "none" }, true},
		{`a lower-case "hs256" is rejected`, func(c *Config) { c.Algorithm = "hs256" }, true},
		{"RS256 without a key source is rejected", func(c *Config) { c.Algorithm = "RS256" }, true},
		{"ES256 without a key source is rejected", func(c *Config) { c.Algorithm = "ES256" }, true},
		{"EdDSA without a key source is rejected", func(c *Config) { c.Algorithm = "EdDSA" }, true},
		{"an HMAC algorithm that differs from HS256 is rejected", func(c *Config) { c.HMACAlgorithm = "HS512" }, true},
		{"a key source beside the HMAC secrets is accepted", func(c *Config) { c.Keys = StaticKeys{} }, false},
		{"a negative cache size turns the cache off", func(c *Config) { c.CacheSize = -1 }, false},
		{"the unknown HS1024 is rejected", func(c *Config) { c.Algorithm = "HS1024" }, true},
		{"an empty access key is rejected", func(c *Config) { c.AccessKey = []byte{} }, true},
		{"a nil access key is rejected", func(c *Config) { c.AccessKey = nil }, true},
		{"an empty refresh key is rejected", func(c *Config) { c.RefreshKey = []byte{} }, true},
		{"a nil refresh key is rejected", func(c *Config) { c.RefreshKey = nil }, true},
		{"both keys missing is rejected", func(c *Config) { c.AccessKey, c.RefreshKey = nil, nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("HS256", newClock(fixedNow))
			tc.mutate(&cfg)
			is, err := NewIssuer(cfg)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("NewIssuer(%+v) succeeded, want an error", cfg)
				}
				if is != nil {
					t.Errorf("NewIssuer returned an Issuer along with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewIssuer: %v", err)
			}
			// A usable issuer round-trips both types.
			for _, typ := range []Type{Access, Refresh} {
				issued, err := is.Issue(typ, testUserID, testSessionID, time.Time{})
				if err != nil {
					t.Fatalf("Issue(%s): %v", typ, err)
				}
				if _, err := is.Verify(typ, issued.Token); err != nil {
					t.Fatalf("Verify(%s): %v", typ, err)
				}
			}
		})
	}
}

func TestTTL(t *testing.T) {
	is := newTestIssuer(t, "HS256", newClock(fixedNow))
	for _, tc := range []struct {
		name string
		typ  Type
		want time.Duration
	}{
		{"the access TTL is the configured AccessTTL", Access, testAccessTTL},
		{"the refresh TTL is the configured RefreshTTL", Refresh, testRefreshTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := is.TTL(tc.typ); got != tc.want {
				t.Fatalf("TTL(%s) = %v, want %v", tc.typ, got, tc.want)
			}
		})
	}
}

func TestIssuerIsSafeForConcurrentUse(t *testing.T) {
	is := newTestIssuer(t, "HS384", newClock(fixedNow))
	var wg sync.WaitGroup
	ids := make(chan string, 200)
	for i := 0; i < 200; i++ {
		typ := Access
		if i%2 == 1 {
			typ = Refresh
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			issued, err := is.Issue(typ, testUserID, testSessionID, time.Time{})
			if err != nil {
				t.Errorf("Issue: %v", err)
				return
			}
			got, err := is.Verify(typ, issued.Token)
			if err != nil {
				t.Errorf("Verify: %v", err)
				return
			}
			ids <- got.ID
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("jti %q issued twice under concurrency", id)
		}
		seen[id] = true
	}
}
