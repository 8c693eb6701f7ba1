package service_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/service"
)

func TestCleanupDeletesExpiredTokensAndSessions(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	ctx := context.Background()
	_, first := d.verifiedUser("cleo") // the admin's login is a session too
	d.login("cleo")
	if _, err := d.svc.Refresh(ctx, first.RefreshToken, testClient); err != nil { // leaves a rotated-away pair behind
		t.Fatal(err)
	}

	if res, err := d.svc.Cleanup(ctx); err != nil || res != (service.CleanupResult{}) {
		t.Fatalf("cleanup with nothing expired: %+v %v", res, err)
	}

	// Half an hour on, the four access tokens have expired: the admin's, two of cleo's,
	// and the one rotated away beside her first refresh token.
	d.clock.Advance(30*time.Minute + time.Second)
	res, err := d.svc.Cleanup(ctx)
	if err != nil || res != (service.CleanupResult{Tokens: 4}) {
		t.Fatalf("cleanup after 30 minutes: %+v %v", res, err)
	}

	// A week on, every refresh token and so every session has expired, the revoked one
	// included, and so has the verification link registration sent cleo (an admin verified
	// her instead); a session opened now is kept.
	d.clock.Advance(7 * 24 * time.Hour)
	fresh := d.login("cleo")
	res, err = d.svc.Cleanup(ctx)
	if err != nil || res != (service.CleanupResult{Tokens: 4, Sessions: 3, AccountTokens: 1}) {
		t.Fatalf("cleanup after a week: %+v %v", res, err)
	}
	if n := d.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions left, want the fresh one", n)
	}
	if _, err := d.svc.Authenticate(ctx, fresh.AccessToken); err != nil {
		t.Fatalf("the fresh session after cleanup: %v", err)
	}
	if res, err := d.svc.Cleanup(ctx); err != nil || res != (service.CleanupResult{}) {
		t.Fatalf("a second cleanup: %+v %v", res, err)
	}
}

func TestCleanupWorksInBatchesFromSeveralInstances(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	ctx := context.Background()
	u, _ := d.verifiedUser("bert")
	const expiredSessions, tokensEach = 1200, 4
	_, err := d.pool.Exec(ctx, `
		WITH s AS (
			INSERT INTO sessions (user_id, created_at, last_used_at, expires_at, absolute_expires_at)
			SELECT $1, $2::timestamptz - interval '8 days', $2::timestamptz - interval '8 days',
			       $2::timestamptz - interval '1 day', $2::timestamptz - interval '1 day'
			FROM generate_series(1, $3::int)
			RETURNING id
		)
		INSERT INTO tokens (token_jti, token_type, user_id, session_id, expires_at)
		SELECT gen_random_uuid()::text, 'refresh', $1, s.id, $2::timestamptz - interval '1 day'
		FROM s, generate_series(1, $4::int)`,
		u.ID, d.clock.Now(), expiredSessions, tokensEach)
	if err != nil {
		t.Fatal(err)
	}

	// Four instances clean at once; together they delete every expired row exactly once.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total service.CleanupResult
	)
	for range 4 {
		wg.Go(func() {
			res, err := d.svc.Cleanup(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			total.Tokens += res.Tokens
			total.Sessions += res.Sessions
		})
	}
	wg.Wait()
	if total != (service.CleanupResult{Tokens: expiredSessions * tokensEach, Sessions: expiredSessions}) {
		t.Fatalf("the instances deleted %+v in all", total)
	}
	if n := d.count(`SELECT count(*) FROM sessions WHERE user_id = $1`, u.ID); n != 1 {
		t.Fatalf("%d of bert's sessions left, want his live one", n)
	}
}

// A small lockout: locked from the 3rd consecutive failure, for 1 minute, doubling up to 4.
var testLockout = service.LockoutPolicy{Threshold: 3, Duration: time.Minute, MaxDuration: 4 * time.Minute, ResetAfter: time.Hour}

func TestCleanupForgetsLapsedUnknownNames(t *testing.T) {
	t.Parallel()
	d := newDomain(t, withLockout(testLockout))
	ctx := context.Background()
	fail := func(name string) string {
		_, _, err := d.svc.PasswordLogin(ctx, name, "wrong password", testClient)
		return answer(err)
	}
	for range 3 {
		fail("ghost-a")
	}
	d.clock.Advance(30 * time.Minute)
	fail("ghost-b")
	if res, err := d.svc.Cleanup(ctx); err != nil || res.LoginFailures != 0 {
		t.Fatalf("cleanup before anything lapsed: %+v %v", res, err)
	}
	d.clock.Advance(31 * time.Minute) // ghost-a's last failure is now over an hour old
	if res, err := d.svc.Cleanup(ctx); err != nil || res.LoginFailures != 1 {
		t.Fatalf("cleanup after ghost-a lapsed: %+v %v", res, err)
	}
	var left string
	if err := d.pool.QueryRow(ctx, "SELECT string_agg(login_name, ',') FROM login_failures").Scan(&left); err != nil || left != "ghost-b" {
		t.Fatalf("login_failures left: %q %v", left, err)
	}
	// A deleted row answers as a lapsed one did: the count starts at 1.
	wrong, locked := service.CodeInvalidCredentials, service.CodeAccountLocked+" retry 60"
	for i, want := range []string{wrong, wrong, wrong, locked} {
		if got := fail("ghost-a"); got != want {
			t.Fatalf("attempt %d after cleanup: %s, want %s", i+1, got, want)
		}
	}
}

func TestTheCleanupJobCountsEveryTableItDeletesFrom(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	d := newDomain(t, withLockout(testLockout), withMetrics(m))
	ctx := context.Background()
	_, first := d.verifiedUser("cleo")
	if _, err := d.svc.Refresh(ctx, first.RefreshToken, testClient); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.svc.PasswordLogin(ctx, "ghost", "wrong password", testClient); err == nil {
		t.Fatal("a login with no account succeeded")
	}
	// A week and more on, everything above has expired or lapsed: the admin's session and
	// cleo's, with their tokens (cleo's first pair, rotated away, included), and the failed
	// login of the name with no account, and cleo's verification link.
	d.clock.Advance(8 * 24 * time.Hour)

	jobCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.svc.RunCleanup(jobCtx, time.Hour) }()
	defer func() { stop(); <-done }()
	const want = `
# HELP authly_cleanup_deleted_rows_total Rows deleted by the cleanup, by table.
# TYPE authly_cleanup_deleted_rows_total counter
authly_cleanup_deleted_rows_total{table="account_tokens"} 1
authly_cleanup_deleted_rows_total{table="login_failures"} 1
authly_cleanup_deleted_rows_total{table="sessions"} 2
authly_cleanup_deleted_rows_total{table="tokens"} 6
`
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "authly_cleanup_deleted_rows_total"); err == nil {
			return
		}
	}
	t.Fatalf("the cleanup metrics after one pass: %v", err)
}
