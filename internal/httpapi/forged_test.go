package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/service"
)

// forge encodes header and claims and signs them with key under header["alg"] when that is
// an HMAC algorithm; any other alg, such as "none", gets an empty signature.
func forge(t *testing.T, header, claims map[string]any, key []byte) string {
	t.Helper()
	enc := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	input := enc(header) + "." + enc(claims)
	alg, _ := header["alg"].(string)
	return input + "." + hmacSign(alg, key, input)
}

func hmacSign(alg string, key []byte, input string) string {
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
	mac := hmac.New(h, key)
	mac.Write([]byte(input))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// with returns a copy of m with the given keys set; a nil value deletes the key.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// capitalisations returns every upper/lower-case spelling of s.
func capitalisations(s string) []string {
	out := []string{""}
	for _, r := range s {
		var next []string
		for _, prefix := range out {
			lower, upper := strings.ToLower(string(r)), strings.ToUpper(string(r))
			next = append(next, prefix+lower)
			if upper != lower {
				next = append(next, prefix+upper)
			}
		}
		out = next
	}
	return out
}

// getMe calls GET /api/v1/users/me with a raw Authorization header (none when empty) and
// an optional query string.
func (e *env) getMe(authorization, query string) (*http.Response, []byte) {
	e.t.Helper()
	var headers []string
	if authorization != "" {
		headers = []string{"Authorization", authorization}
	}
	path := "/api/v1/users/me"
	if query != "" {
		path += "?" + query
	}
	return e.raw("GET", path, "", "", headers...)
}

func TestForgedTokensAreRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("victim")
	adminID := subjectOf(t, e.admin())
	header, claims := jwtClaims(t, pair.AccessToken)
	now := e.clock.Now()
	signed := func(h, c map[string]any) string { return forge(t, h, c, accessKey) }
	sig := pair.AccessToken[strings.LastIndexByte(pair.AccessToken, '.')+1:]
	parts := strings.Split(pair.AccessToken, ".")

	// The control: the same header and claims, re-signed with the right key, are accepted.
	// So every case below fails for the one thing it changes.
	if resp, body := e.getMe("Bearer "+signed(header, claims), ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a faithful re-signing of a real token is refused: %d %s", resp.StatusCode, body)
	}

	type forgery struct{ name, authorization, query string }
	var cases []forgery
	add := func(name, tok string) { cases = append(cases, forgery{name: name, authorization: "Bearer " + tok}) }

	for _, none := range capitalisations("none") {
		add("alg "+none+" without a signature", forge(t, with(header, "alg", none), claims, nil))
	}
	add("alg none keeping the real signature", forge(t, with(header, "alg", "none"), claims, nil)+sig)
	add("HS384 with the right key when HS256 is configured", signed(with(header, "alg", "HS384"), claims))
	add("HS512 with the right key when HS256 is configured", signed(with(header, "alg", "HS512"), claims))
	add("RS256 in the header over an HMAC signature", forge(t, with(header, "alg", "RS256"), claims, nil)+hmacSign("HS256", accessKey, parts[0]+"."+parts[1]))
	add("the wrong key", forge(t, header, claims, []byte("an-attacker-chosen-key-0123456789abcdef")))
	add("the refresh key on an access token", forge(t, header, claims, refreshKey))
	add("the signature stripped, dot kept", parts[0]+"."+parts[1]+".")
	add("the signature stripped, dot dropped", parts[0]+"."+parts[1])
	tampered, _ := json.Marshal(with(claims, "sub", adminID))
	add("a tampered payload under the original signature", parts[0]+"."+base64.RawURLEncoding.EncodeToString(tampered)+"."+sig)
	add("exp in the past, beyond the leeway", signed(header, with(claims, "exp", now.Add(-10*time.Second).Unix())))
	add("no exp at all", signed(header, with(claims, "exp", nil)))
	add("nbf in the future", signed(header, with(claims, "nbf", now.Add(time.Minute).Unix())))
	add("iat in the future", signed(header, with(claims, "iat", now.Add(time.Minute).Unix())))
	add("the wrong iss", signed(header, with(claims, "iss", "https://evil.example")))
	add("no iss", signed(header, with(claims, "iss", nil)))
	add("a correctly signed token whose jti was never issued", signed(header, with(claims, "jti", "bm90LWlzc3VlZC1ieS1hdXRobHk")))
	add("no jti", signed(header, with(claims, "jti", nil)))
	add("the jti of another session", signed(header, with(claims, "sid", uuid.NewString())))
	add("the jti, but another subject", signed(header, with(claims, "sub", adminID)))
	add("a sub that is not a user id", signed(header, with(claims, "sub", "admin")))
	add("no typ header", signed(with(header, "typ", nil), claims))
	add("typ JWT", signed(with(header, "typ", "JWT"), claims))
	add("typ rt+jwt under the access key", signed(with(header, "typ", "rt+jwt"), claims))
	add("the refresh token as a bearer", pair.RefreshToken)
	add("two segments", "eyJhbGciOiJIUzI1NiJ9.e30")
	add("four segments", pair.AccessToken+"."+sig)
	add("bad base64", "!!!."+parts[1]+"."+sig)
	add("a header that is not JSON", base64.RawURLEncoding.EncodeToString([]byte("not json"))+"."+parts[1]+"."+sig)
	add("claims that are not JSON", parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte("[1,2"))+"."+sig)
	add("100 KB of token", strings.Repeat("A", 100<<10))
	add("100 KB of claims", signed(header, with(claims, "pad", strings.Repeat("x", 100<<10))))
	cases = append(cases,
		forgery{name: "no token at all"},
		forgery{name: "an empty bearer", authorization: "Bearer "},
		forgery{name: "the token as Basic credentials", authorization: "Basic " + pair.AccessToken},
		forgery{name: "a valid token in the query string instead of the header", query: "access_token=" + url.QueryEscape(pair.AccessToken)},
	)

	for _, tc := range cases {
		t.Run(tc.name+" gets 401", func(t *testing.T) {
			resp, body := e.getMe(tc.authorization, tc.query)
			if resp.StatusCode != http.StatusUnauthorized || problemCode(t, body) != service.CodeInvalidToken {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatal("no WWW-Authenticate: Bearer")
			}
		})
	}

	t.Run("a token of a deleted user gets 401", func(t *testing.T) {
		_, doomed := e.verifiedUser("doomed")
		if _, err := e.pool.Exec(context.Background(), `DELETE FROM users WHERE username = 'doomed'`); err != nil {
			t.Fatal(err)
		}
		if resp, body := e.getMe("Bearer "+doomed.AccessToken, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("a token of a deactivated user gets 401", func(t *testing.T) {
		_, benched := e.verifiedUser("benched")
		if _, err := e.pool.Exec(context.Background(), `UPDATE users SET is_active = false WHERE username = 'benched'`); err != nil {
			t.Fatal(err)
		}
		if resp, body := e.getMe("Bearer "+benched.AccessToken, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("an exp stretched with the stolen signing key gets 401 once the issued token expires", func(t *testing.T) {
		_, held := e.verifiedUser("held")
		h, c := jwtClaims(t, held.AccessToken)
		stretched := signed(h, with(c, "exp", e.clock.Now().Add(24*time.Hour).Unix()))
		if resp, _ := e.getMe("Bearer "+stretched, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the issued expiry: %d", resp.StatusCode)
		}
		e.clock.Advance(30*time.Minute + 10*time.Second)
		if resp, body := e.getMe("Bearer "+stretched, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("after the issued expiry: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("an expired token gets 401 once the leeway is spent", func(t *testing.T) {
		_, late := e.verifiedUser("late")
		e.clock.Advance(30*time.Minute + 4*time.Second)
		if resp, _ := e.getMe("Bearer "+late.AccessToken, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("within the 5 s leeway: %d", resp.StatusCode)
		}
		e.clock.Advance(2 * time.Second)
		if resp, body := e.getMe("Bearer "+late.AccessToken, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("past the leeway: %d %s", resp.StatusCode, body)
		}
	})
}

// subjectOf returns the user id a token belongs to.
func subjectOf(t *testing.T, tok string) string {
	t.Helper()
	_, claims := jwtClaims(t, tok)
	return claims["sub"].(string)
}

func TestForgedRefreshTokensAreRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("rhea")
	header, claims := jwtClaims(t, pair.RefreshToken)
	now := e.clock.Now()
	withKey := func(h, c map[string]any, key []byte) string { return forge(t, h, c, key) }

	// The control: a faithful re-signing rotates; it is the same token, so afterwards the
	// original counts as reused, and the test works on the new pair.
	control := e.refresh(withKey(header, claims, refreshKey))
	if control.JSON200 == nil {
		t.Fatalf("a faithful re-signing of a real refresh token is refused: %d %s", control.StatusCode(), control.Body)
	}
	header, claims = jwtClaims(t, control.JSON200.RefreshToken)
	parts := strings.Split(control.JSON200.RefreshToken, ".")

	cases := []struct{ name, token string }{
		{"an access token", control.JSON200.AccessToken},
		{"alg none", withKey(with(header, "alg", "none"), claims, nil)},
		{"alg NoNe", withKey(with(header, "alg", "NoNe"), claims, nil)},
		{"HS512 when HS256 is configured", withKey(with(header, "alg", "HS512"), claims, refreshKey)},
		{"the wrong key", withKey(header, claims, []byte("an-attacker-chosen-key-0123456789abcdef"))},
		{"the access key", withKey(header, claims, accessKey)},
		{"the access key and typ at+jwt", withKey(with(header, "typ", "at+jwt"), claims, accessKey)},
		{"the signature stripped", parts[0] + "." + parts[1] + "."},
		{"exp in the past", withKey(header, with(claims, "exp", now.Add(-10*time.Second).Unix()), refreshKey)},
		{"nbf in the future", withKey(header, with(claims, "nbf", now.Add(time.Minute).Unix()), refreshKey)},
		{"the wrong iss", withKey(header, with(claims, "iss", "https://evil.example"), refreshKey)},
		{"a jti never issued", withKey(header, with(claims, "jti", "bm90LWlzc3VlZC1ieS1hdXRobHk"), refreshKey)},
		{"the jti in another session", withKey(header, with(claims, "sid", uuid.NewString()), refreshKey)},
		{"four segments", control.JSON200.RefreshToken + ".x"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is an invalid grant", func(t *testing.T) {
			resp := e.refresh(tc.token)
			if resp.ApplicationproblemJSON401 == nil || resp.ApplicationproblemJSON401.Code != service.CodeInvalidGrant {
				t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
			}
		})
	}
	// None of them rotated or revoked anything: the real pair still works.
	if code := e.meStatus(control.JSON200.AccessToken); code != http.StatusOK {
		t.Fatalf("the real access token after the forgeries: %d", code)
	}
	e.mustRefresh(control.JSON200.RefreshToken)
}

func TestOnlyTheConfiguredAlgorithmIsAccepted(t *testing.T) {
	t.Parallel()
	algorithms := []string{"HS256", "HS384", "HS512"}
	for _, configured := range algorithms {
		t.Run(configured, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withAlgorithm(configured))
			_, pair := e.verifiedUser("alg" + strings.ToLower(configured))
			header, claims := jwtClaims(t, pair.AccessToken)
			if header["alg"] != configured {
				t.Fatalf("issued with alg %v", header["alg"])
			}
			if code := e.meStatus(pair.AccessToken); code != http.StatusOK {
				t.Fatalf("a token signed with the configured algorithm: %d", code)
			}
			for _, other := range algorithms {
				if other == configured {
					continue
				}
				tok := forge(t, with(header, "alg", other), claims, accessKey)
				if code := e.meStatus(tok); code != http.StatusUnauthorized {
					t.Errorf("%s with the right key while %s is configured: %d", other, configured, code)
				}
			}
			rotated := e.mustRefresh(pair.RefreshToken)
			if h, _ := jwtClaims(t, rotated.RefreshToken); h["alg"] != configured {
				t.Errorf("refresh token issued with alg %v", h["alg"])
			}
		})
	}
}
