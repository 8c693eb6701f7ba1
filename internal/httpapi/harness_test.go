package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/testredis"
	"github.com/authly/authly/internal/token"
)

// TestMain gives the tests a PostgreSQL server (testdb) and a Redis server (testredis).
func TestMain(m *testing.M) { os.Exit(testredis.Main(withDatabase{m})) }

// withDatabase runs the tests inside testdb's Main, for testredis.Main.
type withDatabase struct{ m *testing.M }

func (w withDatabase) Run() int { return testdb.Main(w.m) }

var (
	accessKey  = []byte("test-access-secret-0123456789abcdef0123456789")
	refreshKey = []byte("test-refresh-secret-0123456789abcdef012345678")
)

// clock is a settable test clock.
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

// env is one test's Authly: a fresh database, the real handler from NewServer behind
// httptest, and a generated client whose every response is checked against openapi.yaml.
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	svc    *service.Service
	srv    *httptest.Server
	client *api.ClientWithResponses
	clock  *clock
	issuer *token.Issuer
}

// envOption changes one test's token configuration or service dependencies before they
// are built.
type envOption func(*token.Config, *service.Deps)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newInstance(t, testdb.Pool(t), &clock{now: time.Now()}, httpapi.ServerOptions{}, opts...)
}

// newEnvWithServer is newEnv with the HTTP side's options, such as a logger or metrics.
func newEnvWithServer(t *testing.T, serverOpts httpapi.ServerOptions, opts ...envOption) *env {
	t.Helper()
	return newInstance(t, testdb.Pool(t), &clock{now: time.Now()}, serverOpts, opts...)
}

