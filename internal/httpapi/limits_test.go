package httpapi_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authly/authly/internal/clientip"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testredis"
)

// limitBackend is a rate limit store the limits are tested on. The memory store runs on the
// test clock, so its durations are exact; Redis runs on its own clock, so only their bounds
// are checked.
type limitBackend struct {
	name  string
	exact bool
	opts  func(t *testing.T) []envOption
}

var limitBackends = []limitBackend{
	{"memory", true, func(*testing.T) []envOption { return nil }},
	{"redis", false, func(t *testing.T) []envOption {
		return []envOption{withLimiter(redisLimiter(t, testredis.Prefix(t)))}
	}},
}

// checkSeen compares an answer with the one expected. For a backend on its own clock, the
// second counts (Retry-After, RateLimit-Reset) need only be from 1 to the expected value.
func checkSeen(t *testing.T, exact bool, step string, got, want seen) {
	t.Helper()
	if exact {
		if got != want {
			t.Errorf("%s: got %+v, want %+v", step, got, want)
		}
		return
	}
	within := func(got, want string) bool {
		if want == "" || got == want {
			return got == want
		}
		g, err1 := strconv.Atoi(got)
		w, err2 := strconv.Atoi(want)
		return err1 == nil && err2 == nil && g >= 1 && g <= w
	}
	if got.Status != want.Status || got.Code != want.Code || got.Limit != want.Limit || got.Remaining != want.Remaining ||
		!within(got.RetryAfter, want.RetryAfter) || !within(got.ResetIn, want.ResetIn) {
		t.Errorf("%s: got %+v, want %+v (durations at most)", step, got, want)
	}
}

