package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
)

// plain sends a request without the contract check, for answers the contract does not
// describe, such as a CORS preflight.
func (e *env) plain(method, path string, headers ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var securityHeaders = map[string]string{
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'",
	"Strict-Transport-Security":    "max-age=31536000",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Resource-Policy": "same-origin",
	"X-XSS-Protection":             "0",
	"Cache-Control":                "no-store",
}

func checkSecurityHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for name, want := range securityHeaders {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %s is %q, want %q", what, name, got, want)
		}
	}
	if server := resp.Header.Get("Server"); server != "" {
		t.Errorf("%s: a Server header %q", what, server)
	}
}

func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLimits(service.RateLimits{Register: ratelimit.Limit{N: 1, Period: time.Hour}}))
	admin := e.seedAdmin()
	e.raw("POST", "/api/v1/users", "application/json", `{}`) // spends the registration quota
	cases := []struct {
		name, method, path, contentType, body string
		headers                               []string
		status                                int
	}{
		{"health", "GET", "/health", "", "", nil, 200},
		{"a user's own account", "GET", "/api/v1/users/me", "", "", []string{"Authorization", "Bearer " + admin}, 200},
		{"a login", "POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":"root","password":"` + testPassword + `"}`, nil, 200},
		{"a failed login", "POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":"root","password":"nope"}`, nil, 401},
		{"an unknown route", "GET", "/nowhere", "", "", nil, 404},
		{"a wrong method", "DELETE", "/api/v1/auth/token", "", "", nil, 405},
		{"TRACE", "TRACE", "/health", "", "", nil, 405},
		{"an OPTIONS request without CORS", "OPTIONS", "/api/v1/auth/token", "", "", []string{"Origin", "https://app.example.com", "Access-Control-Request-Method", "POST"}, 405},
		{"a body too large", "POST", "/api/v1/auth/token", "application/json", strings.Repeat(" ", 70_000), nil, 413},
		{"a wrong media type", "POST", "/api/v1/auth/token", "text/plain", "x", nil, 415},
		{"a rate-limited registration", "POST", "/api/v1/users", "application/json", `{}`, nil, 429},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := e.raw(tc.method, tc.path, tc.contentType, tc.body, tc.headers...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			checkSecurityHeaders(t, tc.name, resp)
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("a CORS header with no origin allowed")
			}
		})
	}
}

func TestCORSAllowsExactlyTheConfiguredOrigins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.serveWith(httpapi.ServerOptions{CORSAllowedOrigins: []string{"https://app.example.com"}})

	t.Run("a preflight from an allowed origin is answered, not refused", func(t *testing.T) {
		resp := e.plain("OPTIONS", "/api/v1/auth/token", "Origin", "https://app.example.com",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight: %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
			t.Errorf("Access-Control-Allow-Origin %q", got)
		}
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("Access-Control-Allow-Methods %q", resp.Header.Get("Access-Control-Allow-Methods"))
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Error("credentials are allowed")
		}
		checkSecurityHeaders(t, "preflight", resp)
	})
	t.Run("a request from an allowed origin may read the rate limit headers", func(t *testing.T) {
		resp := e.plain("GET", "/health", "Origin", "https://app.example.com")
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Fatalf("Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
		exposed := resp.Header.Get("Access-Control-Expose-Headers")
		for _, h := range []string{"Retry-After", "Ratelimit-Remaining"} {
			if !strings.Contains(strings.ToLower(exposed), strings.ToLower(h)) {
				t.Errorf("%s is not exposed: %q", h, exposed)
			}
		}
	})
	for _, origin := range []string{"https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com", "null"} {
		t.Run("no CORS header for "+origin, func(t *testing.T) {
			for _, method := range []string{"GET", "OPTIONS"} {
				resp := e.plain(method, "/health", "Origin", origin, "Access-Control-Request-Method", "GET")
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
					t.Errorf("%s: Access-Control-Allow-Origin %q", method, got)
				}
			}
		})
	}
}

func TestTheBodyCapIsConfigurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.serveWith(httpapi.ServerOptions{MaxBodyBytes: 2048})
	login := func(padding int) int {
		resp, _ := e.raw("POST", "/api/v1/auth/token", "application/json",
			`{"grant_type":"password","username":"nobody","password":"x"}`+strings.Repeat(" ", padding))
		return resp.StatusCode
	}
	if got := login(1900); got != http.StatusUnauthorized {
		t.Errorf("a body under the cap: %d", got)
	}
	if got := login(2100); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the cap: %d", got)
	}
}

