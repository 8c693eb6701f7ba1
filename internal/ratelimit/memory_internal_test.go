package ratelimit

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// size returns how many keys m tracks, after checking that its map and heap
// agree.
func (m *Memory) size(t *testing.T) int {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.buckets) != len(m.byTAT) {
		t.Fatalf("%d buckets but %d in the heap", len(m.buckets), len(m.byTAT))
	}
	for i, b := range m.byTAT {
		if b.index != i || m.buckets[b.key] != b {
			t.Fatalf("heap slot %d holds a bucket indexed %d for %q", i, b.index, b.key)
		}
	}
	return len(m.buckets)
}

func mustAllow(t *testing.T, m *Memory, key string, l Limit) Result {
	t.Helper()
	got, err := m.Allow(t.Context(), key, l)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestMemoryForgetsKeysWhoseBucketIsFullAgain(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := newMemory(c.Now, 1000)
	limit := Limit{N: 5, Period: time.Minute}
	for i := range 500 {
		mustAllow(t, m, fmt.Sprintf("ip:%d", i), limit)
	}
	mustAllow(t, m, "login:alice", limit)
	mustAllow(t, m, "login:alice", limit)
	if got := m.size(t); got != 501 {
		t.Fatalf("%d keys after 501 distinct ones", got)
	}
	// One hit of 5/1m fills back in 12 s, two in 24 s.
	c.now = c.now.Add(12 * time.Second)
	mustAllow(t, m, "login:carol", Limit{})
	if got := m.size(t); got != 501 {
		t.Errorf("an off-limit hit changed the store to %d keys", got)
	}
	mustAllow(t, m, "login:carol", limit)
	if got := m.size(t); got != 2 {
		t.Errorf("%d keys after the one-hit keys filled up, want login:alice and login:carol", got)
	}
}

func TestMemoryStaysWithinItsCapUnderAFloodOfKeys(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	const maxKeys = 1000
	m := newMemory(c.Now, maxKeys)
	limit := Limit{N: 5, Period: time.Minute}
	// login:alice is under attack: four of her five hits are used.
	for range 4 {
		mustAllow(t, m, "login:alice", limit)
	}
	for i := range 20 * maxKeys {
		c.now = c.now.Add(100 * time.Microsecond)
		if got := mustAllow(t, m, fmt.Sprintf("login:flood-%d-%s", i, strings.Repeat("x", 200)), limit); !got.Allowed {
			t.Fatalf("flood key %d was denied: a new key must always get its burst", i)
		}
		if got := len(m.buckets); got > maxKeys {
			t.Fatalf("%d keys after %d flood keys, cap %d", got, i+1, maxKeys)
		}
	}
	if got := m.size(t); got != maxKeys {
		t.Errorf("%d keys after the flood, want the cap, %d", got, maxKeys)
	}
	// The flood's one-hit keys were forgotten before alice's.
	got := mustAllow(t, m, "login:alice", limit)
	if !got.Allowed || got.Remaining != 0 {
		t.Errorf("login:alice after the flood: %+v, want her fifth and last hit", got)
	}
	if got := mustAllow(t, m, "login:alice", limit); got.Allowed {
		t.Errorf("login:alice's sixth hit after the flood: %+v, want denied", got)
	}
}

func TestLongKeysAreStoredAsAFixedSizeHash(t *testing.T) {
	t.Parallel()
	short := strings.Repeat("a", maxKeyLen)
	long := short + "a"
	if got := storageKey(short); got != "k:"+short {
		t.Errorf("a %d-byte key is stored as %q", maxKeyLen, got)
	}
	if got := storageKey(long); len(got) != 66 || !strings.HasPrefix(got, "h:") {
		t.Errorf("a %d-byte key is stored as %q", len(long), got)
	}
	// A short key spelling out a long key's hash is still another bucket.
	if hashed := storageKey(long); storageKey(hashed) == hashed {
		t.Errorf("the short key %q names the long key's bucket", hashed)
	}
}