func TestTheIPLimitCoversAuthAndRegistration(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			opts := append(b.opts(t), withLimits(service.RateLimits{IP: ratelimit.Limit{N: 3, Period: time.Minute}}))
			e := newEnv(t, opts...)
			admin := e.seedAdmin()

			// 3 per minute is one every 20 seconds, with a burst of 3.
			resp, body := e.raw("POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":"nobody","password":"wrong password"}`)
			checkSeen(t, b.exact, "a login", seenOf(t, resp, body), seen{Status: 401, Code: service.CodeInvalidCredentials, Limit: "3", Remaining: "2", ResetIn: "20"})
			resp, body = e.raw("POST", "/api/v1/auth/refresh", "application/json", `{"grant_type":"refresh_token","refresh_token":"not.a.token"}`)
			checkSeen(t, b.exact, "a refresh", seenOf(t, resp, body), seen{Status: 401, Code: service.CodeInvalidGrant, Limit: "3", Remaining: "1", ResetIn: "40"})
			resp, body = e.raw("POST", "/api/v1/users", "application/json", `{"username":"x","email":"x","password":"x"}`)
			checkSeen(t, b.exact, "a registration", seenOf(t, resp, body), seen{Status: 400, Code: service.CodeInvalidRequest, Limit: "3", Remaining: "0", ResetIn: "60"})
			for _, step := range []string{"a logout over the limit", "another request over the limit"} {
				resp, body = e.raw("POST", "/api/v1/auth/logout", "", "", "Authorization", "Bearer "+admin)
				checkSeen(t, b.exact, step, seenOf(t, resp, body), seen{Status: 429, Code: service.CodeRateLimited, RetryAfter: "20", Limit: "3", Remaining: "0", ResetIn: "60"})
			}
			if n := e.auditCount(service.AuditRateLimited, "limit", "ip"); n != 1 {
				t.Errorf("%d rate_limited audit events, want 1 for the trip, not one per refusal", n)
			}

			// Health and bearer routes are not limited, and carry no RateLimit headers.
			for _, path := range []string{"/health", "/api/v1/users/me"} {
				resp, _ := e.raw("GET", path, "", "", "Authorization", "Bearer "+admin)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("RateLimit-Limit") != "" {
					t.Errorf("GET %s over the IP limit: %d, RateLimit-Limit %q", path, resp.StatusCode, resp.Header.Get("RateLimit-Limit"))
				}
			}
			if b.exact {
				e.clock.Advance(20 * time.Second)
				resp, body = e.raw("POST", "/api/v1/auth/token", "application/json", `{"grant_type":"password","username":"nobody","password":"wrong password"}`)
				checkSeen(t, true, "a login once an interval has passed", seenOf(t, resp, body), seen{Status: 401, Code: service.CodeInvalidCredentials, Limit: "3", Remaining: "0", ResetIn: "60"})
			}
		})
	}
}

func TestTheLoginLimitCountsPerName(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			opts := append(b.opts(t), withLimits(service.RateLimits{Login: ratelimit.Limit{N: 2, Period: time.Minute}}))
			e := newEnv(t, opts...)
			e.seedUser("alice")
			e.seedUser("bob")

			first := seen{Status: 401, Code: service.CodeInvalidCredentials, Limit: "2", Remaining: "1", ResetIn: "30"}
			second := seen{Status: 401, Code: service.CodeInvalidCredentials, Limit: "2", Remaining: "0", ResetIn: "60"}
			limited := seen{Status: 429, Code: service.CodeRateLimited, RetryAfter: "30", Limit: "2", Remaining: "0", ResetIn: "60"}
			checkSeen(t, b.exact, "alice's first wrong password", e.loginSeen("alice", "wrong password"), first)
			checkSeen(t, b.exact, "alice's second wrong password", e.loginSeen("alice", "wrong password"), second)
			checkSeen(t, b.exact, "alice's right password over the limit", e.loginSeen("alice", testPassword), limited)
			checkSeen(t, b.exact, "ALICE shares alice's count", e.loginSeen("ALICE", testPassword), limited)
			checkSeen(t, b.exact, "bob has a count of his own", e.loginSeen("bob", "wrong password"), first)

			// A name without an account is counted exactly the same way.
			checkSeen(t, b.exact, "an unknown name's first try", e.loginSeen("ghost", "wrong password"), first)
			checkSeen(t, b.exact, "its second", e.loginSeen("ghost", "wrong password"), second)
			checkSeen(t, b.exact, "its third", e.loginSeen("ghost", "wrong password"), limited)

			// The form body counts against the same name.
			resp, body := e.raw("POST", "/api/v1/auth/token", "application/x-www-form-urlencoded",
				url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"wrong password"}}.Encode())
			checkSeen(t, b.exact, "bob's second try, as a form", seenOf(t, resp, body), second)

			if n := e.auditCount(service.AuditRateLimited, "limit", "login"); n != 2 {
				t.Errorf("%d login rate_limited events, want one per tripped name (alice, ghost)", n)
			}
			var leaked int
			if err := e.pool.QueryRow(context.Background(),
				`SELECT count(*) FROM audit_events WHERE event_type NOT IN ('user_registered', 'mail_queued')
				AND (details::text ILIKE '%alice%' OR details::text ILIKE '%ghost%')`).Scan(&leaked); err != nil || leaked != 0 {
				t.Errorf("audit details name a login name: %d %v", leaked, err)
			}
		})
	}
}

func TestTheRegistrationLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLimits(service.RateLimits{
		IP:       ratelimit.Limit{N: 100, Period: time.Minute},
		Register: ratelimit.Limit{N: 2, Period: time.Hour},
	}))
	register := func(name string) seen {
		resp, body := e.raw("POST", "/api/v1/users", "application/json",
			`{"username":"`+name+`","email":"`+name+`@example.com","password":"`+testPassword+`"}`)
		return seenOf(t, resp, body)
	}
	// The registration limit is the tighter of the two, so its quota is the one shown.
	checkSeen(t, true, "the first registration", register("reg1"), seen{Status: 201, Limit: "2", Remaining: "1", ResetIn: "1800"})
	checkSeen(t, true, "the second", register("reg2"), seen{Status: 201, Limit: "2", Remaining: "0", ResetIn: "3600"})
	checkSeen(t, true, "the third", register("reg3"), seen{Status: 429, Code: service.CodeRateLimited, RetryAfter: "1800", Limit: "2", Remaining: "0", ResetIn: "3600"})
	// Other auth routes only count against the IP limit.
	checkSeen(t, true, "a login", e.loginSeen("reg1", "wrong password"), seen{Status: 401, Code: service.CodeInvalidCredentials, Limit: "100", Remaining: "96", ResetIn: "3"})
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d users after a refused registration, want 2 (%v)", n, err)
	}
}

func TestRateLimitsOfZeroAreOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // newEnv turns every limit off, as "0" does
	for i := range 30 {
		got := e.loginSeen("nobody", "wrong password")
		if got != (seen{Status: 401, Code: service.CodeInvalidCredentials}) {
			t.Fatalf("login %d with every limit off: %+v", i, got)
		}
	}
}

func TestForwardedForIsTrustedOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	oneEach := withLimits(service.RateLimits{IP: ratelimit.Limit{N: 1, Period: time.Hour}})
	login := func(e *env, xff ...string) int {
		t.Helper()
		var headers []string
		for _, v := range xff {
			headers = append(headers, "X-Forwarded-For", v)
		}
		return e.loginSeen("nobody", "wrong password", headers...).Status
	}

	t.Run("without trusted proxies every header is ignored", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, oneEach)
		if got := login(e, "203.0.113.1"); got != 401 {
			t.Fatalf("first login: %d", got)
		}
		// A client cannot escape its limit by claiming another address, in any header.
		for _, headers := range [][]string{
			{"X-Forwarded-For", "203.0.113.2"},
			{"X-Real-IP", "203.0.113.3"},
			{"Forwarded", "for=203.0.113.4"},
			{"CF-Connecting-IP", "203.0.113.5"},
			{"True-Client-IP", "203.0.113.6"},
		} {
			if got := e.loginSeen("nobody", "wrong password", headers...).Status; got != 429 {
				t.Errorf("%s spoofed: %d, want 429", headers[0], got)
			}
		}
	})

	t.Run("behind a trusted proxy the rightmost untrusted address is the client", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, oneEach)
		e.serveWith(httpapi.ServerOptions{ClientIP: clientip.NewResolver([]netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
		})})
		steps := []struct {
			name string
			xff  []string
			want int
		}{
			{"a client behind the proxy", []string{"203.0.113.1"}, 401},
			{"another client behind the proxy has its own count", []string{"203.0.113.2"}, 401},
			{"the first client again is limited", []string{"203.0.113.1"}, 429},
			{"a forged address left of the proxy's is ignored", []string{"198.51.100.9, 203.0.113.1"}, 429},
			{"forged addresses in an earlier header are ignored too", []string{"198.51.100.10", "203.0.113.1"}, 429},
			{"trusted hops are skipped from the right", []string{"203.0.113.1, 10.0.0.7"}, 429},
			{"a new client behind two proxies", []string{"203.0.113.3, 10.0.0.7"}, 401},
			{"a malformed entry stops the walk at the last trusted hop", []string{"not-an-ip"}, 401},
			{"which is then limited as a client of its own", []string{"also-not-an-ip"}, 429},
		}
		for _, s := range steps {
			if got := login(e, s.xff...); got != s.want {
				t.Errorf("%s (X-Forwarded-For %q): %d, want %d", s.name, s.xff, got, s.want)
			}
		}
		// The address recorded is the client's, not the proxy's.
		var ips []string
		rows, err := e.pool.Query(context.Background(), "SELECT DISTINCT ip FROM audit_events WHERE event_type = 'login_failed' ORDER BY ip")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var ip string
			if err := rows.Scan(&ip); err != nil {
				t.Fatal(err)
			}
			ips = append(ips, ip)
		}
		if strings.Join(ips, " ") != "127.0.0.1 203.0.113.1 203.0.113.2 203.0.113.3" {
			t.Errorf("audited client addresses %v", ips)
		}
	})
}

func TestAFailingRedisStoreLetsRequestsThrough(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: every call to the store fails at once.
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	e := newEnv(t, withLimiter(ratelimit.NewRedis(client, "authly-test:")), withLimits(service.RateLimits{
		Login: ratelimit.Limit{N: 1, Period: time.Hour}, IP: ratelimit.Limit{N: 1, Period: time.Hour},
	}))
	for i := range 3 {
		if got := e.loginSeen("nobody", "wrong password"); got != (seen{Status: 401, Code: service.CodeInvalidCredentials}) {
			t.Fatalf("login %d with Redis down: %+v, want 401 without RateLimit headers", i, got)
		}
	}
}
