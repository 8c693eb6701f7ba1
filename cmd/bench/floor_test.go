package main

import (
	"runtime"
	"testing"
	"time"
)

func TestTheFloorPoolsTheSamplesAroundARun(t *testing.T) {
	before := floorSample{hashes: []time.Duration{70 * time.Millisecond, 71 * time.Millisecond, 90 * time.Millisecond}, parallel: 27, elapsed: time.Second}
	after := floorSample{hashes: []time.Duration{72 * time.Millisecond, 73 * time.Millisecond}, parallel: 29, elapsed: time.Second}
	f := floorOf(10, before, after)
	if f.Samples != 5 || f.HashMillis != 72 {
		t.Errorf("samples %d, median %.1f ms; want 5 and the median of both, 72 ms", f.Samples, f.HashMillis)
	}
	if want := round1(float64(runtime.NumCPU()) / 0.072); f.CeilingPerSecond != want {
		t.Errorf("ceiling %.1f/s, want %.1f/s (CPUs ÷ the median)", f.CeilingPerSecond, want)
	}
	if f.ParallelPerSecond != 28 {
		t.Errorf("flat out %.1f/s, want 28/s over both samples", f.ParallelPerSecond)
	}
	if empty := floorOf(10); empty.CeilingPerSecond != 0 {
		t.Errorf("no samples gave a ceiling of %.1f/s", empty.CeilingPerSecond)
	}
}
