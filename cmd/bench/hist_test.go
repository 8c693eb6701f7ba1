package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantilesStayWithinTheBucketError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var exact []float64
	for range 100_000 {
		// Log-uniform from 10 µs to 10 s, the range a load run sees.
		us := math.Exp(math.Log(10) + r.Float64()*(math.Log(10e6)-math.Log(10)))
		d := time.Duration(us) * time.Microsecond
		h.record(d)
		exact = append(exact, float64(d.Microseconds())/1000)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		got := h.quantile(q)
		if rel := math.Abs(got-want) / want; rel > 0.017 {
			t.Errorf("p%g = %.3f ms, want %.3f ms (off by %.2f%%)", q*100, got, want, rel*100)
		}
	}
}

func TestHistogramMergeEqualsOneHistogramOfEverything(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.record(d)
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	if a != all {
		t.Fatalf("merged histogram differs: n=%d/%d min=%d/%d max=%d/%d", a.n, all.n, a.min, all.min, a.max, all.max)
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h histogram
	for _, us := range []int{3, 5, 7, 100} {
		h.record(time.Duration(us) * time.Microsecond)
	}
	if got := h.quantile(0.5); got != 0.005 {
		t.Fatalf("median = %v ms, want 0.005", got)
	}
	if got := h.quantile(1); got != 0.1 {
		t.Fatalf("max = %v ms, want 0.1", got)
	}
}

func TestBucketsAreMonotonic(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<24; us += 1 + us/512 {
		b := bucketOf(us)
		if b < prev {
			t.Fatalf("bucket of %d µs is %d, below %d", us, b, prev)
		}
		if v := bucketValue(b); math.Abs(v-float64(us)) > float64(us)/60+1 {
			t.Fatalf("bucket %d of %d µs has value %v", b, us, v)
		}
		prev = b
	}
}
