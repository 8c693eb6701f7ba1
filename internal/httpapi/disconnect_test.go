package httpapi_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

// TestAClientThatGoesAwayIsNotAServerError: a login whose client disconnects while its
// statement waits for a row lock fails with the cancelled statement. That is the client's
// doing: the request is logged and counted as 499 client_closed_request, never as a 5xx,
// and nothing is logged at error level.
func TestAClientThatGoesAwayIsNotAServerError(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New()
	e := newEnvWithServer(t, httpapi.ServerOptions{Logger: log, Metrics: m},
		withLockout(service.LockoutPolicy{Threshold: 5}),
		func(_ *token.Config, d *service.Deps) { d.Logger = log })
	e.seedUser("walt")
	ctx := context.Background()

	// Hold walt's row, so that the login's attempt count waits for it.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // released below, or by the test's end
	if _, err := tx.Exec(ctx, "SELECT 1 FROM users WHERE username = 'walt' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	reqCtx, hangUp := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, e.srv.URL+"/api/v1/auth/token",
		strings.NewReader(`{"grant_type":"password","username":"walt","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", "gone-away")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the login to wait for walt's row", func() bool {
		var waiting int
		err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting == 1
	})
	hangUp()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the client's request ended with %v", err)
	}
	var line map[string]any
	waitFor(t, "the request's log line", func() bool {
		for _, l := range logs.lines(t) {
			if l["msg"] == "request" && l["request_id"] == "gone-away" {
				line = l
				return true
			}
		}
		return false
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	if line["status"] != float64(499) {
		t.Errorf("the request was logged with status %v, want 499", line["status"])
	}
	sawOutcome := false
	for _, l := range logs.lines(t) {
		if l["level"] == "ERROR" || l["level"] == "WARN" {
			t.Errorf("a client that went away was logged at %s: %v", l["level"], l)
		}
		sawOutcome = sawOutcome || l["request_id"] == "gone-away" && l["outcome"] == "client_closed_request"
	}
	if !sawOutcome {
		t.Errorf("no line gives the outcome client_closed_request: %s", logs.buf.String())
	}
	const want = `
# HELP authly_http_requests_total HTTP requests by route template, method and status.
# TYPE authly_http_requests_total counter
authly_http_requests_total{method="POST",route="POST /api/v1/auth/token",status="499"} 1
# HELP authly_logins_total Password logins by outcome.
# TYPE authly_logins_total counter
authly_logins_total{outcome="client_closed_request"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "authly_http_requests_total", "authly_logins_total"); err != nil {
		t.Error(err)
	}
}

// waitFor polls cond until it holds, and fails the test when it does not within a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
