package main

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// floor is the physical limit of the bcrypt-bound endpoints on this machine. Every login and
// every registration costs one bcrypt hash at the server's cost, so no server can exceed
// cores ÷ hash time of them per second.
type floor struct {
	BcryptCost int     `json:"bcrypt_cost"`
	Samples    int     `json:"samples"`
	HashMillis float64 `json:"hash_ms_median"`
	CPUs       int     `json:"cpus"`
	// CeilingPerSecond is CPUs ÷ hash time: the ceiling the throughput is compared with.
	CeilingPerSecond float64 `json:"ceiling_per_second"`
	// ParallelPerSecond is what CPUs goroutines hashing flat out achieved in this process,
	// with no server, database or network: it shows how far the cores scale together.
	ParallelPerSecond float64 `json:"parallel_hashes_per_second"`
}

// measureFloor times single bcrypt hashes (median of at least 5, and at least one second's
// worth), then all CPUs hashing at once for a second.
func measureFloor(cost int) floor {
	password := []byte("bench-floor-password")
	var samples []time.Duration
	began := time.Now()
	for len(samples) < 5 || time.Since(began) < time.Second {
		t := time.Now()
		_, _ = bcrypt.GenerateFromPassword(password, cost)
		samples = append(samples, time.Since(t))
		if len(samples) >= 200 {
			break
		}
	}
	slices.Sort(samples)
	median := samples[len(samples)/2]
	cpus := runtime.NumCPU()

	var done atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Second)
	for range cpus {
		wg.Go(func() {
			for time.Now().Before(stop) {
				_, _ = bcrypt.GenerateFromPassword(password, cost)
				done.Add(1)
			}
		})
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)

	return floor{
		BcryptCost:        cost,
		Samples:           len(samples),
		HashMillis:        round3(float64(median.Microseconds()) / 1000),
		CPUs:              cpus,
		CeilingPerSecond:  round1(float64(cpus) / median.Seconds()),
		ParallelPerSecond: round1(float64(done.Load()) / elapsed.Seconds()),
	}
}
