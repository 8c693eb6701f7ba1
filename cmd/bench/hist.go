package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in microseconds in log-linear buckets: exact below 128 µs,
// then 64 buckets per power of two, so any quantile is within 1.6% of the true value. It
// costs one array increment per sample and merges by addition, so each worker keeps its own.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64 // µs
	min    uint64
	max    uint64
}

const (
	histLinear   = 128 // values below this many µs have a bucket each
	histSubBits  = 6   // 64 buckets per power of two above that
	histMaxPower = 36  // 2^36 µs is about 19 hours: far beyond any request timeout
	histBuckets  = histLinear + (histMaxPower-7)<<histSubBits
)

func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	k := bits.Len64(us) - 1 // us is in [2^k, 2^(k+1)), k >= 7
	if k >= histMaxPower {
		return histBuckets - 1
	}
	sub := (us >> (k - histSubBits)) & (1<<histSubBits - 1)
	return histLinear + (k-7)<<histSubBits + int(sub)
}

// bucketValue is the midpoint of a bucket, in µs.
func bucketValue(i int) float64 {
	if i < histLinear {
		return float64(i)
	}
	k := (i-histLinear)>>histSubBits + 7
	sub := uint64((i - histLinear) & (1<<histSubBits - 1))
	width := uint64(1) << (k - histSubBits)
	lower := uint64(1)<<k + sub*width
	return float64(lower) + float64(width)/2
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	h.counts[bucketOf(us)]++
	if h.n == 0 || us < h.min {
		h.min = us
	}
	h.max = max(h.max, us)
	h.n++
	h.sum += us
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the q-quantile (0 < q <= 1) in milliseconds, clamped to the observed
// minimum and maximum; NaN when empty.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := min(max(bucketValue(i), float64(h.min)), float64(h.max))
			return v / 1000
		}
	}
	return float64(h.max) / 1000
}

func (h *histogram) meanMillis() float64 {
	if h.n == 0 {
		return math.NaN()
	}
	return float64(h.sum) / float64(h.n) / 1000
}
