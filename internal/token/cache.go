package token

import (
	"hash/maphash"
	"sync"
	"time"
)

// DefaultCacheSize is how many verified tokens an Issuer remembers when Config.CacheSize is 0.
// An entry holds the token string and its claims, well under a kilobyte.
const DefaultCacheSize = 10_000

// cacheShards spreads the entries over several locks, so concurrent requests rarely wait
// on one another.
const cacheShards = 16

// verifiedCache remembers tokens that passed verification, keyed by the whole token string,
// so a token presented again (every bearer request of a session presents the same one) skips
// the signature check. Only a byte-for-byte identical string hits, so nothing an attacker
// builds can be mistaken for a cached token.
//
// An entry is served only while the token has not expired and while the key that signed it
// is still in the Issuer's key set: an entry never outlives its token, and a retired or
// revoked key takes its tokens with it at once, whatever the cache holds. Entries of keys
// that left the set are also swept, so they do not linger until evicted.
type verifiedCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu        sync.Mutex
	entries   map[string]cacheEntry
	lastSweep time.Time // when expired entries were last dropped from the whole shard
}

// sweepEvery bounds how long an expired entry that is never presented again stays in memory:
// a shard that takes a new entry drops all of its expired ones at most this often.
const sweepEvery = time.Minute

type cacheEntry struct {
	typ Type
	kid string
	v   Verified
}

func newVerifiedCache(size int) *verifiedCache {
	if size <= 0 {
		return nil
	}
	c := &verifiedCache{seed: maphash.MakeSeed(), perShard: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]cacheEntry)
	}
	return c
}

func (c *verifiedCache) shard(raw string) *cacheShard {
	return &c.shards[maphash.String(c.seed, raw)%cacheShards]
}

// get returns the cached claims of raw as a token of type typ, if present and unexpired
// at now, with the id of the key that signed it.
func (c *verifiedCache) get(typ Type, raw string, now time.Time) (Verified, string, bool) {
	s := c.shard(raw)
	s.mu.Lock()
	e, ok := s.entries[raw]
	if ok && !now.Before(e.v.ExpiresAt) {
		delete(s.entries, raw)
		ok = false
	}
	s.mu.Unlock()
	if !ok || e.typ != typ {
		return Verified{}, "", false
	}
	return e.v, e.kid, true
}

func (c *verifiedCache) remove(raw string) {
	s := c.shard(raw)
	s.mu.Lock()
	delete(s.entries, raw)
	s.mu.Unlock()
}

// put remembers a verified token. When the shard is full it first drops expired entries
// among a few it looks at, and otherwise one of them: Go's map iteration order is random,
// so that is a random eviction, which costs nothing to keep up.
func (c *verifiedCache) put(typ Type, raw, kid string, v Verified, now time.Time) {
	if !now.Before(v.ExpiresAt) {
		return
	}
	s := c.shard(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) >= sweepEvery || now.Before(s.lastSweep) {
		s.lastSweep = now
		for k, e := range s.entries {
			if !now.Before(e.v.ExpiresAt) {
				delete(s.entries, k)
			}
		}
	}
	if _, ok := s.entries[raw]; !ok && len(s.entries) >= c.perShard {
		const look = 8
		seen, evicted := 0, false
		var victim string
		for k, e := range s.entries {
			if !now.Before(e.v.ExpiresAt) {
				delete(s.entries, k)
				evicted = true
			} else if victim == "" {
				victim = k
			}
			if seen++; seen == look {
				break
			}
		}
		if !evicted {
			delete(s.entries, victim)
		}
	}
	s.entries[raw] = cacheEntry{typ: typ, kid: kid, v: v}
}

// sweep drops every entry whose key id keep rejects.
func (c *verifiedCache) sweep(keep func(kid string) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.entries {
			if !keep(e.kid) {
				delete(s.entries, k)
			}
		}
		s.mu.Unlock()
	}
}

// len counts the entries, for tests.
func (c *verifiedCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}
