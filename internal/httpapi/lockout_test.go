package httpapi_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
)

// A small lockout: locked from the 3rd consecutive failure, for 1 minute, doubling up to 4.
var testLockout = service.LockoutPolicy{Threshold: 3, Duration: time.Minute, MaxDuration: 4 * time.Minute, ResetAfter: time.Hour}

var (
	wrong  = seen{Status: 401, Code: service.CodeInvalidCredentials}
	locked = func(retryAfter string) seen {
		return seen{Status: 429, Code: service.CodeAccountLocked, RetryAfter: retryAfter}
	}
)

func TestLockoutGrowsAndAResetStartsOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout))
	e.seedUser("carol")
	steps := []struct {
		name     string
		advance  time.Duration
		password string
		want     seen
	}{
		{"1st failure", 0, "wrong password", wrong},
		{"2nd failure", 0, "wrong password", wrong},
		{"3rd failure locks for 1m", 0, "wrong password", wrong},
		{"the right password while locked", 0, testPassword, locked("60")},
		{"half way through the lock", 30 * time.Second, testPassword, locked("30")},
		{"4th failure after the lock doubles it", 30 * time.Second, "wrong password", wrong},
		{"locked for 2m", 0, "wrong password", locked("120")},
		{"5th failure after the lock", 2 * time.Minute, "wrong password", wrong},
		{"locked for 4m", 0, testPassword, locked("240")},
		{"6th failure after the lock", 4 * time.Minute, "wrong password", wrong},
		{"the lock stays at its 4m cap", time.Second, testPassword, locked("239")},
		{"the right password once the lock is over", 4 * time.Minute, testPassword, seen{Status: 200}},
		{"a failure after a success counts from 1", 0, "wrong password", wrong},
		{"2nd failure", 0, "wrong password", wrong},
		{"3rd failure locks for 1m again", 0, "wrong password", wrong},
		{"locked for 1m", 0, testPassword, locked("60")},
	}
	for _, s := range steps {
		e.clock.Advance(s.advance)
		if got := e.loginSeen("carol", s.password); got != s.want {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
	if n := e.auditCount(service.AuditAccountLocked); n != 5 {
		t.Errorf("%d account_locked events, want 5", n)
	}
	if n := e.auditCount(service.AuditLoginFailed, "reason", "locked"); n != 6 {
		t.Errorf("%d login_failed events for locked attempts, want 6", n)
	}
}

func TestFailuresLapse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout))
	e.seedUser("dora")
	for range 2 {
		e.loginSeen("dora", "wrong password")
	}
	e.clock.Advance(time.Hour) // ResetAfter
	for i, want := range []seen{wrong, wrong, wrong, locked("60")} {
		if got := e.loginSeen("dora", "wrong password"); got != want {
			t.Fatalf("attempt %d after the failures lapsed: %+v, want %+v", i+1, got, want)
		}
	}
}

func TestAFailedLoginDoesNotChangeUpdatedAt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout))
	e.seedUser("ugo")
	var before, after time.Time
	q := "SELECT updated_at FROM users WHERE username = 'ugo'"
	if err := e.pool.QueryRow(context.Background(), q).Scan(&before); err != nil {
		t.Fatal(err)
	}
	e.loginSeen("ugo", "wrong password")
	if err := e.pool.QueryRow(context.Background(), q).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !after.Equal(before) {
		t.Fatalf("updated_at moved from %v to %v on a failed login", before, after)
	}
}

// TestLockoutDoesNotRevealAccounts hammers a real account and a name with no account the
// same way and compares every answer: status, code, Retry-After and RateLimit headers.
func TestLockoutDoesNotRevealAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout), withLimits(service.RateLimits{Login: ratelimit.Limit{N: 5, Period: time.Minute}}))
	e.seedUser("victim")
	for _, name := range []struct{ real, unknown string }{
		{"victim", "nobody"},
		{"victim@example.com", "nobody@example.com"},
	} {
		var realSeen, unknownSeen []seen
		// Bursts and pauses, so that the sequence passes through 401s, locks that grow,
		// and the login name's rate limit.
		schedule := []time.Duration{0, 0, 0, 0, 30 * time.Second, 31 * time.Second, 0, 0, 0, 0, 0, 0,
			2 * time.Minute, 0, 10 * time.Second, 5 * time.Minute, 0, 0, 0, 0}
		for _, pause := range schedule {
			e.clock.Advance(pause)
			realSeen = append(realSeen, e.loginSeen(name.real, "wrong password"))
			unknownSeen = append(unknownSeen, e.loginSeen(name.unknown, "wrong password"))
		}
		var codes = map[string]int{}
		for i := range realSeen {
			if realSeen[i] != unknownSeen[i] {
				t.Errorf("%s vs %s, attempt %d: %+v vs %+v", name.real, name.unknown, i+1, realSeen[i], unknownSeen[i])
			}
			codes[realSeen[i].Code]++
		}
		// The sequence is worth comparing only if it went through every kind of answer.
		for _, code := range []string{service.CodeInvalidCredentials, service.CodeAccountLocked, service.CodeRateLimited} {
			if codes[code] == 0 {
				t.Errorf("%s: the sequence %+v never answered %s", name.real, realSeen, code)
			}
		}
		e.clock.Advance(time.Hour)
	}
}

