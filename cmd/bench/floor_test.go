package main

import (
	"runtime"
	"testing"
	"time"

	"github.com/authly/authly/internal/password"
)

func TestTheFloorPoolsTheSamplesAroundARun(t *testing.T) {
	before := floorSample{hashes: []time.Duration{70 * time.Millisecond, 71 * time.Millisecond, 90 * time.Millisecond}, parallel: 27, elapsed: time.Second}
	after := floorSample{hashes: []time.Duration{72 * time.Millisecond, 73 * time.Millisecond}, parallel: 29, elapsed: time.Second}
	f := floorOf(password.Bcrypt{Cost: 10}, before, after)
	if f.Samples != 5 || f.HashMillis != 72 {
		t.Errorf("samples %d, median %.1f ms; want 5 and the median of both, 72 ms", f.Samples, f.HashMillis)
	}
	if want := round1(float64(runtime.NumCPU()) / 0.072); f.CeilingPerSecond != want {
		t.Errorf("ceiling %.1f/s, want %.1f/s (CPUs ÷ the median)", f.CeilingPerSecond, want)
	}
	if f.ParallelPerSecond != 28 {
		t.Errorf("flat out %.1f/s, want 28/s over both samples", f.ParallelPerSecond)
	}
	if f.Algorithm != "bcrypt" || f.Parameters != "cost 10" || f.BcryptCost != 10 {
		t.Errorf("the floor names %s %s (cost %d), want bcrypt at cost 10", f.Algorithm, f.Parameters, f.BcryptCost)
	}
	if empty := floorOf(password.Bcrypt{Cost: 10}); empty.CeilingPerSecond != 0 {
		t.Errorf("no samples gave a ceiling of %.1f/s", empty.CeilingPerSecond)
	}
}

func TestTheFloorHashesAsTheServerDoes(t *testing.T) {
	h, err := floorHasher("argon2id", 10)
	if err != nil {
		t.Fatal(err)
	}
	if h != (password.Argon2id{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}) || parameters(h) != "m=19456,t=2,p=1" {
		t.Errorf("argon2id floor hasher %#v (%s), want the server's defaults", h, parameters(h))
	}
	if h, err := floorHasher("bcrypt", 11); err != nil || h != (password.Bcrypt{Cost: 11}) {
		t.Errorf("bcrypt floor hasher %#v %v", h, err)
	}
	if _, err := floorHasher("scrypt", 10); err == nil {
		t.Error("an unknown algorithm was accepted")
	}
}
