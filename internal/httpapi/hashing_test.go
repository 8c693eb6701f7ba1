package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/service"
)

// TestAFullHashQueueAnswers503AtOnce fills a bcrypt pool of one worker and one queue slot with
// logins, then checks that the next login is refused with 503 server_busy at once rather than
// queued, that its attempt is not counted against the login, and that health checks and bearer
// requests, which need no bcrypt, stay fast meanwhile. "Fast" is relative to one bcrypt
// comparison at the pool's cost, measured here, not a fixed time. Like the other latency tests
// it runs alone, not in parallel with the rest.
func TestAFullHashQueueAnswers503AtOnce(t *testing.T) {
	pool, err := hashpool.New(hashpool.Options{Workers: 1, Queue: 1, MaxWait: time.Minute, Cost: 10})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withHasher(pool), withLockout(service.LockoutPolicy{Threshold: 5}))
	admin := e.seedAdmin()
	ctx := context.Background()

	hash, err := pool.Hash(ctx, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := pool.Compare(ctx, hash, []byte("wrong password")); err != nil {
		t.Fatal(err)
	}
	bcryptTime := time.Since(start)

	// whileFull runs measure while two logins hold the worker and the queue slot, and runs it
	// again if the pool drained before measure was done, as it may on a slow machine.
	round := 0
	whileFull := func(measure func()) {
		t.Helper()
		for ; round < 20; round++ {
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					name := "flood-" + strconv.Itoa(round) + "-" + strconv.Itoa(i)
					if status, _ := e.timedLogin(name, "wrong password"); status != http.StatusUnauthorized {
						t.Errorf("a login that got a worker: %d", status)
					}
				})
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Microsecond) {
				if s := pool.Stats(); s.Busy == 1 && s.Waiting == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the pool never filled: %+v", pool.Stats())
				}
			}
			measure()
			s := pool.Stats()
			wg.Wait()
			if s.Busy == 1 && s.Waiting == 1 {
				return
			}
		}
		t.Fatal("the pool drained before every measurement, 20 times")
	}

	var got seen
	whileFull(func() { got = e.loginSeen("refused", "wrong password") })
	if got.Status != http.StatusServiceUnavailable || got.Code != service.CodeServerBusy {
		t.Fatalf("a login with the queue full: %+v", got)
	}
	if retry, _ := strconv.Atoi(got.RetryAfter); retry < 1 {
		t.Errorf("Retry-After %q", got.RetryAfter)
	}
	// Timed without the contract check, whose first use costs more than what it checks.
	var busy, health, me []time.Duration
	whileFull(func() {
		busy, health, me = nil, nil, nil
		for i := range 5 {
			status, elapsed := e.timedLogin("refused-"+strconv.Itoa(i), "wrong password")
			if status != http.StatusServiceUnavailable {
				t.Errorf("login %d with the queue full: %d", i, status)
			}
			busy = append(busy, elapsed)
			health = append(health, e.timedGet("/health", ""))
			me = append(me, e.timedGet("/api/v1/users/me", admin))
		}
	})
	for _, m := range []struct {
		what  string
		times []time.Duration
	}{{"503 server_busy", busy}, {"GET /health", health}, {"GET /api/v1/users/me", me}} {
		if median := medianOf(m.times); median > bcryptTime/2 {
			t.Errorf("%s took %v (median) with the pool full, one bcrypt comparison %v", m.what, median, bcryptTime)
		} else {
			t.Logf("with the pool full, %s took %v (median of 5); one bcrypt comparison at cost 10 %v", m.what, median, bcryptTime)
		}
	}

	var counted int
	if err := e.pool.QueryRow(ctx, "SELECT coalesce(sum(failed_attempts), 0) FROM login_failures WHERE login_name LIKE 'refused%'").Scan(&counted); err != nil || counted != 0 {
		t.Errorf("refused attempts still count against their logins: %d %v", counted, err)
	}
	if n := e.auditCount(service.AuditServerBusy); n != 1 {
		t.Errorf("%d server_busy audit events, want 1", n)
	}
}

