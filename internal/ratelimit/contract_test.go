package ratelimit_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/testredis"
)

func TestMain(m *testing.M) { os.Exit(testredis.Main(m)) }

// store is one backend under the contract: limiters that share their counts
// (several instances for Redis, one for Memory) and a way to let time pass.
type store struct {
	limiters []ratelimit.Limiter
	advance  func(time.Duration)
	// slack is how much real time may pass between a hit and the check of
	// its durations; zero for a backend on a fake clock.
	slack time.Duration
	// tolerance is how much shorter than exact a reported duration may be: the real time
	// that may pass, on a loaded machine, between the first hit and the check; zero on a
	// fake clock.
	tolerance time.Duration
}

// limiter returns the store's instances in turn.
func (s *store) limiter(i int) ratelimit.Limiter { return s.limiters[i%len(s.limiters)] }

type backend struct {
	name string
	open func(t *testing.T) *store
}

var backends = []backend{
	{"memory", func(*testing.T) *store {
		clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		return &store{
			limiters: []ratelimit.Limiter{ratelimit.NewMemory(clock.Now)},
			advance:  clock.Advance,
		}
	}},
	{"redis", func(t *testing.T) *store {
		// Two clients stand for two Authly instances sharing one Redis.
		prefix := testredis.Prefix(t)
		return &store{
			limiters: []ratelimit.Limiter{
				ratelimit.NewRedis(testredis.Client(t), prefix),
				ratelimit.NewRedis(testredis.Client(t), prefix),
			},
			advance:   time.Sleep,
			slack:     50 * time.Millisecond,
			tolerance: time.Second,
		}
	}},
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Limits for the contract. The long one never refills during a test, even on
// real time; the short one refills quickly enough for Redis tests to wait.
var (
	fivePerMinute  = ratelimit.Limit{N: 5, Period: time.Minute}
	fourPer400ms   = ratelimit.Limit{N: 4, Period: 400 * time.Millisecond}
	unevenInterval = ratelimit.Limit{N: 7, Period: time.Minute}
)

var contract = []struct {
	name string
	run  func(t *testing.T, s *store)
}{
	{"the first N hits are allowed while Remaining counts down", func(t *testing.T, s *store) {
		for i := range fivePerMinute.N {
			got := allow(t, s.limiter(i), "login:alice", fivePerMinute)
			want := ratelimit.Result{Allowed: true, Limit: 5, Remaining: 4 - i, ResetAfter: time.Duration(i+1) * 12 * time.Second}
			assertResult(t, s, got, want)
		}
	}},
	{"hit N+1 is denied until one interval, Period/N, has passed", func(t *testing.T, s *store) {
		exhaust(t, s, "login:alice", fivePerMinute)
		got := allow(t, s.limiter(1), "login:alice", fivePerMinute)
		assertResult(t, s, got, ratelimit.Result{Limit: 5, RetryAfter: 12 * time.Second, ResetAfter: time.Minute})
	}},
	{"after RetryAfter exactly one more hit is allowed", func(t *testing.T, s *store) {
		exhaust(t, s, "ip:192.0.2.1", fourPer400ms)
		denied := allow(t, s.limiter(0), "ip:192.0.2.1", fourPer400ms)
		if denied.Allowed || denied.RetryAfter <= 0 {
			t.Fatalf("hit 5 of 4: %+v, want denied with a RetryAfter", denied)
		}
		s.advance(denied.RetryAfter + s.slack/10)
		if got := allow(t, s.limiter(1), "ip:192.0.2.1", fourPer400ms); !got.Allowed || got.Remaining != 0 {
			t.Errorf("after RetryAfter: %+v, want allowed with none remaining", got)
		}
		if got := allow(t, s.limiter(0), "ip:192.0.2.1", fourPer400ms); got.Allowed {
			t.Errorf("the next hit: %+v, want denied", got)
		}
	}},
	{"after ResetAfter the whole burst is back", func(t *testing.T, s *store) {
		var last ratelimit.Result
		for range fourPer400ms.N {
			last = allow(t, s.limiter(0), "ip:192.0.2.1", fourPer400ms)
		}
		s.advance(last.ResetAfter + s.slack/10)
		got := allow(t, s.limiter(1), "ip:192.0.2.1", fourPer400ms)
		if !got.Allowed || got.Remaining != fourPer400ms.N-1 {
			t.Errorf("after ResetAfter: %+v, want allowed with %d remaining", got, fourPer400ms.N-1)
		}
	}},
	{"a denied hit does not push the next slot further away", func(t *testing.T, s *store) {
		exhaust(t, s, "ip:192.0.2.1", fourPer400ms)
		first := allow(t, s.limiter(0), "ip:192.0.2.1", fourPer400ms)
		for range 20 {
			allow(t, s.limiter(1), "ip:192.0.2.1", fourPer400ms)
		}
		last := allow(t, s.limiter(0), "ip:192.0.2.1", fourPer400ms)
		if last.Allowed || last.RetryAfter > first.RetryAfter {
			t.Errorf("RetryAfter grew from %v to %v while hits were denied", first.RetryAfter, last.RetryAfter)
		}
	}},
	{"Remaining is exact when N does not divide the period", func(t *testing.T, s *store) {
		for i := range unevenInterval.N {
			got := allow(t, s.limiter(i), "login:bob", unevenInterval)
			if !got.Allowed || got.Remaining != unevenInterval.N-1-i {
				t.Fatalf("hit %d of 7/1m: %+v, want allowed with %d remaining", i+1, got, unevenInterval.N-1-i)
			}
		}
		if got := allow(t, s.limiter(0), "login:bob", unevenInterval); got.Allowed {
			t.Errorf("hit 8 of 7/1m: %+v, want denied", got)
		}
	}},
	{"keys are independent", func(t *testing.T, s *store) {
		exhaust(t, s, "login:alice", fivePerMinute)
		for _, key := range []string{"login:bob", "ip:192.0.2.1", "login:alice ", "Login:alice"} {
			if got := allow(t, s.limiter(0), key, fivePerMinute); !got.Allowed || got.Remaining != 4 {
				t.Errorf("%q after login:alice was used up: %+v, want a full bucket", key, got)
			}
		}
	}},
	{"an off limit always allows and counts nothing", func(t *testing.T, s *store) {
		for i := range 100 {
			got := allow(t, s.limiter(i), "login:alice", ratelimit.Limit{})
			if got != (ratelimit.Result{Allowed: true}) {
				t.Fatalf("hit %d under an off limit: %+v", i+1, got)
			}
		}
		if got := allow(t, s.limiter(0), "login:alice", fivePerMinute); got.Remaining != 4 {
			t.Errorf("after 100 hits under an off limit: %+v, want a full bucket", got)
		}
	}},
	{"a 100 KB key works and stays distinct from one differing in its last byte", func(t *testing.T, s *store) {
		long := "login:" + strings.Repeat("a", 100<<10)
		exhaust(t, s, long+"1", fivePerMinute)
		if got := allow(t, s.limiter(0), long+"1", fivePerMinute); got.Allowed {
			t.Errorf("the used-up long key: %+v, want denied", got)
		}
		if got := allow(t, s.limiter(1), long+"2", fivePerMinute); !got.Allowed || got.Remaining != 4 {
			t.Errorf("the other long key: %+v, want a full bucket", got)
		}
	}},
	{"an invalid limit is an error, not a verdict", func(t *testing.T, s *store) {
		for _, l := range []ratelimit.Limit{
			{N: -1, Period: time.Minute},
			{N: 5},
			{N: 5, Period: -time.Minute},
			{N: 2_000_000, Period: time.Second},
			{N: 1, Period: 400 * 24 * time.Hour},
		} {
			_, err := s.limiter(0).Allow(t.Context(), "login:alice", l)
			if !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Errorf("Allow under %+v: error %v, want ErrInvalidLimit", l, err)
			}
		}
	}},
	{"50 concurrent hits on one key admit exactly N", func(t *testing.T, s *store) {
		limit := ratelimit.Limit{N: 10, Period: time.Minute}
		var allowed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 50 {
			wg.Go(func() {
				<-start
				got, err := s.limiter(i).Allow(context.Background(), "login:alice", limit)
				if err != nil {
					t.Error(err)
					return
				}
				if got.Allowed {
					allowed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := allowed.Load(); got != int32(limit.N) {
			t.Errorf("%d of 50 concurrent hits were allowed under %s, want %d", got, limit, limit.N)
		}
	}},
}

func TestContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range contract {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, b.open(t))
				})
			}
		})
	}
}

