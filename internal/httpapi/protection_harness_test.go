package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testredis"
	"github.com/authly/authly/internal/token"
)

// Options for the abuse protections. newEnv leaves every limit and the lockout off, so that
// other tests may log in as often as they like; these turn them on.

func withLimits(l service.RateLimits) envOption {
	return func(_ *token.Config, d *service.Deps) { d.RateLimits = l }
}

func withLockout(p service.LockoutPolicy) envOption {
	return func(_ *token.Config, d *service.Deps) { d.Lockout = p }
}

func withLimiter(l ratelimit.Limiter) envOption {
	return func(_ *token.Config, d *service.Deps) { d.RateLimiter = l }
}

func withHasher(h *hashpool.Pool) envOption {
	return func(_ *token.Config, d *service.Deps) { d.Hasher = h }
}

func withBcryptCost(cost int) envOption {
	return func(_ *token.Config, d *service.Deps) { d.BcryptCost = cost }
}

// redisLimiter is a Redis store under a key prefix of the test's own, on a client of its own,
// as one Authly instance would hold it.
func redisLimiter(t *testing.T, prefix string) ratelimit.Limiter {
	return ratelimit.NewRedis(testredis.Client(t), prefix)
}

// sibling is another Authly instance on e's database and clock, built with opts: its own
// service, handler and in-memory state, as a second server process would have.
func (e *env) sibling(opts ...envOption) *env {
	e.t.Helper()
	return newInstance(e.t, e.pool, e.clock, httpapi.ServerOptions{}, opts...)
}

func passwordGrant(username, password string) api.TokenRequest {
	return api.TokenRequest{GrantType: api.TokenRequestGrantTypePassword, Username: &username, Password: &password}
}

// serveWith replaces the env's HTTP server with one built with opts, on the same service.
func (e *env) serveWith(opts httpapi.ServerOptions) {
	e.t.Helper()
	h, err := httpapi.NewServer(e.svc, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv.Close()
	e.srv = httptest.NewServer(h)
	e.t.Cleanup(e.srv.Close)
	e.client, err = api.NewClientWithResponses(e.srv.URL, api.WithHTTPClient(&http.Client{
		Transport: &contractChecker{t: e.t, next: http.DefaultTransport},
	}))
	if err != nil {
		e.t.Fatal(err)
	}
}

// seedUser creates a verified user without going through HTTP, so that no rate limit is
// spent on the setup.
func (e *env) seedUser(username string) {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.svc.Register(ctx, service.NewUser{Username: username, Email: strings.ToLower(username) + "@example.com", Password: testPassword}, service.Client{})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, "UPDATE users SET is_verified = true WHERE id = $1", u.ID); err != nil {
		e.t.Fatal(err)
	}
}

// seedAdmin creates an admin and returns an access token for it, without going through the
// token endpoint's rate limits.
func (e *env) seedAdmin() string {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.svc.EnsureAdmin(ctx, service.NewUser{Username: "root", Email: "root@example.com", Password: testPassword}, service.AdminFromBootstrap); err != nil {
		e.t.Fatal(err)
	}
	pair, _, err := e.svc.PasswordLogin(ctx, "root", testPassword, service.Client{IP: "192.0.2.1"})
	if err != nil {
		e.t.Fatal(err)
	}
	return pair.AccessToken
}

// seen is what a client can observe of one answer, for comparing sequences of answers.
type seen struct {
	Status                    int
	Code                      string
	RetryAfter                string
	Limit, Remaining, ResetIn string
}

func seenOf(t *testing.T, resp *http.Response, body []byte) seen {
	t.Helper()
	s := seen{
		Status:     resp.StatusCode,
		RetryAfter: resp.Header.Get("Retry-After"),
		Limit:      resp.Header.Get("RateLimit-Limit"),
		Remaining:  resp.Header.Get("RateLimit-Remaining"),
		ResetIn:    resp.Header.Get("RateLimit-Reset"),
	}
	if resp.StatusCode >= 400 {
		s.Code = problemCode(t, body)
	}
	return s
}

// loginSeen sends a JSON password login and returns what came back.
func (e *env) loginSeen(username, password string, headers ...string) seen {
	e.t.Helper()
	body := `{"grant_type":"password","username":` + jsonString(username) + `,"password":` + jsonString(password) + `}`
	resp, b := e.raw("POST", "/api/v1/auth/token", "application/json", body, headers...)
	return seenOf(e.t, resp, b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// auditCount counts audit events of a type, optionally with a detail equal to a value.
func (e *env) auditCount(eventType string, detail ...string) int {
	e.t.Helper()
	q := "SELECT count(*) FROM audit_events WHERE event_type = $1"
	args := []any{eventType}
	if len(detail) == 2 {
		q += " AND details->>$2 = $3"
		args = append(args, detail[0], detail[1])
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
