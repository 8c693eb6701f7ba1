// Package hashpool runs password hashing (bcrypt or Argon2id, from internal/password) in a
// bounded pool, so a flood of logins queues briefly or is refused at once instead of piling up
// latency, and so that at most one hash per worker runs at any moment: with Argon2id, whose
// every hash fills its memory parameter, the workers also bound the memory hashing takes.
//
// A Pool has a fixed number of worker slots and a bounded line of callers waiting for one. A
// caller is admitted when a worker is free for it, or when the line has room and its wait,
// estimated from the callers ahead of it and the measured time of one hash, fits in MaxWait.
// Otherwise it is refused with ErrBusy at once: a caller that would be refused after waiting
// MaxWait anyway learns so without waiting. The estimate can be wrong (a hash can run slower
// than the average), so an admitted caller still gives up with ErrBusy when MaxWait has passed
// without a worker. The pool starts no goroutines: each caller runs bcrypt itself while it holds
// a slot, so there is nothing to start or stop.
//
// Reserve takes the place in line separately from the work, so a caller can be admitted, or
// refused at once, before it does other work, such as a login's database bookkeeping, and only
// then hash. The Reservation holds no worker meanwhile: workers are taken when the work starts,
// first come first served, so none idles while a reserved caller is busy elsewhere. Pool.Compare
// and Pool.Hash reserve and work in one call.
//
// A login that names no account must cost the same as one that does, or its timing would tell
// which names have accounts (docs/security.md). Callers get that by comparing the password
// against a dummy hash, made once by Hash with the pool's Hasher, through Compare: the unknown name
// then waits for a slot, runs the same bcrypt work, and is refused under load, exactly like a
// known one.
package hashpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/password"
)

// ErrBusy means the pool could not take the work: the line was full, the caller's estimated
// wait was longer than MaxWait, or it waited MaxWait without getting a worker. Callers answer
// 503 server_busy with a Retry-After taken from RetryAfter.
var ErrBusy = errors.New("hashpool: too many password hashes in progress")

// errSpent means a Reservation was asked for a second piece of work: each one does one.
var errSpent = errors.New("hashpool: the reservation has already worked or been cancelled")

// Defaults for Options.
const (
	// DefaultQueue is the queue length for an unset AUTHLY_HASH_QUEUE. New does not apply it,
	// because a zero Queue is a meaningful setting (no waiting at all).
	DefaultQueue = 64
	// DefaultMaxWait is the wait limit New applies when Options.MaxWait is zero. With the wait
	// bounded by it, a login (wait, one hash and the database) stays under two seconds.
	DefaultMaxWait = 1500 * time.Millisecond
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
	// MaxWait is the longest a caller may wait for a worker, counted from its admission. A
	// caller whose wait would be longer, judging by the callers ahead of it and the measured
	// hash time, is refused with ErrBusy at once; one that is admitted but still has no worker
	// after MaxWait gets ErrBusy then. Zero means DefaultMaxWait.
	MaxWait time.Duration
	// Hasher makes the hashes Hash returns. Nil means bcrypt at Cost. Compare always uses the
	// algorithm and parameters recorded in the hash it is given, whatever Hasher is.
	Hasher password.Hasher
	// Cost is the bcrypt cost Hash uses when Hasher is nil, bcrypt.MinCost to bcrypt.MaxCost.
	// Zero means bcrypt.DefaultCost.
	Cost int
	// OnWait, when set, is called once for every caller that gets a worker, with how long its
	// work waited for one (zero when a worker was free), so metrics can keep a histogram of
	// queueing delay. For a Reservation the wait starts when Compare or Hash is called, not at
	// Reserve: what the caller does in between is its own time, not the pool's. OnWait runs on
	// the caller's goroutine while the caller holds its worker, so it must be quick.
	OnWait func(wait time.Duration)
}

// Stats is a snapshot of a Pool's load. Counters are totals since New.
type Stats struct {
	Workers   int           // worker slots in the pool
	Busy      int           // callers holding a worker now
	Waiting   int           // callers in line for a worker now: admitted, including by Reserve, and not yet holding one
	Admitted  uint64        // callers that got a worker
	Rejected  uint64        // callers refused with ErrBusy: the line was full, the estimated wait too long, or the wait ran out
	WaitTotal time.Duration // time admitted callers' work spent waiting for a worker; WaitTotal/Admitted is the mean wait
}

