package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

// TestAFloodOfRefusalsIsCountedNotLogged: logins and registrations refused by a full bcrypt
// pool, and requests over a rate limit, are each counted in the metrics, held for a moment,
// and logged as one line per kind, never one line each.
func TestAFloodOfRefusalsIsCountedNotLogged(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := metrics.New()
	pool, err := hashpool.New(hashpool.Options{Workers: 1, Queue: 0})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWithServer(t, httpapi.ServerOptions{Logger: log, Metrics: m,
		RefusalHold:        httpapi.RefusalHold{Max: 20 * time.Millisecond, Concurrent: 8},
		RefusalLogInterval: time.Hour},
		withHasher(pool), func(_ *token.Config, d *service.Deps) { d.Logger = log })
	// A place in line that is never given up keeps the pool's one worker spoken for, so
	// every password check and hash is refused.
	held, err := pool.Reserve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Cancel()

	// flood logins, and a registration beside every other one.
	const flood = 40
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			answers := []seen{e.loginSeen("alice", testPassword)}
			if i%2 == 0 {
				resp, body := e.raw(http.MethodPost, "/api/v1/users", "application/json",
					`{"username":"user`+strconv.Itoa(i)+`","email":"u`+strconv.Itoa(i)+`@example.com","password":"`+testPassword+`"}`)
				answers = append(answers, seenOf(t, resp, body))
			}
			for _, got := range answers {
				if got.Status != http.StatusServiceUnavailable || got.Code != service.CodeServerBusy || got.RetryAfter == "" {
					t.Errorf("a request with the pool full: %+v", got)
				}
			}
		})
	}
	wg.Wait()

	lines := logs.lines(t)
	if len(lines) != 1 || lines[0]["msg"] != "requests refused" || lines[0]["code"] != service.CodeServerBusy || lines[0]["level"] != "WARN" {
		t.Fatalf("%d refusals wrote %d log lines, want the one line of the first: %v", flood+flood/2, len(lines), lines)
	}
	total := 0.0
	for _, held := range []string{"true", "false"} {
		total += counterValue(t, m, "authly_refusals_total", "code", service.CodeServerBusy, "held", held)
	}
	if total != flood+flood/2 {
		t.Errorf("authly_refusals_total counts %v server_busy refusals, want %d", total, flood+flood/2)
	}
	if n := testutil.CollectAndCount(m.Registry(), "authly_bcrypt_rejected_total"); n != 1 {
		t.Errorf("authly_bcrypt_rejected_total: %d series", n)
	}
}

func TestRateLimitRefusalsAreLoggedInAggregate(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := metrics.New()
	e := newEnvWithServer(t, httpapi.ServerOptions{Logger: log, Metrics: m, RefusalLogInterval: time.Hour},
		withLimits(service.RateLimits{IP: ratelimit.Limit{N: 1, Period: time.Hour}}))
	for i := range 20 {
		if got := e.loginSeen("alice", "wrong password"); i > 0 && (got.Status != http.StatusTooManyRequests || got.Code != service.CodeRateLimited) {
			t.Fatalf("request %d over the limit: %+v", i, got)
		}
	}
	var refused []map[string]any
	for _, l := range logs.lines(t) {
		if l["msg"] != "request" {
			refused = append(refused, l)
		}
	}
	if len(refused) != 1 || refused[0]["msg"] != "requests refused" || refused[0]["code"] != service.CodeRateLimited || refused[0]["level"] != "INFO" {
		t.Fatalf("19 refusals over the rate limit were logged as %v, want one line", refused)
	}
	if got := counterValue(t, m, "authly_refusals_total", "code", service.CodeRateLimited, "held", "false"); got != 19 {
		t.Errorf("authly_refusals_total counts %v rate-limit refusals, want 19", got)
	}
}

// counterValue reads a counter of m with the given label pairs; zero when it has no such
// series.
func counterValue(t *testing.T, m *metrics.Metrics, name string, labelPairs ...string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if labels[labelPairs[i]] != labelPairs[i+1] {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return 0
}