// newInstance builds an Authly on pool and clk: its own service and handler, as one server
// process would hold them.
func newInstance(t *testing.T, pool *pgxpool.Pool, clk *clock, serverOpts httpapi.ServerOptions, opts ...envOption) *env {
	t.Helper()
	tokenConfig := token.Config{
		Algorithm: "HS256", AccessKey: accessKey, RefreshKey: refreshKey, Issuer: "authly-test",
		AccessTTL: 30 * time.Minute, RefreshTTL: 7 * 24 * time.Hour, Now: clk.Now,
	}
	deps := service.Deps{Pool: pool, BcryptCost: bcrypt.MinCost, Clock: clk.Now, Metrics: serverOpts.Metrics}
	for _, opt := range opts {
		opt(&tokenConfig, &deps)
	}
	issuer, err := token.NewIssuer(tokenConfig)
	if err != nil {
		t.Fatal(err)
	}
	deps.Tokens = issuer
	svc, err := service.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewServer(svc, serverOpts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client, err := api.NewClientWithResponses(srv.URL, api.WithHTTPClient(&http.Client{
		Transport: &contractChecker{t: t, next: http.DefaultTransport},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, pool: pool, svc: svc, srv: srv, client: client, clock: clk, issuer: issuer}
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

func contractRouter() (routers.Router, error) {
	specOnce.Do(func() {
		var spec *openapi3.T
		spec, specErr = api.GetSpec()
		if specErr != nil {
			return
		}
		// Route by path only: the test server's address differs from servers[].
		spec.Servers = nil
		specRouter, specErr = legacy.NewRouter(spec)
	})
	return specRouter, specErr
}

// contractChecker validates every response against openapi.yaml: its status must be
// declared for the operation, and its headers and body must match the declared schema.
type contractChecker struct {
	t    *testing.T
	next http.RoundTripper
}

func (c *contractChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := checkContract(req, reqBody, resp, body); err != nil {
		c.t.Errorf("response to %s %s breaks the contract: %v", req.Method, req.URL.Path, err)
	}
	return resp, nil
}

func checkContract(req *http.Request, reqBody []byte, resp *http.Response, body []byte) error {
	router, err := contractRouter()
	if err != nil {
		return err
	}
	probe := req.Clone(context.Background())
	probe.Body = io.NopCloser(bytes.NewReader(reqBody))
	// A path with a trailing slash is served as the path without it (info.description).
	slashed := len(probe.URL.Path) > 1 && strings.HasSuffix(probe.URL.Path, "/")
	if slashed {
		probe.URL.Path = strings.TrimSuffix(probe.URL.Path, "/")
		probe.URL.RawPath = strings.TrimSuffix(probe.URL.RawPath, "/")
	}
	route, params, err := router.FindRoute(probe)
	// The router takes /api/v1/users for /api/v1/users/{user_id} with an empty id, where
	// the server's router, rightly, matches nothing.
	emptyParam := slices.Contains(slices.Collect(maps.Values(params)), "")
	if err != nil || emptyParam || slashed && resp.StatusCode == http.StatusPermanentRedirect {
		return checkUnrouted(resp)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: probe, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	if err := checkHeadersDeclared(resp.Header, route.Operation.Responses.Status(resp.StatusCode).Value.Headers); err != nil {
		return fmt.Errorf("%d: %w", resp.StatusCode, err)
	}
	return checkProblemCode(route.Operation, resp, body)
}

// genericHeaders are the response headers that openapi.yaml need not declare, a short list
// on purpose: HTTP's own framing and representation headers, which every HTTP client
// handles; and the browser protections that every response carries alike, whatever its
// route and status, which docs/security.md lists and which no API client acts on (Cache-
// Control among them: openapi.yaml still declares it where a client must heed it, on the
// answers that carry tokens or user data). CORS headers are generic too: they appear only for
// the allowed origins, and the browser consumes them. Every other header the server sends
// must be declared on the response that sends it.
var genericHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Transfer-Encoding": true, "Date": true, "Connection": true,
	"Vary": true, "Cache-Control": true,
	"X-Content-Type-Options": true, "X-Frame-Options": true, "Content-Security-Policy": true,
	"Strict-Transport-Security": true, "Referrer-Policy": true, "Cross-Origin-Resource-Policy": true,
	"X-Xss-Protection": true,
}

// checkHeadersDeclared requires every header sent, except the generic ones, to be among
// declared (a response's headers in openapi.yaml).
func checkHeadersDeclared(sent http.Header, declared openapi3.Headers) error {
	var undeclared []string
	for name := range sent {
		if genericHeaders[name] || strings.HasPrefix(name, "Access-Control-") {
			continue
		}
		if !slices.ContainsFunc(slices.Collect(maps.Keys(declared)), func(d string) bool { return strings.EqualFold(d, name) }) {
			undeclared = append(undeclared, name)
		}
	}
	if len(undeclared) > 0 {
		slices.Sort(undeclared)
		return fmt.Errorf("headers %v are sent but openapi.yaml does not declare them for this response", undeclared)
	}
	return nil
}

// checkUnrouted holds an answer that no operation of openapi.yaml gives to what
// info.description says of it: a problem document (404, or 405 with Allow), or the 308 of a
// page's path with a trailing slash, with its Location; and X-Request-ID, like every answer.
func checkUnrouted(resp *http.Response) error {
	declared := openapi3.Headers{"X-Request-ID": nil}
	switch resp.StatusCode {
	case http.StatusPermanentRedirect:
		declared["Location"] = nil
	case http.StatusMethodNotAllowed:
		declared["Allow"] = nil
		fallthrough
	default:
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			return fmt.Errorf("unrouted request answered %d with %q", resp.StatusCode, ct)
		}
	}
	return checkHeadersDeclared(resp.Header, declared)
}

// checkProblemCode requires a problem's code to be one that openapi.yaml documents, in an
// example, for this operation and status: the contract lists every code a client can get.
func checkProblemCode(op *openapi3.Operation, resp *http.Response, body []byte) error {
	media := op.Responses.Status(resp.StatusCode).Value.Content.Get("application/problem+json")
	if media == nil || resp.Header.Get("Content-Type") != "application/problem+json" {
		return nil
	}
	var p struct{ Code string }
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	if codes := problemExampleCodes(media); !slices.Contains(codes, p.Code) {
		return fmt.Errorf("%d %s: openapi.yaml documents only %v for this status", resp.StatusCode, p.Code, codes)
	}
	return nil
}

// bearer adds an Authorization header to a generated client call.
func bearer(tok string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

const testPassword = "correct horse battery staple"

// register creates a user through the API and returns it.
func (e *env) register(username string) api.User {
	e.t.Helper()
	resp, err := e.client.CreateUserWithResponse(context.Background(), api.UserCreate{
		Username: username, Email: strings.ToLower(username) + "@example.com", Password: testPassword,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.JSON201 == nil {
		e.t.Fatalf("register %s: status %d: %s", username, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON201
}

// admin bootstraps an admin and returns its access token.
func (e *env) admin() string {
	e.t.Helper()
	if _, err := e.svc.EnsureAdmin(context.Background(), service.NewUser{Username: "root", Email: "root@example.com", Password: testPassword}, service.AdminFromBootstrap); err != nil {
		e.t.Fatal(err)
	}
	return e.login("root", testPassword).AccessToken
}

// verifiedUser registers a user, has the admin verify it, and logs it in.
func (e *env) verifiedUser(username string) (api.User, api.TokenResponse) {
	e.t.Helper()
	u := e.register(username)
	resp, err := e.client.VerifyUserWithResponse(context.Background(), u.Id, bearer(e.admin()))
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("verify %s: %v %d %s", username, err, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200, e.login(username, testPassword)
}

func (e *env) login(username, password string) api.TokenResponse {
	e.t.Helper()
	resp := e.tryLogin(username, password)
	if resp.JSON200 == nil {
		e.t.Fatalf("login %s: status %d: %s", username, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200
}

func (e *env) tryLogin(username, password string) *api.CreateTokenResponse {
	e.t.Helper()
	resp, err := e.client.CreateTokenWithResponse(context.Background(), api.TokenRequest{
		GrantType: api.TokenRequestGrantTypePassword, Username: &username, Password: &password,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// raw sends a hand-made request, for bodies the generated client cannot produce.
func (e *env) raw(method, path, contentType, body string, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Transport: &contractChecker{t: e.t, next: http.DefaultTransport}}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// problemCode extracts the code of a problem document.
func problemCode(t *testing.T, body []byte) string {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("not a problem document: %s", body)
	}
	return string(p.Code)
}