// Pool bounds concurrent bcrypt work. It is safe for concurrent use.
type Pool struct {
	slots   chan struct{} // a caller holds a worker while it has a value in here
	queue   int64
	maxWait time.Duration
	hasher  password.Hasher
	onWait  func(time.Duration)

	// callers counts admitted callers that have not left: those holding a worker and those in
	// line for one. One counter for both lets a single compare-and-swap bound the line exactly,
	// while a caller moves from the line to a worker without touching it.
	callers   atomic.Int64
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
	if o.Hasher == nil {
		o.Hasher = password.Bcrypt{Cost: o.Cost}
	}
	return &Pool{
		slots:   make(chan struct{}, o.Workers),
		queue:   int64(o.Queue),
		maxWait: o.MaxWait,
		hasher:  o.Hasher,
		onWait:  o.OnWait,
	}, nil
}

// Hasher returns the Hasher that makes the pool's new hashes.
func (p *Pool) Hasher() password.Hasher { return p.hasher }

// NeedsRehash reports whether hash was made with another algorithm or other parameters than
// the pool's Hasher, so that a caller that has just checked a password against it should
// store a new hash. It does no hashing work.
func (p *Pool) NeedsRehash(hash []byte) bool { return p.hasher.NeedsRehash(hash) }

// Hash returns the hash of password made by the pool's Hasher. It reserves a place in line and
// works at once, so it returns what Reserve and Reservation.Hash return.
func (p *Pool) Hash(ctx context.Context, password []byte) ([]byte, error) {
	r, err := p.Reserve(ctx)
	if err != nil {
		return nil, err
	}
	return r.Hash(ctx, password)
}

// Compare reports whether password matches hash. It reserves a place in line and works at
// once, so it returns what Reserve and Reservation.Compare return.
func (p *Pool) Compare(ctx context.Context, hash, password []byte) (bool, error) {
	r, err := p.Reserve(ctx)
	if err != nil {
		return false, err
	}
	return r.Compare(ctx, hash, password)
}

// Reserve admits the caller to the line for a worker, or refuses it at once. A caller is
// admitted when a worker is free for it, counting those in line ahead of it, or when the line
// has room and the wait estimated from the callers ahead and the measured hash time fits in
// MaxWait. Until a hash has been measured there is no estimate, and only the line's bound
// refuses.
//
// The Reservation counts as waiting from now on, in Stats and in later callers' estimates, but
// holds no worker: its Compare or Hash takes one when called. The caller must end it with one
// Compare or Hash, or with Cancel; deferring Cancel right after Reserve does that on every path.
//
// Reserve returns ErrBusy when it refuses, and the context's error when ctx has already ended.
func (p *Pool) Reserve(ctx context.Context) (*Reservation, error) {
	// A request that has already ended gets no place in line, even if a worker is free.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	return &Reservation{p: p, since: time.Now()}, nil
}

// Stats returns a snapshot of the pool's load.
func (p *Pool) Stats() Stats {
	return Stats{
		Workers:   cap(p.slots),
		Busy:      len(p.slots),
		Waiting:   p.waiting(),
		Admitted:  p.admitted.Load(),
		Rejected:  p.rejected.Load(),
		WaitTotal: time.Duration(p.waitTotal.Load()),
	}
}

// RetryAfter suggests a Retry-After for a caller refused with ErrBusy: about as long as the
// callers in line now need to be served, rounded up to whole seconds and never under one second.
func (p *Pool) RetryAfter() time.Duration {
	return retryAfter(p.waiting(), cap(p.slots), time.Duration(p.avgHash.Load()))
}

// waiting counts the callers in line: admitted and not yet holding a worker.
func (p *Pool) waiting() int {
	// The two counts are read one after the other, and a caller that arrives and takes a free
	// worker in between is among the busy but not yet among the callers read; the floor keeps
	// the difference from going negative.
	callers := p.callers.Load()
	return max(int(callers)-len(p.slots), 0)
}

// enter admits a caller to the line, or refuses it with ErrBusy.
func (p *Pool) enter() error {
	workers := int64(cap(p.slots))
	avgHash := time.Duration(p.avgHash.Load())
	// The compare-and-swap keeps the count at or under the bound at every instant, so Stats
	// never reports more waiters than the queue allows once every worker is busy.
	for {
		n := p.callers.Load()
		if n >= workers+p.queue || expectedWait(n, workers, avgHash) > p.maxWait {
			p.rejected.Add(1)
			return ErrBusy
		}
		if p.callers.CompareAndSwap(n, n+1) {
			return nil
		}
	}
}