// TestConcurrentFailuresCannotRacePastTheThreshold sends many wrong passwords at once: only
// the threshold's worth are checked before the lock, for an account and an unknown name.
func TestConcurrentFailuresCannotRacePastTheThreshold(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout))
	e.seedUser("erin")
	for _, name := range []string{"erin", "no-such-user"} {
		const attempts = 12
		var wg sync.WaitGroup
		results := make(chan int, attempts)
		for range attempts {
			wg.Go(func() {
				resp, err := e.client.CreateTokenWithResponse(context.Background(), passwordGrant(name, "wrong password"))
				if err != nil {
					t.Error(err)
					return
				}
				results <- resp.StatusCode()
			})
		}
		wg.Wait()
		close(results)
		count := map[int]int{}
		for s := range results {
			count[s]++
		}
		if count[401] != testLockout.Threshold || count[429] != attempts-testLockout.Threshold {
			t.Errorf("%s: %v, want %d × 401 and the rest 429", name, count, testLockout.Threshold)
		}
	}
}

func TestLockoutHoldsAcrossRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout))
	e.seedUser("finn")
	for range 3 {
		e.loginSeen("finn", "wrong password")
	}
	// A new instance on the same database, as after a restart.
	restarted := e.sibling(withLockout(testLockout))
	if got := restarted.loginSeen("finn", testPassword); got != locked("60") {
		t.Fatalf("after a restart: %+v", got)
	}
}

func TestAdminsUnlockAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout))
	admin := e.seedAdmin()
	e.seedUser("gina")
	_, user := e.verifiedUser("hank")
	var gina uuid.UUID
	if err := e.pool.QueryRow(context.Background(), "SELECT id FROM users WHERE username = 'gina'").Scan(&gina); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.loginSeen("gina", "wrong password")
	}
	if got := e.loginSeen("gina", testPassword); got.Code != service.CodeAccountLocked {
		t.Fatalf("gina is not locked: %+v", got)
	}

	t.Run("a user may not unlock", func(t *testing.T) {
		resp, err := e.client.UnlockUserWithResponse(context.Background(), gina, bearer(user.AccessToken))
		if err != nil || resp.StatusCode() != http.StatusForbidden || resp.ApplicationproblemJSON403.Code != service.CodeForbidden {
			t.Fatalf("unlock by a user: %v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})
	t.Run("an unknown or malformed id is refused", func(t *testing.T) {
		resp, err := e.client.UnlockUserWithResponse(context.Background(), uuid.New(), bearer(admin))
		if err != nil || resp.StatusCode() != http.StatusNotFound {
			t.Fatalf("unlock of an unknown id: %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		raw, body := e.raw("POST", "/api/v1/users/not-a-uuid/unlock", "", "", "Authorization", "Bearer "+admin)
		if raw.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
			t.Fatalf("unlock of a malformed id: %d %s", raw.StatusCode, body)
		}
	})
	t.Run("an admin unlocks, and the right password works at once", func(t *testing.T) {
		resp, err := e.client.UnlockUserWithResponse(context.Background(), gina, bearer(admin))
		if err != nil || resp.JSON200 == nil || resp.JSON200.Id != gina {
			t.Fatalf("unlock: %v %d %s", err, resp.StatusCode(), resp.Body)
		}
		if got := e.loginSeen("gina", testPassword); got.Status != 200 {
			t.Fatalf("login after the unlock: %+v", got)
		}
		if n := e.auditCount(service.AuditAccountUnlocked, "was_locked", "true"); n != 1 {
			t.Fatalf("%d account_unlocked events", n)
		}
	})
	t.Run("unlocking an account that is not locked succeeds", func(t *testing.T) {
		resp, err := e.client.UnlockUserWithResponse(context.Background(), gina, bearer(admin))
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("second unlock: %v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})
}

// The attempt is counted in a statement that commits without waiting for the disk. That
// relaxation belongs to that one transaction: the connection's next transactions, such as the
// session a right password opens, commit durably again.
func TestOnlyTheAttemptCountCommitsWithoutWaitingForTheDisk(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every statement below runs on the one connection the login used
	// The test cluster itself does not wait for the disk; this connection does, as in production.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := newInstance(t, pool, &clock{now: time.Now()}, httpapi.ServerOptions{}, withLockout(testLockout))
	e.seedUser("dave")
	for _, password := range []string{"wrong password", testPassword} {
		e.loginSeen("dave", password)
		var setting string
		if err := pool.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if setting != "on" {
			t.Fatalf("after a login, the connection's synchronous_commit is %q, want on", setting)
		}
	}
}