func allow(t *testing.T, l ratelimit.Limiter, key string, limit ratelimit.Limit) ratelimit.Result {
	t.Helper()
	got, err := l.Allow(t.Context(), key, limit)
	if err != nil {
		t.Fatalf("Allow(%.40q, %s): %v", key, limit, err)
	}
	return got
}

// exhaust uses up key's burst, alternating between the store's instances.
func exhaust(t *testing.T, s *store, key string, limit ratelimit.Limit) {
	t.Helper()
	for i := range limit.N {
		if got := allow(t, s.limiter(i), key, limit); !got.Allowed {
			t.Fatalf("hit %d of %s: %+v, want allowed", i+1, limit, got)
		}
	}
}

// assertResult compares got with want, letting its durations fall short by
// the store's tolerance, the real time that may pass since the hits began.
func assertResult(t *testing.T, s *store, got, want ratelimit.Result) {
	t.Helper()
	near := func(got, want time.Duration) bool { return got <= want && got >= want-s.tolerance }
	if got.Allowed != want.Allowed || got.Limit != want.Limit || got.Remaining != want.Remaining ||
		!near(got.RetryAfter, want.RetryAfter) || !near(got.ResetAfter, want.ResetAfter) {
		t.Errorf("got %+v\nwant %+v (durations up to %v shorter)", got, want, s.tolerance)
	}
}

// The Redis store answers for every instance, so a failure must surface as
// an error for the caller to decide on, never as a silent verdict.
func TestRedisReportsAnUnreachableServer(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	_, err := ratelimit.NewRedis(client, "authly:").Allow(t.Context(), "login:alice", fivePerMinute)
	if err == nil || !strings.Contains(err.Error(), "ratelimit: redis") {
		t.Errorf("Allow against no server: error %v, want a ratelimit: redis error", err)
	}
}

func TestRedisKeepsShortExpiringKeysUnderItsPrefix(t *testing.T) {
	t.Parallel()
	client := testredis.Client(t)
	prefix := testredis.Prefix(t)
	limiter := ratelimit.NewRedis(client, prefix)
	for _, key := range []string{"login:alice", "login:" + strings.Repeat("b", 100<<10)} {
		allow(t, limiter, key, fivePerMinute)
	}
	keys, err := client.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys under the prefix: %q, want 2", keys)
	}
	for _, key := range keys {
		if len(key) > len(prefix)+130 {
			t.Errorf("a key of %d bytes is stored whole", len(key))
		}
		ttl, err := client.PTTL(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		// One hit of 5/1m fills back in one interval, 12 s.
		if ttl <= 0 || ttl > 12*time.Second {
			t.Errorf("%.60q expires in %v, want within 12s", key, ttl)
		}
	}
}
