package httpapi

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/service"
)

// A refusal is an answer by which Authly turns work away to protect itself or its users:
// 503 server_busy when the bcrypt pool is full, 429 rate_limited over a rate limit, and 429
// account_locked. Under a flood they come by the thousand per second, often from clients that
// do not wait as Retry-After asks, so a refusal writes no log line of its own (the log would
// grow by megabytes a minute and bury real faults): each is counted in the metrics, and the
// log gets at most one line per interval per kind, with the count. And a refused request
// can be held for a moment before its answer (docs/security.md, "Floods of refusals"): a
// client that asks again at once then asks a few times a second instead of thousands, while
// a held request costs a sleeping goroutine and no CPU.

// refusalKind is one kind of refusal, by its problem code.
type refusalKind int

const (
	refusedBusy refusalKind = iota
	refusedRateLimited
	refusedLocked
	refusalKinds
)

var refusalCodes = [refusalKinds]string{
	refusedBusy:        service.CodeServerBusy,
	refusedRateLimited: service.CodeRateLimited,
	refusedLocked:      service.CodeAccountLocked,
}

// refusalKindOf returns the kind of refusal a problem code is, if it is one.
func refusalKindOf(code string) (refusalKind, bool) {
	for k, c := range refusalCodes {
		if c == code {
			return refusalKind(k), true
		}
	}
	return 0, false
}

// level is how loud the log line of a kind is: a full bcrypt pool says the server lacks
// capacity, which an operator wants to hear of; a rate limit or a lock refusing is the
// protection doing its daily work.
func (k refusalKind) level() slog.Level {
	if k == refusedBusy {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// RefusalHold is how refused requests are held before their answer. A refusal with a
// Retry-After is held for a random time between half and all of the shorter of Retry-After
// and Max, and its Retry-After then counts from the end of the hold. The zero value holds
// nothing.
type RefusalHold struct {
	// Max is the longest a refused request is held.
	Max time.Duration
	// Concurrent bounds the refused requests held at once, so that holding cannot pile up
	// connections and goroutines without end; a refusal beyond it is answered at once.
	Concurrent int
}

// DefaultRefusalLogInterval is how often, at most, the log gets a line per kind of refusal.
const DefaultRefusalLogInterval = 10 * time.Second

// refusals counts, logs and holds the refusals of one server.
type refusals struct {
	log      *slog.Logger
	metrics  *metrics.Metrics
	interval time.Duration
	hold     RefusalHold
	held     atomic.Int64 // refused requests being held now
	tallies  [refusalKinds]refusalTally

	// afterFunc and sleep are time.AfterFunc and a context-aware sleep; tests replace them.
	afterFunc func(d time.Duration, f func())
	sleep     func(ctx context.Context, d time.Duration)
}

// refusalTally is what the log has not yet been told of one kind of refusal.
type refusalTally struct {
	count     atomic.Int64
	since     atomic.Int64 // Unix nanoseconds of the last line, or of the first refusal
	scheduled atomic.Bool  // a line is due after the interval
}

func newRefusals(log *slog.Logger, m *metrics.Metrics, interval time.Duration, hold RefusalHold) *refusals {
	if interval <= 0 {
		interval = DefaultRefusalLogInterval
	}
	return &refusals{
		log: log, metrics: m, interval: interval, hold: hold,
		afterFunc: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		sleep: func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		},
	}
}

// refuse records a refusal of kind k whose answer carries retryAfter, holds the request
// when it may, and returns the Retry-After to answer with, counted from the end of the hold.
func (rf *refusals) refuse(ctx context.Context, k refusalKind, retryAfter time.Duration) time.Duration {
	rf.count(k)
	held := false
	if d := rf.holdFor(retryAfter); d > 0 {
		if rf.held.Add(1) <= int64(rf.hold.Concurrent) {
			held = true
			rf.metrics.RefusalsHeld(1)
			rf.sleep(ctx, d)
			rf.metrics.RefusalsHeld(-1)
			retryAfter -= d
		}
		rf.held.Add(-1)
	}
	rf.metrics.Refused(refusalCodes[k], held)
	return retryAfter
}

// holdFor picks how long to hold a refusal that carries retryAfter: at random, so that
// clients refused together do not all come back together, between half and all of the
// shorter of retryAfter and the longest hold. Zero when holding is off.
func (rf *refusals) holdFor(retryAfter time.Duration) time.Duration {
	if rf.hold.Max <= 0 || rf.hold.Concurrent <= 0 || retryAfter <= 0 {
		return 0
	}
	d := min(retryAfter, rf.hold.Max)
	return d/2 + rand.N(d/2+1)
}

// count tallies a refusal for the log. The first refusal after a quiet spell is logged at
// once, so that a flood shows in the log as it starts; the rest are logged as one line, with
// their count, when the interval has passed, and every interval after that while they
// last.
func (rf *refusals) count(k refusalKind) {
	t := &rf.tallies[k]
	t.count.Add(1)
	if t.scheduled.CompareAndSwap(false, true) {
		rf.flush(k)
		rf.afterFunc(rf.interval, func() { rf.tick(k) })
	}
}

// tick writes the line of an interval, and schedules the next one while refusals go on.
func (rf *refusals) tick(k refusalKind) {
	t := &rf.tallies[k]
	if rf.flush(k) > 0 {
		rf.afterFunc(rf.interval, func() { rf.tick(k) })
		return
	}
	// A quiet interval: the next refusal starts a new spell, logged at once.
	t.since.Store(0)
	t.scheduled.Store(false)
	// A refusal counted between the flush and the store found a line due and scheduled
	// none; take it up.
	if t.count.Load() > 0 && t.scheduled.CompareAndSwap(false, true) {
		rf.flush(k)
		rf.afterFunc(rf.interval, func() { rf.tick(k) })
	}
}

// flush logs the refusals of kind k counted since the last line, if any, and returns their
// number.
func (rf *refusals) flush(k refusalKind) int64 {
	t := &rf.tallies[k]
	n := t.count.Swap(0)
	if n == 0 {
		return 0
	}
	now := time.Now()
	since := now
	if last := t.since.Swap(now.UnixNano()); last != 0 {
		since = time.Unix(0, last)
	}
	rf.log.LogAttrs(context.Background(), k.level(), "requests refused",
		slog.String("code", refusalCodes[k]), slog.Int64("count", n), slog.Time("since", since))
	return n
}
