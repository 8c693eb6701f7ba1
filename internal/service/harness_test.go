package service_test

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

// TestMain gives the tests a PostgreSQL server (testdb).
func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var (
	accessKey  = []byte("test-access-secret-0123456789abcdef0123456789")
	refreshKey = []byte("test-refresh-secret-0123456789abcdef012345678")
)

const testPassword = "correct horse battery staple"

// testClient is where the domain tests' requests come from.
var testClient = service.Client{IP: "192.0.2.10", UserAgent: "domain-test"}

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

// domain is one test's Service on a fresh database, called directly, without HTTP.
type domain struct {
	t     *testing.T
	pool  *pgxpool.Pool
	svc   *service.Service
	clock *clock
}

// option changes one test's service dependencies before the service is built.
type option func(*service.Deps)

func withLockout(p service.LockoutPolicy) option {
	return func(d *service.Deps) { d.Lockout = p }
}

func withMetrics(m *metrics.Metrics) option {
	return func(d *service.Deps) { d.Metrics = m }
}

func withLimits(l service.RateLimits) option {
	return func(d *service.Deps) { d.RateLimits = l }
}

func newDomain(t *testing.T, opts ...option) *domain {
	t.Helper()
	return newDomainOn(t, testdb.Pool(t), opts...)
}

// newDomainOn is newDomain on an existing database, as a second instance or a restart with
// other settings would see it.
func newDomainOn(t *testing.T, pool *pgxpool.Pool, opts ...option) *domain {
	t.Helper()
	clk := &clock{now: time.Now()}
	issuer, err := token.NewIssuer(token.Config{
		Algorithm: "HS256", AccessKey: accessKey, RefreshKey: refreshKey, Issuer: "authly-test",
		AccessTTL: 30 * time.Minute, RefreshTTL: 7 * 24 * time.Hour, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	deps := service.Deps{Pool: pool, Tokens: issuer, BcryptCost: bcrypt.MinCost, Clock: clk.Now}
	for _, opt := range opts {
		opt(&deps)
	}
	svc, err := service.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	return &domain{t: t, pool: pool, svc: svc, clock: clk}
}

// login logs a user in and fails the test when it does not succeed.
func (d *domain) login(username string) service.TokenPair {
	d.t.Helper()
	pair, _, err := d.svc.PasswordLogin(context.Background(), username, testPassword, testClient)
	if err != nil {
		d.t.Fatalf("login %s: %v", username, err)
	}
	return pair
}

// admin bootstraps the admin "root", logs it in, and returns it as a principal.
func (d *domain) admin() service.Principal {
	d.t.Helper()
	ctx := context.Background()
	if _, err := d.svc.EnsureAdmin(ctx, service.NewUser{Username: "root", Email: "root@example.com", Password: testPassword}, service.AdminFromBootstrap); err != nil {
		d.t.Fatal(err)
	}
	p, err := d.svc.Authenticate(ctx, d.login("root").AccessToken)
	if err != nil {
		d.t.Fatal(err)
	}
	return p
}

// verifiedUser registers a user, has the admin verify it, and logs it in.
func (d *domain) verifiedUser(username string) (service.User, service.TokenPair) {
	d.t.Helper()
	ctx := context.Background()
	u, err := d.svc.Register(ctx, service.NewUser{Username: username, Email: strings.ToLower(username) + "@example.com", Password: testPassword}, testClient)
	if err != nil {
		d.t.Fatal(err)
	}
	if u, err = d.svc.VerifyUser(ctx, d.admin(), u.ID, testClient); err != nil {
		d.t.Fatal(err)
	}
	return u, d.login(username)
}

// count runs a counting query.
func (d *domain) count(query string, args ...any) int {
	d.t.Helper()
	var n int
	if err := d.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		d.t.Fatal(err)
	}
	return n
}

// answer is what the transport would make of a call's error: its code and, when it has one,
// the Retry-After it would carry in whole seconds; "ok" for no error.
func answer(err error) string {
	if err == nil {
		return "ok"
	}
	var e *service.Error
	if !errors.As(err, &e) {
		return "not a service error: " + err.Error()
	}
	if e.RetryAfter > 0 {
		return e.Code + " retry " + strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds())))
	}
	return e.Code
}
