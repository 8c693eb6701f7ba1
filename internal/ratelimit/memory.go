package ratelimit

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// memoryMaxKeys bounds the keys a Memory tracks at once. With keys cut to at
// most 130 bytes by storageKey, a full store takes about 20 MB.
const memoryMaxKeys = 100_000

// Memory is a Limiter for a single Authly instance: its counts live in the
// process and are lost on restart.
//
// Its memory is bounded. A key is dropped as soon as its bucket is full
// again, since it then behaves like a key never seen. When 100,000 keys
// are all still refilling, a new key makes Memory forget the
// key whose bucket would be full soonest, which then starts over with a full
// bucket. That key loses the least, and a flood of distinct one-hit keys
// pushes out its own entries before any key that has been hit hard, such as
// a login name under attack. New keys are never refused, so a flood cannot
// lock out clients it does not share a key with.
type Memory struct {
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
	byTAT   tatHeap
}

// bucket is one key's state: when its next hit would be on schedule.
type bucket struct {
	key   string
	tat   time.Time
	index int // in Memory.byTAT
}

// NewMemory returns an empty in-memory Limiter reading the time from now
// (time.Now when nil).
func NewMemory(now func() time.Time) *Memory {
	return newMemory(now, memoryMaxKeys)
}

func newMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, maxKeys: maxKeys, buckets: make(map[string]*bucket)}
}

// Allow records one hit for key under limit l and reports whether it is
// allowed. Its only error is ErrInvalidLimit.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	if err := check(l); err != nil {
		return Result{}, err
	}
	if l.Off() {
		return offResult, nil
	}
	key = storageKey(key)
	interval := l.interval()
	burst := interval * time.Duration(l.N)

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.dropFull(now)

	b := m.buckets[key]
	tat := now
	if b != nil && b.tat.After(now) {
		tat = b.tat
	}
	newTAT := tat.Add(interval)
	allowAt := newTAT.Add(-burst)
	if now.Before(allowAt) {
		return Result{
			Limit:      l.N,
			RetryAfter: allowAt.Sub(now),
			ResetAfter: tat.Sub(now),
		}, nil
	}

	if b != nil {
		b.tat = newTAT
		heap.Fix(&m.byTAT, b.index)
	} else {
		if len(m.buckets) >= m.maxKeys {
			m.forget(m.byTAT[0])
		}
		b = &bucket{key: key, tat: newTAT}
		m.buckets[key] = b
		heap.Push(&m.byTAT, b)
	}
	return Result{
		Allowed:    true,
		Limit:      l.N,
		Remaining:  int(now.Sub(allowAt) / interval),
		ResetAfter: newTAT.Sub(now),
	}, nil
}

// dropFull forgets every key whose bucket is full again at now; each key is
// dropped once, so the cost is spread over the hits that created them.
func (m *Memory) dropFull(now time.Time) {
	for len(m.byTAT) > 0 && !m.byTAT[0].tat.After(now) {
		m.forget(m.byTAT[0])
	}
}

func (m *Memory) forget(b *bucket) {
	heap.Remove(&m.byTAT, b.index)
	delete(m.buckets, b.key)
}

// tatHeap orders buckets by TAT, soonest full first.
type tatHeap []*bucket

func (h tatHeap) Len() int           { return len(h) }
func (h tatHeap) Less(i, j int) bool { return h[i].tat.Before(h[j].tat) }
func (h tatHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *tatHeap) Push(x any) {
	b := x.(*bucket)
	b.index = len(*h)
	*h = append(*h, b)
}

func (h *tatHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}
