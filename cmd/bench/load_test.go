package main

import (
	"math"
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
