package main

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authly/authly/internal/password"
)

// floor is the physical limit of the hash-bound endpoints on this machine. Every login and
// every registration costs one password hash with the server's algorithm and parameters, so
// no server can exceed cores ÷ hash time of them per second.
type floor struct {
	Algorithm  string  `json:"algorithm"`
	Parameters string  `json:"parameters"`
	BcryptCost int     `json:"bcrypt_cost,omitempty"`
	Samples    int     `json:"samples"`
	HashMillis float64 `json:"hash_ms_median"`
	CPUs       int     `json:"cpus"`
	// CeilingPerSecond is CPUs ÷ hash time: the ceiling the throughput is compared with.
	CeilingPerSecond float64 `json:"ceiling_per_second"`
	// ParallelPerSecond is what CPUs goroutines hashing flat out achieved in this process,
	// with no server, database or network: it shows how far the cores scale together.
	ParallelPerSecond float64 `json:"parallel_hashes_per_second"`
}

// floorSample is one measurement of the floor: single hashes one after another, then every
// CPU hashing at once.
type floorSample struct {
	hashes   []time.Duration
	parallel int64         // hashes completed by all CPUs at once
	elapsed  time.Duration // how long they took
}

// floorDuration is how long each half of a floorSample lasts, at least.
const floorDuration = 1500 * time.Millisecond

// floorHasher is the Hasher the server uses with -password-hash and -bcrypt-cost: bcrypt at
// that cost, or Argon2id at the server's defaults.
func floorHasher(name string, bcryptCost int) (password.Hasher, error) {
	switch name {
	case password.AlgorithmBcrypt:
		return password.NewBcrypt(bcryptCost)
	case password.AlgorithmArgon2id:
		return password.NewArgon2id(password.DefaultArgon2MemoryKiB, password.DefaultArgon2Iterations, password.DefaultArgon2Parallelism)
	}
	return nil, fmt.Errorf("want bcrypt or argon2id, got %q", name)
}

// parameters describes a Hasher's cost for the report.
func parameters(h password.Hasher) string {
	switch h := h.(type) {
	case password.Bcrypt:
		return "cost " + strconv.Itoa(h.Cost)
	case password.Argon2id:
		return h.String()
	}
	return ""
}

// sampleFloor times single hashes (at least 5, and at least floorDuration's worth), then all
// CPUs hashing at once for floorDuration.
func sampleFloor(h password.Hasher) floorSample {
	pw := []byte("bench-floor-password")
	var s floorSample
	began := time.Now()
	for len(s.hashes) < 5 || time.Since(began) < floorDuration {
		t := time.Now()
		_, _ = h.Hash(pw)
		s.hashes = append(s.hashes, time.Since(t))
		if len(s.hashes) >= 200 {
			break
		}
	}

	var done atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(floorDuration)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Go(func() {
			for time.Now().Before(stop) {
				_, _ = h.Hash(pw)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	s.parallel, s.elapsed = done.Load(), time.Since(start)
	return s
}

// floorOf is the floor of the samples together: the median of all their single hashes, and
// the flat-out rate over all their parallel hashing.
func floorOf(h password.Hasher, samples ...floorSample) floor {
	var (
		hashes   []time.Duration
		parallel int64
		elapsed  time.Duration
	)
	for _, s := range samples {
		hashes = append(hashes, s.hashes...)
		parallel += s.parallel
		elapsed += s.elapsed
	}
	base := floor{Algorithm: h.Algorithm(), Parameters: parameters(h)}
	if b, ok := h.(password.Bcrypt); ok {
		base.BcryptCost = b.Cost
	}
	if len(hashes) == 0 {
		return base
	}
	slices.Sort(hashes)
	median := hashes[len(hashes)/2]
	cpus := runtime.NumCPU()
	f := base
	f.Samples = len(hashes)
	f.HashMillis = round3(float64(median.Microseconds()) / 1000)
	f.CPUs = cpus
	f.CeilingPerSecond = round1(float64(cpus) / median.Seconds())
	if elapsed > 0 {
		f.ParallelPerSecond = round1(float64(parallel) / elapsed.Seconds())
	}
	return f
}
