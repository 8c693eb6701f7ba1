package httpapi_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
)

// send sends req through the contract checker, without following redirects, and returns
// the answer with its body read.
func send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	client := &http.Client{
		Transport:     &contractChecker{t: t, next: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// outcome is a status with its problem code, if any.
func outcome(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		return fmt.Sprintf("%d %s", resp.StatusCode, problemCode(t, body))
	}
	return fmt.Sprint(resp.StatusCode)
}

// sendOutcome sends req and returns its outcome.
func sendOutcome(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, body := send(t, req)
	return outcome(t, resp, body)
}

// TestEveryRouteAnswersAlikeWithATrailingSlash walks the whole route table of openapi.yaml:
// each operation, sent to its path with a trailing slash, must be served by the same route
// with the same answer as without, its body included; a page answers 308 to the path without
// the slash instead, which keeps the method and the body. A method the path does not serve
// answers the same 405 either way.
func TestEveryRouteAnswersAlikeWithATrailingSlash(t *testing.T) {
	t.Parallel()
	logs := &routeLog{}
	e := newEnvWithServer(t, httpapi.ServerOptions{Docs: true, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	f := newRouteFixture(e)
	_, ops := contractOps(t)
	for i, op := range ops {
		t.Run(op.String(), func(t *testing.T) {
			req := f.request(op, e.srv.URL, "")
			plain := sendOutcome(t, req)

			req = f.request(op, e.srv.URL, "/")
			id := fmt.Sprintf("slash-%d", i)
			req.Header.Set("X-Request-ID", id)
			resp, body := send(t, req)
			if op.page() {
				location, err := req.URL.Parse(resp.Header.Get("Location"))
				if resp.StatusCode != http.StatusPermanentRedirect || err != nil || location.Path != strings.TrimSuffix(req.URL.Path, "/") {
					t.Fatalf("a page's path with a slash answered %d, Location %q; want 308 to the path without it",
						resp.StatusCode, resp.Header.Get("Location"))
				}
				req = f.request(op, e.srv.URL, "")
				req.URL = location
				if got := sendOutcome(t, req); got != plain {
					t.Fatalf("following the redirect answered %s, without the slash %s", got, plain)
				}
			} else {
				if got := outcome(t, resp, body); got != plain {
					t.Fatalf("with a trailing slash: %s; without: %s (%s)", got, plain, body)
				}
				if route := logs.routeOf(t, id); route != op.String() {
					t.Fatalf("with a trailing slash it was served by route %q", route)
				}
			}

			if method, served := unservedMethod(op); method != "" {
				want := strings.Join(served, ", ")
				for _, suffix := range []string{"", "/"} {
					req := f.request(op, e.srv.URL, suffix)
					req.Method = method
					resp, body := send(t, req)
					if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != want {
						t.Errorf("%s %s answered %d with Allow %q, want 405 with %q: %s",
							method, req.URL.Path, resp.StatusCode, resp.Header.Get("Allow"), want, body)
					}
				}
			}
		})
	}
	// A path with a slash that is no route without it either is not found, as before.
	for _, path := range []string{"/api/v1/", "/api/v1/users/me/sessions/x/y/", "/docs/redoc.standalone.js/x/"} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, nil)
		if got := sendOutcome(t, req); got != "404 "+service.CodeNotFound {
			t.Errorf("POST %s: %s, want 404", path, got)
		}
	}
}

// TestAllowNamesOnlyTheMethodsThatWork: the 405 of every path of openapi.yaml names exactly
// the methods that serve that path, and each of them answers something other than 405 or
// a malformed path parameter there. /api/v1/users/me is served by GET alone: PUT and DELETE
// would read "me" as a malformed user id.
func TestAllowNamesOnlyTheMethodsThatWork(t *testing.T) {
	t.Parallel()
	e := newEnvWithServer(t, httpapi.ServerOptions{Docs: true})
	f := newRouteFixture(e)
	_, ops := contractOps(t)
	for _, op := range ops {
		method, served := unservedMethod(op)
		if method == "" {
			continue
		}
		req := f.request(op, e.srv.URL, "")
		req.Method = method
		resp, body := send(t, req)
		if resp.StatusCode != http.StatusMethodNotAllowed || problemCode(t, body) != service.CodeMethodNotAllowed {
			t.Fatalf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, body)
		}
		allow := strings.Split(resp.Header.Get("Allow"), ", ")
		if want := strings.Join(served, ", "); resp.Header.Get("Allow") != want {
			t.Errorf("%s %s: Allow %q, want %q", method, req.URL.Path, resp.Header.Get("Allow"), want)
		}
		for _, m := range allow {
			i := slices.IndexFunc(ops, func(o contractOp) bool { return o.Method == m && o.Path == op.Path })
			if i < 0 {
				t.Errorf("%s %s: Allow names %s, which openapi.yaml does not give this path", method, req.URL.Path, m)
				continue
			}
			req := f.request(ops[i], e.srv.URL, "")
			resp, body := send(t, req)
			malformed := resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), `"message":"is malformed"`)
			if resp.StatusCode == http.StatusMethodNotAllowed || malformed {
				t.Errorf("%s %s, which Allow names, answered %d: %s", m, req.URL.Path, resp.StatusCode, body)
			}
		}
	}
	resp, _ := e.raw(http.MethodPost, "/api/v1/users/me", "application/json", "{}")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST /api/v1/users/me: %d, Allow %q; want 405 with Allow GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestAChallengeWithoutCredentialsCarriesNoErrorCode: a bearer route called with no bearer