// TestHostileInputIsRefusedQuickly sends what an attacker would: oversized, mistyped,
// malformed and hostile bodies and paths. Each must be answered with a 4xx, never a 5xx, in
// well under a second, and leave the data as it was.
func TestHostileInputIsRefusedQuickly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.seedAdmin()
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	login := func(username, password string) string {
		return `{"grant_type":"password","username":` + jsonString(username) + `,"password":` + jsonString(password) + `}`
	}
	sqlInjections := []string{
		`' OR '1'='1`, `root'--`, `root' OR 1=1; --`, `"; DROP TABLE users; --`,
		`' UNION SELECT password_hash FROM users --`, `root'; UPDATE users SET is_admin = true; --`, `%' OR username LIKE '%`,
	}
	type request struct {
		name, method, path, contentType, body string
		status                                int
	}
	cases := []request{
		{"a body over the cap", "POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":"` + strings.Repeat("a", 70_000) + `"}`, 413},
		{"a form over the cap", "POST", "/api/v1/auth/token", "application/x-www-form-urlencoded", "username=" + strings.Repeat("a", 70_000), 413},
		{"no content type", "POST", "/api/v1/auth/token", "", login("root", "x"), 415},
		{"a form where only JSON is accepted", "POST", "/api/v1/users", "application/x-www-form-urlencoded", "username=mallory", 415},
		{"multipart", "POST", "/api/v1/auth/token", "multipart/form-data; boundary=x", "--x--", 415},
		{"JSON in another charset", "POST", "/api/v1/auth/token", "application/json; charset=latin1", login("root", "x"), 415},
		{"a malformed content type", "POST", "/api/v1/auth/token", "application/json; charset", login("root", "x"), 415},
		{"an empty body", "POST", "/api/v1/auth/token", "application/json", "", 400},
		{"invalid UTF-8", "POST", "/api/v1/auth/token", "application/json", "{\"grant_type\":\"password\",\"username\":\"\xff\xfe\",\"password\":\"x\"}", 400},
		{"invalid UTF-8 in a form", "POST", "/api/v1/auth/token", "application/x-www-form-urlencoded", "grant_type=password&username=%ff&password=x", 400},
		{"an escaped NUL", "POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":"root\u0000","password":"x"}`, 400},
		{"a raw NUL", "POST", "/api/v1/auth/token", "application/json", "{\"grant_type\":\"password\",\"username\":\"root\x00\",\"password\":\"x\"}", 400},
		{"a NUL in a form", "POST", "/api/v1/auth/token", "application/x-www-form-urlencoded", "grant_type=password&username=root%00&password=x", 400},
		{"10,000-deep nesting", "POST", "/api/v1/auth/token", "application/json", deep(10_000), 400},
		{"10,000-deep nesting inside a field", "POST", "/api/v1/users", "application/json", `{"username":` + deep(10_000) + `}`, 400},
		{"nesting deeper than JSON parsers allow", "POST", "/api/v1/auth/token", "application/json", deep(30_000), 400},
		{"a duplicate key", "POST", "/api/v1/auth/token", "application/json", `{"grant_type":"refresh_token","grant_type":"password","username":"root","password":"x"}`, 400},
		{"a duplicate key in a nested object", "POST", "/api/v1/users", "application/json", `{"username":"mallory","email":"m@example.com","password":"` + testPassword + `","x":{"a":1,"a":2}}`, 400},
		{"a number too large for any type", "POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":1e999999,"password":"x"}`, 400},
		{"a login name longer than any account's", "POST", "/api/v1/auth/token", "application/json", login(strings.Repeat("a", 300), "x"), 400},
		{"trailing garbage", "POST", "/api/v1/users", "application/json", `{"username":"mallory"}garbage`, 400},
		{"a JSON array for an object", "POST", "/api/v1/users", "application/json", `[{"username":"mallory"}]`, 400},
		{"a malformed user id", "GET", "/api/v1/users/not-a-uuid", "", "", 400},
		{"an injected user id", "GET", "/api/v1/users/1%27%20OR%20%271%27%3D%271", "", "", 400},
		{"a user id with a NUL", "GET", "/api/v1/users/%00", "", "", 400},
		{"a malformed session id", "DELETE", "/api/v1/users/me/sessions/00000000-0000-0000-0000-00000000000g", "", "", 400},
		{"a user id with a path traversal", "PUT", "/api/v1/users/..%2f..%2fhealth/verify", "", "", 400},
		{"TRACE", "TRACE", "/api/v1/users/me", "", "", 405},
		{"PATCH", "PATCH", "/api/v1/users/me", "application/json", `{}`, 405},
		{"an invented method", "BREW", "/api/v1/users", "", "", 405},
	}
	for _, s := range sqlInjections {
		cases = append(cases,
			request{"SQL in the username: " + s, "POST", "/api/v1/auth/token", "application/json", login(s, testPassword), 401},
			request{"SQL in the password: " + s, "POST", "/api/v1/auth/token", "application/json", login("root", s), 401},
			request{"SQL in a registration: " + s, "POST", "/api/v1/users", "application/json",
				`{"username":` + jsonString(s) + `,"email":"sql@example.com","password":` + jsonString(s+" long enough") + `}`, 400},
		)
	}
	// Where the answer must name what was wrong, so that the test proves the check that caught
	// it and not a later one.
	mentions := map[string]string{
		"a duplicate key":                    `{"field":"grant_type","message":"must appear once"}`,
		"a duplicate key in a nested object": `{"field":"x/a","message":"must appear once"}`,
		"10,000-deep nesting":                "nests too deeply",
		"an escaped NUL":                     `{"field":"username","message":"must not contain control characters"}`,
		"invalid UTF-8":                      "must be valid UTF-8",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, body := e.raw(tc.method, tc.path, tc.contentType, tc.body, "Authorization", "Bearer "+admin)
			elapsed := time.Since(start)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(string(body), mentions[tc.name]) {
				t.Errorf("the problem does not mention %s: %s", mentions[tc.name], body)
			}
			if elapsed > time.Second {
				t.Errorf("answered in %v", elapsed)
			}
			if len(body) > 0 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("answered with %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	var users, admins int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*), count(*) FILTER (WHERE is_admin) FROM users").Scan(&users, &admins); err != nil {
		t.Fatalf("the users table after the attack: %v", err)
	}
	if users != 1 || admins != 1 {
		t.Fatalf("%d users and %d admins after the attack, want only the admin", users, admins)
	}
}
