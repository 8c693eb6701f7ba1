package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authly/authly/internal/metrics"
)

// logLines decodes the JSON lines written to buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRefusalsAreLoggedInAggregate(t *testing.T) {
	var buf bytes.Buffer
	rf := newRefusals(slog.New(slog.NewJSONHandler(&buf, nil)), nil, time.Minute, RefusalHold{})
	// The lines due after the interval are run by hand.
	var due []func()
	rf.afterFunc = func(d time.Duration, f func()) {
		if d != time.Minute {
			t.Errorf("a line scheduled after %v, want the interval", d)
		}
		due = append(due, f)
	}
	runDue := func() {
		fs := due
		due = nil
		for _, f := range fs {
			f()
		}
	}
	type line struct {
		level, code string
		count       float64
	}
	seen := func() []line {
		var out []line
		for _, l := range logLines(t, &buf) {
			if l["msg"] != "requests refused" {
				t.Fatalf("an unexpected line: %v", l)
			}
			out = append(out, line{l["level"].(string), l["code"].(string), l["count"].(float64)})
		}
		buf.Reset()
		return out
	}
	expect := func(step string, want ...line) {
		t.Helper()
		got := seen()
		if len(got) != len(want) {
			t.Fatalf("%s: lines %v, want %v", step, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: lines %v, want %v", step, got, want)
			}
		}
	}
	ctx := context.Background()

	rf.refuse(ctx, refusedBusy, time.Second)
	expect("the first refusal is logged at once", line{"WARN", "server_busy", 1})
	for range 999 {
		rf.refuse(ctx, refusedBusy, time.Second)
	}
	expect("the next ones within the interval are not")
	rf.refuse(ctx, refusedRateLimited, time.Second)
	rf.refuse(ctx, refusedLocked, time.Second)
	expect("each kind has its own line, a 429 at info level",
		line{"INFO", "rate_limited", 1}, line{"INFO", "account_locked", 1})
	if len(due) != 3 {
		t.Fatalf("%d lines due, want one per kind", len(due))
	}

	runDue()
	expect("after the interval, one line with the count of the rest", line{"WARN", "server_busy", 999})
	if len(due) != 1 {
		t.Fatalf("%d lines due after the interval, want the busy one only, whose refusals went on", len(due))
	}
	runDue()
	expect("a quiet interval writes nothing")
	if len(due) != 0 {
		t.Fatalf("%d lines due after a quiet interval, want none", len(due))
	}
	rf.refuse(ctx, refusedBusy, time.Second)
	expect("after a quiet spell, the first refusal is logged at once again", line{"WARN", "server_busy", 1})
}

func TestARefusalIsHeldBrieflyAndBoundedly(t *testing.T) {
	m := metrics.New()
	rf := newRefusals(slog.New(slog.DiscardHandler), m, time.Minute, RefusalHold{Max: time.Second, Concurrent: 2})
	rf.afterFunc = func(time.Duration, func()) {}
	var (
		mu    sync.Mutex
		held  []time.Duration
		block chan struct{} // when set, a hold waits for it
	)
	rf.sleep = func(_ context.Context, d time.Duration) {
		mu.Lock()
		held = append(held, d)
		b := block
		mu.Unlock()
		if b != nil {
			<-b
		}
	}
	ctx := context.Background()

	t.Run("a hold is between half and all of the shorter of Retry-After and the longest hold", func(t *testing.T) {
		for _, retryAfter := range []time.Duration{3 * time.Second, time.Second, 400 * time.Millisecond} {
			limit := min(retryAfter, time.Second)
			distinct := map[time.Duration]bool{}
			for range 200 {
				held = nil
				left := rf.refuse(ctx, refusedBusy, retryAfter)
				if len(held) != 1 || held[0] < limit/2 || held[0] > limit {
					t.Fatalf("Retry-After %v: held %v, want between %v and %v", retryAfter, held, limit/2, limit)
				}
				if left != retryAfter-held[0] {
					t.Fatalf("Retry-After %v, held %v: answered with %v left, want the rest", retryAfter, held[0], left)
				}
				distinct[held[0]] = true
			}
			if len(distinct) < 2 {
				t.Errorf("Retry-After %v: every hold was %v; holds must be jittered", retryAfter, held)
			}
		}
	})

	t.Run("no more are held at once than the bound", func(t *testing.T) {
		held, block = nil, make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { rf.refuse(ctx, refusedRateLimited, 2*time.Second) })
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			n := len(held)
			mu.Unlock()
			if n == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first two refusals were not held")
			}
		}
		if got := gaugeValue(t, m, "authly_refusals_held"); got != 2 {
			t.Errorf("authly_refusals_held = %v while two are held", got)
		}
		if left := rf.refuse(ctx, refusedRateLimited, 2*time.Second); left != 2*time.Second {
			t.Errorf("the third refusal was answered with %v left, want all of its Retry-After: it is not held", left)
		}
		close(block)
		wg.Wait()
		block = nil
		if got := gaugeValue(t, m, "authly_refusals_held"); got != 0 {
			t.Errorf("authly_refusals_held = %v after the holds ended", got)
		}
		const want = `
# HELP authly_refusals_total Requests refused to protect the server or its users (server_busy, rate_limited, account_locked), by code and by whether they were held before their answer.
# TYPE authly_refusals_total counter
authly_refusals_total{code="rate_limited",held="false"} 1
authly_refusals_total{code="rate_limited",held="true"} 2
authly_refusals_total{code="server_busy",held="true"} 600
`
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "authly_refusals_total"); err != nil {
			t.Error(err)
		}
	})

	t.Run("a refusal without Retry-After is not held", func(t *testing.T) {
		held = nil
		rf.refuse(ctx, refusedBusy, 0)
		if len(held) != 0 {
			t.Errorf("held %v", held)
		}
	})
}

func TestAHeldRefusalEndsWithItsRequest(t *testing.T) {
	rf := newRefusals(slog.New(slog.DiscardHandler), nil, time.Minute, RefusalHold{Max: time.Hour, Concurrent: 1})
	rf.afterFunc = func(time.Duration, func()) {}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// With the request gone, the hour-long hold ends at once; were it kept, the test would
	// time out.
	rf.refuse(ctx, refusedBusy, time.Hour)
}

// gaugeValue reads a gauge of m by name.
func gaugeValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