// A Reservation is one caller's place in line for a worker, from Reserve. It does one piece of
// work, Compare or Hash, which waits for a worker, runs bcrypt and leaves the line; or it is
// cancelled, leaving the line without working.
type Reservation struct {
	p     *Pool
	since time.Time   // when it was admitted: MaxWait counts from here
	left  atomic.Bool // it has left the line, by working, giving up or Cancel
}

// Hash returns the hash of password made by the pool's Hasher. It returns ErrBusy when no
// worker came free within MaxWait of the reservation, the context's error when ctx ends before
// one does, and, with bcrypt, bcrypt.ErrPasswordTooLong (wrapped) for a password over 72 bytes.
func (r *Reservation) Hash(ctx context.Context, pw []byte) ([]byte, error) {
	var hash []byte
	err := r.run(ctx, func() (err error) {
		hash, err = r.p.hasher.Hash(pw)
		return err
	})
	if err != nil {
		return nil, err
	}
	return hash, nil
}

// Compare reports whether password matches hash: true on a match, false with a nil error on a
// mismatch. hash may be a bcrypt hash or an Argon2id PHC string, whatever the pool's Hasher.
// It returns an error only when it could not decide: ErrBusy when no worker came free within
// MaxWait of the reservation, the context's error when ctx ends before one does, or a wrapped
// password.ErrMalformedHash (wrapping bcrypt's own error for a bad bcrypt hash) when hash cannot
// be checked.
func (r *Reservation) Compare(ctx context.Context, hash, pw []byte) (bool, error) {
	match := false
	err := r.run(ctx, func() (err error) {
		match, err = password.Verify(hash, pw)
		return err
	})
	if err != nil {
		return false, err
	}
	return match, nil
}

// Cancel leaves the line without working, for a caller that turned out to need no hash, such as
// a login to a locked account. After Compare or Hash, or a first Cancel, it does nothing.
func (r *Reservation) Cancel() {
	if r.left.CompareAndSwap(false, true) {
		r.p.callers.Add(-1)
	}
}

// run does work while holding a worker, and records how long the work took when it succeeded.
// Failed work is not timed: a corrupt hash or an over-long password fails before bcrypt's
// expensive part and would drag the average down. Whatever happens, the caller leaves the line.
func (r *Reservation) run(ctx context.Context, work func() error) error {
	if r.left.Load() {
		return errSpent
	}
	// Deferred first, so it runs last: the worker is given back before the caller stops
	// counting, and the count never drops below the workers held.
	defer r.Cancel()
	p := r.p
	if err := p.acquire(ctx, r.since); err != nil {
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

// acquire takes a worker slot for a caller admitted at since, waiting for one until MaxWait
// after since.
func (p *Pool) acquire(ctx context.Context, since time.Time) error {
	// A request that has already ended gets no bcrypt work, even if a worker is free.
	if err := ctx.Err(); err != nil {
		return err
	}
	// A free slot is taken even when the caller spent its MaxWait on its own work since
	// reserving: it waits for nobody, and refusing it would waste what it has done.
	select {
	case p.slots <- struct{}{}:
		p.admit(0)
		return nil
	default:
	}

	// Callers blocked sending on the channel are served in the order they came.
	start := time.Now()
	timer := time.NewTimer(p.maxWait - start.Sub(since))
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

// expectedWait estimates, on the safe side, how long a caller waits for a worker when ahead
// callers hold workers or are in line before it. With fewer ahead than workers, one is free
// for it. Otherwise the callers ahead are served workers at a time, each taking a whole hash,
// and the caller starts after ahead/workers rounds, with every worker busy waiting/workers + 1
// rounds: the +1 is the hashes in progress, counted as if just begun. One more round is added
// as a margin: each hand-over from one caller to the next takes a moment that no hash time
// includes, and at 20 rounds deep those moments add up to about a round. Without the margin a
// caller admitted at the edge could wait out MaxWait and be refused then, slowly, which is
// the one answer the estimate exists to prevent. With no hash measured yet (avgHash zero) the
// estimate is zero.
func expectedWait(ahead, workers int64, avgHash time.Duration) time.Duration {
	if ahead < workers {
		return 0
	}
	return time.Duration(ahead/workers+1) * avgHash
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
