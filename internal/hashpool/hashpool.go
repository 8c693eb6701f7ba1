// Package hashpool runs bcrypt work in a bounded pool, so a flood of logins queues briefly or is
// refused at once instead of piling up latency.
//
// A Pool has a fixed number of worker slots and a bounded queue of callers waiting for one.
// A caller that finds every slot taken joins the queue if there is room, and is refused with
// ErrBusy at once if there is not; a queued caller gives up with ErrBusy after MaxWait. The pool
// starts no goroutines: each caller runs bcrypt itself while it holds a slot, so there is nothing
// to start or stop.
//
// A login that names no account must cost the same as one that does (DESIGN.md §5). Callers get
// that by comparing the password against a dummy hash, made once by Hash at the pool's cost,
// through Compare: the unknown name then waits for a slot, runs the same bcrypt work, and is
// refused under load, exactly like a known one.
package hashpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ErrBusy means the pool could not take the work: the queue was full, or the caller waited
// MaxWait without getting a worker. Callers answer 503 server_busy with a Retry-After taken
// from RetryAfter.
var ErrBusy = errors.New("hashpool: too many password hashes in progress")

// Defaults for Options.
const (
	// DefaultQueue is the queue length for an unset AUTHLY_HASH_QUEUE. New does not apply it,
	// because a zero Queue is a meaningful setting (no waiting at all).
	DefaultQueue = 64
	// DefaultMaxWait is the wait limit New applies when Options.MaxWait is zero.
	DefaultMaxWait = 2 * time.Second
)

// Options configure a Pool.
type Options struct {
	// Workers is how many bcrypt operations may run at once. Zero means runtime.GOMAXPROCS(0):
	// bcrypt is pure CPU work, so more workers than CPUs only add latency to each one.
	Workers int
	// Queue is how many callers may wait for a worker. Zero means none may: when every worker is
	// busy, a caller gets ErrBusy at once. Unlike the other fields it has no implicit default:
	// whoever reads AUTHLY_HASH_QUEUE passes DefaultQueue when it is unset.
	Queue int
	// MaxWait is the longest a caller waits for a worker before it gets ErrBusy. Zero means
	// DefaultMaxWait.
	MaxWait time.Duration
	// Cost is the bcrypt cost Hash uses, bcrypt.MinCost to bcrypt.MaxCost. Zero means
	// bcrypt.DefaultCost. Compare always uses the cost recorded in the hash it is given.
	Cost int
	// OnWait, when set, is called once for every caller that gets a worker, with how long it
	// queued (zero when a worker was free), so metrics can keep a histogram of queueing delay.
	// It runs on the caller's goroutine while the caller holds its worker, so it must be quick.
	OnWait func(wait time.Duration)
}

// Stats is a snapshot of a Pool's load. Counters are totals since New.
type Stats struct {
	Workers   int           // worker slots in the pool
	Busy      int           // callers holding a worker now
	Waiting   int           // callers queued for a worker now
	Admitted  uint64        // callers that got a worker
	Rejected  uint64        // callers refused with ErrBusy, whether the queue was full or the wait ran out
	WaitTotal time.Duration // time admitted callers spent queued; WaitTotal/Admitted is the mean wait
}

// Pool bounds concurrent bcrypt work. It is safe for concurrent use.
type Pool struct {
	slots   chan struct{} // a caller holds a worker while it has a value in here
	queue   int64
	maxWait time.Duration
	cost    int
	onWait  func(time.Duration)

	waiting   atomic.Int64
	admitted  atomic.Uint64
	rejected  atomic.Uint64
	waitTotal atomic.Int64 // nanoseconds
	avgHash   atomic.Int64 // moving average of one bcrypt operation, in nanoseconds; 0 until measured

	// inSlot, when set by a test, is called by each caller right after it gets a worker and
	// before it runs bcrypt, so tests can hold a worker for as long as they need.
	inSlot func()
}

// New builds a Pool. It returns an error naming every invalid option: a negative Workers, Queue
// or MaxWait, or a Cost outside bcrypt's range.
func New(o Options) (*Pool, error) {
	var errs []error
	if o.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers must not be negative (got %d)", o.Workers))
	}
	if o.Queue < 0 {
		errs = append(errs, fmt.Errorf("queue must not be negative (got %d)", o.Queue))
	}
	if o.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("max wait must not be negative (got %s)", o.MaxWait))
	}
	if o.Cost != 0 && (o.Cost < bcrypt.MinCost || o.Cost > bcrypt.MaxCost) {
		errs = append(errs, fmt.Errorf("cost must be from %d to %d (got %d)", bcrypt.MinCost, bcrypt.MaxCost, o.Cost))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("hashpool: %w", err)
	}
	if o.Workers == 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.Cost == 0 {
		o.Cost = bcrypt.DefaultCost
	}
	return &Pool{
		slots:   make(chan struct{}, o.Workers),
		queue:   int64(o.Queue),
		maxWait: o.MaxWait,
		cost:    o.Cost,
		onWait:  o.OnWait,
	}, nil
}

