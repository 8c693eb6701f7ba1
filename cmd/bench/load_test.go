package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecorderCountsEachRequestByItsShareOfTheWindow(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := newRecorder(at(10), at(20))
	r.addEnded("login", at(9), at(11), 200, nil)  // half inside, started in the warm-up
	r.addEnded("login", at(12), at(13), 200, nil) // inside
	r.addEnded("login", at(19), at(23), 503, nil) // a quarter inside, not 2xx
	r.addEnded("login", at(5), at(9), 200, nil)   // before the window
	s := r.ops["login"]
	if math.Abs(s.done-1.75) > 1e-9 || math.Abs(s.okDone-1.5) > 1e-9 {
		t.Fatalf("done %v, ok %v; want 1.75 and 1.5", s.done, s.okDone)
	}
	// Latency and statuses are those of the requests that started inside the window.
	if s.ok.n != 1 || s.rejected.n != 1 || s.statuses[200] != 1 || s.statuses[503] != 1 {
		t.Fatalf("ok %d, rejected %d, statuses %v", s.ok.n, s.rejected.n, s.statuses)
	}
}

func TestBackOff(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Minute)
	tests := []struct {
		name       string
		status     int
		retryAfter time.Duration
		windowEnd  time.Time
		want       time.Duration
	}{
		{"a 503 with a Retry-After waits that long", http.StatusServiceUnavailable, 2 * time.Second, later, 2 * time.Second},
		{"a 429 with a Retry-After waits that long", http.StatusTooManyRequests, time.Second, later, time.Second},
		{"a 503 without a Retry-After does not wait", http.StatusServiceUnavailable, 0, later, 0},
		{"a success does not wait, whatever it carries", http.StatusOK, 2 * time.Second, later, 0},
		{"another refusal does not wait", http.StatusUnauthorized, 2 * time.Second, later, 0},
		{"a long Retry-After is capped", http.StatusServiceUnavailable, time.Hour, later, maxBackOff},
		{"the wait ends with the window", http.StatusServiceUnavailable, 3 * time.Second, now.Add(time.Second), time.Second},
		{"after the window there is no wait", http.StatusServiceUnavailable, 3 * time.Second, now.Add(-time.Second), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backOff(tt.status, tt.retryAfter, now, tt.windowEnd); got != tt.want {
				t.Errorf("backOff(%d, %s) = %s, want %s", tt.status, tt.retryAfter, got, tt.want)
			}
		})
	}
}

func TestCallReadsRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("retry_after"); v != "" {
			w.Header().Set("Retry-After", v)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := (&target{addr: strings.TrimPrefix(srv.URL, "http://"), timeout: 10 * time.Second}).conn()
	defer c.close()

	// One kept-alive connection in sequence: each answer replaces the last one's value.
	tests := []struct {
		name       string
		path       string
		wantStatus int
		want       time.Duration
	}{
		{"seconds are read", "/?retry_after=3", http.StatusServiceUnavailable, 3 * time.Second},
		{"an answer without one clears the last one", "/", http.StatusOK, 0},
		{"a date is not read", "/?retry_after=Wed,+21+Oct+2015+07:28:00+GMT", http.StatusServiceUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, err := c.call(http.MethodGet, tt.path, "", "", nil, false)
			if err != nil || status != tt.wantStatus {
				t.Fatalf("call = %d, %v; want %d", status, err, tt.wantStatus)
			}
			if c.retryAfter != tt.want {
				t.Errorf("retryAfter = %s, want %s", c.retryAfter, tt.want)
			}
		})
	}
}

func TestFloodingWorkersDoNotWait(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Minute)
	if got := retryWait(true, http.StatusServiceUnavailable, 2*time.Second, now, later); got != 2*time.Second {
		t.Errorf("a worker that honours Retry-After waits %v after a 503 asking 2s", got)
	}
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		if got := retryWait(false, status, 2*time.Second, now, later); got != 0 {
			t.Errorf("a flooding worker waits %v after a %d", got, status)
		}
	}
	for _, name := range []string{"login-flood", "register-flood"} {
		if sc, ok := scenarioByName(name); !ok || !sc.flood || !sc.bcryptBound {
			t.Errorf("scenario %s: %+v", name, sc)
		}
	}
}

func TestTheServerLogIsCountedBetweenTheWindowsEdges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	before := "warm-up line\n"
	inside := `{"level":"WARN","msg":"requests refused"}` + "\n" + `{"level":"WARN","msg":"requests refused"}` + "\n"
	if err := os.WriteFile(path, []byte(before+inside+"after the window\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var r result
	r.countServerLog(path, int64(len(before)), int64(len(before+inside)), 2*time.Second)
	if r.ServerLogLinesPerSecond == nil || *r.ServerLogLinesPerSecond != 1 || *r.ServerLogBytesPerSecond != float64(len(inside))/2 {
		t.Fatalf("lines/s %v, bytes/s %v; want 1 and %v", r.ServerLogLinesPerSecond, r.ServerLogBytesPerSecond, float64(len(inside))/2)
	}
}