// token, whether with nothing or with another scheme, answers a plain Bearer challenge, and
// one called with a bad token adds error="invalid_token" (RFC 6750 §3.1), on every bearer
// route of openapi.yaml.
func TestAChallengeWithoutCredentialsCarriesNoErrorCode(t *testing.T) {
	t.Parallel()
	e := newEnvWithServer(t, httpapi.ServerOptions{Docs: true})
	f := newRouteFixture(e)
	spec, ops := contractOps(t)
	cases := []struct {
		name, authorization, want string
	}{
		{"no credentials", "", `Bearer realm="authly"`},
		{"another scheme", "Basic YWxpY2U6c2VjcmV0", `Bearer realm="authly"`},
		{"an empty bearer token", "Bearer ", `Bearer realm="authly"`},
		{"a bad bearer token", "Bearer not.a.token", `Bearer realm="authly", error="invalid_token"`},
	}
	for _, op := range ops {
		if !op.secured(spec) {
			continue
		}
		for _, tc := range cases {
			req := f.request(op, e.srv.URL, "")
			req.Header.Del("Authorization")
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			resp, body := send(t, req)
			if resp.StatusCode != http.StatusUnauthorized || problemCode(t, body) != service.CodeInvalidToken {
				t.Fatalf("%s with %s: %d %s", op, tc.name, resp.StatusCode, body)
			}
			if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("%s with %s: WWW-Authenticate %q, want %q", op, tc.name, got, tc.want)
			}
		}
	}
}

// TestEveryHeaderSentIsDeclared walks the whole route table of openapi.yaml and checks the
// headers of real answers against it: the contract checker behind send fails the test on
// any header that is neither generic (genericHeaders) nor declared for the operation and
// status that sent it. Each operation is called as the fixture calls it (mostly a success),
// without credentials when it takes a bearer token, with a body of the wrong type when it
// takes one, and over its rate limit when it counts against one; the rate limits are on, so
// that their RateLimit-* headers are sent wherever they can be.
func TestEveryHeaderSentIsDeclared(t *testing.T) {
	t.Parallel()
	generous := ratelimit.Limit{N: 1000, Period: time.Hour}
	e := newEnvWithServer(t, httpapi.ServerOptions{Docs: true},
		withLimits(service.RateLimits{Login: generous, IP: generous, Register: generous}))
	f := newRouteFixture(e)
	spec, ops := contractOps(t)
	sawQuota := false
	for _, op := range ops {
		resp, _ := send(t, f.request(op, e.srv.URL, ""))
		if resp.Header.Get("X-Request-ID") == "" {
			t.Errorf("%s answered %d without X-Request-ID", op, resp.StatusCode)
		}
		sawQuota = sawQuota || strings.EqualFold(op.Op.OperationID, "createToken") && resp.StatusCode == http.StatusOK && resp.Header.Get("RateLimit-Remaining") != ""
		if op.secured(spec) {
			req := f.request(op, e.srv.URL, "")
			req.Header.Del("Authorization")
			if resp, body := send(t, req); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s without credentials: %d %s", op, resp.StatusCode, body)
			}
		}
		if op.Op.RequestBody != nil {
			req := f.request(op, e.srv.URL, "")
			req.Header.Set("Content-Type", "text/plain")
			if resp, body := send(t, req); resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Errorf("%s with a text/plain body: %d %s", op, resp.StatusCode, body)
			}
		}
	}
	if !sawQuota {
		t.Error("no successful login carried the RateLimit-* headers, so they were not checked")
	}

	// Over the per-IP limit: every operation that counts against it answers 429.
	tight := newEnvWithServer(t, httpapi.ServerOptions{},
		withLimits(service.RateLimits{IP: ratelimit.Limit{N: 1, Period: time.Hour}}))
	tf := newRouteFixture(tight)
	limited := 0
	for _, op := range ops {
		for i := range 2 {
			resp, body := send(t, tf.request(op, tight.srv.URL, ""))
			if i == 1 && resp.StatusCode == http.StatusTooManyRequests {
				limited++
				if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Limit") != "1" {
					t.Errorf("%s over its limit: %v %s", op, resp.Header, body)
				}
			}
		}
	}
	if limited < 4 {
		t.Errorf("%d operations answered 429 over the per-IP limit, want the four that count against it", limited)
	}
}