// Hash returns the bcrypt hash of password at the pool's cost. It returns ErrBusy when the pool
// cannot take the work, the context's error when ctx ends before a worker is free, and
// bcrypt.ErrPasswordTooLong (wrapped) for a password over 72 bytes.
func (p *Pool) Hash(ctx context.Context, password []byte) ([]byte, error) {
	var hash []byte
	err := p.run(ctx, func() (err error) {
		hash, err = bcrypt.GenerateFromPassword(password, p.cost)
		return err
	})
	if err != nil {
		return nil, err
	}
	return hash, nil
}

// Compare reports whether password matches hash: true on a match, false with a nil error on a
// mismatch. It returns an error only when it could not decide: ErrBusy when the pool cannot take
// the work, the context's error when ctx ends before a worker is free, or a wrapped bcrypt error
// when hash is not a valid bcrypt hash.
func (p *Pool) Compare(ctx context.Context, hash, password []byte) (bool, error) {
	match := false
	err := p.run(ctx, func() error {
		err := bcrypt.CompareHashAndPassword(hash, password)
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return nil
		}
		match = err == nil
		return err
	})
	if err != nil {
		return false, err
	}
	return match, nil
}

// Stats returns a snapshot of the pool's load.
func (p *Pool) Stats() Stats {
	return Stats{
		Workers:   cap(p.slots),
		Busy:      len(p.slots),
		Waiting:   int(p.waiting.Load()),
		Admitted:  p.admitted.Load(),
		Rejected:  p.rejected.Load(),
		WaitTotal: time.Duration(p.waitTotal.Load()),
	}
}

// RetryAfter suggests a Retry-After for a caller refused with ErrBusy: about as long as the
// callers queued now need to be served, rounded up to whole seconds and never under one second.
func (p *Pool) RetryAfter() time.Duration {
	return retryAfter(int(p.waiting.Load()), cap(p.slots), time.Duration(p.avgHash.Load()))
}

// run does work while holding a worker, and records how long the work took when it succeeded.
// Failed work is not timed: a corrupt hash or an over-long password fails before bcrypt's
// expensive part and would drag the average down.
func (p *Pool) run(ctx context.Context, work func() error) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-p.slots }()
	if p.inSlot != nil {
		p.inSlot()
	}
	start := time.Now()
	if err := work(); err != nil {
		return fmt.Errorf("hashpool: %w", err)
	}
	p.recordHash(time.Since(start))
	return nil
}

// acquire takes a worker slot, queueing for one when none is free and the queue has room.
func (p *Pool) acquire(ctx context.Context) error {
	// A request that has already ended gets no bcrypt work, even if a worker is free.
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
		p.admit(0)
		return nil
	default:
	}

	// Join the queue only if it has room. The compare-and-swap keeps the count at or under the
	// bound at every instant, so Stats never reports more waiters than the queue allows.
	for {
		n := p.waiting.Load()
		if n >= p.queue {
			p.rejected.Add(1)
			return ErrBusy
		}
		if p.waiting.CompareAndSwap(n, n+1) {
			break
		}
	}
	defer p.waiting.Add(-1)

	start := time.Now()
	timer := time.NewTimer(p.maxWait)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		p.admit(time.Since(start))
		return nil
	case <-timer.C:
		p.rejected.Add(1)
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admit records a caller that got a worker after waiting for wait.
func (p *Pool) admit(wait time.Duration) {
	p.admitted.Add(1)
	p.waitTotal.Add(int64(wait))
	if p.onWait != nil {
		p.onWait(wait)
	}
}

// recordHash folds one measured bcrypt duration into the moving average.
func (p *Pool) recordHash(d time.Duration) {
	for {
		old := p.avgHash.Load()
		if p.avgHash.CompareAndSwap(old, int64(movingAverage(time.Duration(old), d))) {
			return
		}
	}
}

// averageWeight is how many samples the moving average of hash time roughly spans: each new
// sample moves it 1/averageWeight of the way, so one slow hash barely shifts it.
const averageWeight = 8

// movingAverage returns the exponentially weighted moving average after sample, given the
// previous average (zero when there was none).
func movingAverage(avg, sample time.Duration) time.Duration {
	if avg == 0 {
		return sample
	}
	return avg + (sample-avg)/averageWeight
}

// retryAfter estimates how long the waiting callers need: they are served workers at a time, a
// partial round costs a whole hash, and the refused caller needs one more round after them.
// Retry-After carries whole seconds, so the estimate is rounded up, and it is at least a second.
func retryAfter(waiting, workers int, avgHash time.Duration) time.Duration {
	rounds := (waiting+workers-1)/workers + 1
	d := time.Duration(rounds) * avgHash
	if d <= time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}