// TestAFloodOfLoginsLeavesOtherRoutesFast sends many logins at once to a small pool: those
// beyond what it can hold are refused with 503 at once, and health checks and bearer
// requests made during the flood stay fast.
func TestAFloodOfLoginsLeavesOtherRoutesFast(t *testing.T) {
	pool, err := hashpool.New(hashpool.Options{Workers: 1, Queue: 2, MaxWait: time.Minute, Cost: 10})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withHasher(pool))
	admin := e.seedAdmin()
	ctx := context.Background()
	start := time.Now()
	if _, err := pool.Hash(ctx, []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	bcryptTime := time.Since(start)

	const flood = 24
	type outcome struct {
		status  int
		elapsed time.Duration
	}
	outcomes := make(chan outcome, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			status, elapsed := e.timedLogin("flood-"+strconv.Itoa(i), "wrong password")
			outcomes <- outcome{status, elapsed}
		})
	}
	for deadline := time.Now().Add(30 * time.Second); pool.Stats().Busy == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the flood never reached the pool")
		}
	}
	var others []time.Duration
	for range 5 {
		others = append(others, e.timedGet("/health", ""), e.timedGet("/api/v1/users/me", admin))
	}
	wg.Wait()
	close(outcomes)
	var refused []time.Duration
	for o := range outcomes {
		switch o.status {
		case http.StatusServiceUnavailable:
			refused = append(refused, o.elapsed)
		case http.StatusUnauthorized:
		default:
			t.Errorf("a login during the flood answered %d", o.status)
		}
	}
	if len(refused) == 0 {
		t.Fatal("no login was refused")
	}
	slices.Sort(others)
	if median := medianOf(refused); median > bcryptTime/2 {
		t.Errorf("the median 503 took %v, one bcrypt hash %v", median, bcryptTime)
	}
	if median := medianOf(others); median > bcryptTime/2 {
		t.Errorf("health and bearer requests took %v (median) during the flood, one bcrypt hash %v", median, bcryptTime)
	}
	if slowest := others[len(others)-1]; slowest > bcryptTime {
		t.Errorf("the slowest health or bearer request took %v during the flood, longer than one bcrypt hash (%v)", slowest, bcryptTime)
	}
	t.Logf("flood of %d logins on 1 worker + 2 queued: %d refused, median 503 in %v; health/bearer median %v, slowest %v; one bcrypt hash %v",
		flood, len(refused), medianOf(refused), medianOf(others), others[len(others)-1], bcryptTime)
}

// TestUnknownNamesCostWhatWrongPasswordsCost compares the median time of logins for a name
// with no account and for a real account with a wrong password, at a realistic bcrypt cost.
// They must be within 25% of each other, or timing would tell which names exist. The samples
// alternate, so that load on the machine falls on both alike, and the test runs alone, not in
// parallel. On a loaded machine a burst of noise can still skew one set of 15 samples, so a
// measurement over 25% is taken again, up to three times in all: a real difference, such as
// an unknown name skipping bcrypt, fails every time.
func TestUnknownNamesCostWhatWrongPasswordsCost(t *testing.T) {
	const samples, attempts = 15, 3
	e := newEnv(t, withBcryptCost(8), withLockout(service.LockoutPolicy{Threshold: 1000}))
	e.seedUser("known")
	// Timed over HTTP, as an attacker would time it.
	timeLogin := func(name string) time.Duration {
		status, elapsed := e.timedLogin(name, "wrong password")
		if status != http.StatusUnauthorized {
			t.Fatalf("login %s: %d", name, status)
		}
		return elapsed
	}
	timeLogin("known") // warm both paths up
	timeLogin("unknown")
	for attempt := 1; ; attempt++ {
		var known, unknown []time.Duration
		for i := range samples {
			if i%2 == 0 {
				known = append(known, timeLogin("known"))
				unknown = append(unknown, timeLogin("unknown"))
			} else {
				unknown = append(unknown, timeLogin("unknown"))
				known = append(known, timeLogin("known"))
			}
		}
		k, u := medianOf(known), medianOf(unknown)
		ratio := float64(max(k, u)) / float64(min(k, u))
		t.Logf("median login at bcrypt cost 8, measurement %d: wrong password %v, unknown name %v (ratio %.3f)", attempt, k, u, ratio)
		if ratio <= 1.25 {
			return
		}
		if attempt == attempts {
			t.Fatalf("the medians differ by more than 25%% in %d measurements out of %d", attempts, attempts)
		}
	}
}

func medianOf(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

// timedLogin sends a JSON password login without the contract check and times it.
func (e *env) timedLogin(username, password string) (int, time.Duration) {
	e.t.Helper()
	body := `{"grant_type":"password","username":` + jsonString(username) + `,"password":` + jsonString(password) + `}`
	start := time.Now()
	resp, err := http.Post(e.srv.URL+"/api/v1/auth/token", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Error(err)
		return 0, 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// timedGet sends a GET, with a bearer token when one is given, and fails the test unless it
// answers 200.
func (e *env) timedGet(path, accessToken string) time.Duration {
	e.t.Helper()
	start := time.Now()
	resp := e.plain("GET", path, "Authorization", "Bearer "+accessToken)
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		e.t.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	return elapsed
}

// A login the bcrypt pool sheds is logged as a warning, in the aggregate line of refusals:
// under a flood, each one is the server protecting itself, and error lines are kept for
// faults.
func TestAShedLoginIsLoggedAsAWarning(t *testing.T) {
	t.Parallel()
	pool, err := hashpool.New(hashpool.Options{Workers: 1, Queue: 0, Cost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	sink := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := newEnvWithServer(t, httpapi.ServerOptions{Logger: logger}, withHasher(pool))
	// The one place in the pool is taken, so the login is refused at once.
	r, err := pool.Reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Cancel()
	if got := e.loginSeen("anyone", "wrong password"); got.Status != http.StatusServiceUnavailable || got.Code != service.CodeServerBusy {
		t.Fatalf("a login with the pool full: %+v", got)
	}
	var shed int
	for _, line := range sink.lines(t) {
		if line["level"] == "ERROR" {
			t.Errorf("an error line for a shed login: %v", line)
		}
		if line["msg"] == "requests refused" && line["code"] == service.CodeServerBusy && line["level"] == "WARN" && line["count"] == float64(1) {
			shed++
		}
	}
	if shed != 1 {
		t.Errorf("%d warnings for the shed login, want 1", shed)
	}
}
