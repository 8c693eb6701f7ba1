package hashpool

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/password"
)

var (
	testPassword  = []byte("correct horse battery staple")
	otherPassword = []byte("correct horse battery stapler")
)

// newPool builds a pool for a test and fails the test if the options are refused.
func newPool(t testing.TB, o Options) *Pool {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return p
}

// cheapHash hashes password at bcrypt's lowest cost without going through a pool, so a test can
// prepare hashes while its pool's workers are held.
func cheapHash(t testing.TB, password []byte) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// holder makes callers that get a worker in p report on entered and then keep the worker until
// it lets them go. It records the most callers ever holding workers at once. A caller beyond the
// workers the test expects is not held, so a pool that lets too many run fails the test at once
// instead of hanging it.
type holder struct {
	workers    int64
	entered    chan struct{}
	release    chan struct{}
	letGoOnce  sync.Once
	running    atomic.Int64
	maxRunning atomic.Int64
}

// maxCallers bounds how many callers any test sends through a held pool; entered is buffered
// for all of them so reporting never blocks.
const maxCallers = 256

func hold(t *testing.T, p *Pool, workers int) *holder {
	h := &holder{workers: int64(workers), entered: make(chan struct{}, maxCallers), release: make(chan struct{})}
	t.Cleanup(h.letGo) // a test that fails early must not strand its callers
	p.inSlot = func() {
		n := h.running.Add(1)
		defer h.running.Add(-1)
		for {
			m := h.maxRunning.Load()
			if n <= m || h.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		if n > h.workers {
			return
		}
		h.entered <- struct{}{}
		<-h.release
		runtime.Gosched() // let other callers overlap with this one if the pool allows it
	}
	return h
}

// letGo releases every held caller and lets later ones run without holding.
func (h *holder) letGo() { h.letGoOnce.Do(func() { close(h.release) }) }

// overrun reports whether more callers than the expected workers ever ran at once.
func (h *holder) overrun() bool { return h.maxRunning.Load() > h.workers }

// awaitEntered waits until n callers hold workers.
func (h *holder) awaitEntered(n int) {
	for range n {
		<-h.entered
	}
}

// holdOneWorker starts a Compare that takes a worker of p, which hold(t, p, 1) set up as h,
// and returns once it holds it. The Compare keeps it until h lets go, then sends its error.
func holdOneWorker(t *testing.T, p *Pool, h *holder, hash []byte) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := p.Compare(t.Context(), hash, testPassword)
		done <- err
	}()
	h.awaitEntered(1)
	return done
}

// eventually polls cond until it holds. The deadline only keeps a broken pool from hanging the
// run; no test depends on how fast anything happens.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// receive returns the next value from ch. Like eventually, its deadline only keeps a broken pool
// from hanging the run.
func receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// cancelIfQueued cancels through cancel as soon as more than limit callers wait in p, so a
// caller the pool should have refused at once fails the test instead of waiting. The returned
// function stops the watch.
func cancelIfQueued(p *Pool, limit int, cancel context.CancelFunc) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if p.Stats().Waiting > limit {
					cancel()
					return
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func TestHashAndCompare(t *testing.T) {
	p := newPool(t, Options{Workers: 2, Cost: bcrypt.MinCost})
	hash, err := p.Hash(t.Context(), testPassword)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}

	tests := []struct {
		name      string
		hash      []byte
		password  []byte
		wantMatch bool
		wantErr   error // nil: no error; errCorrupt: any error but ErrBusy
	}{
		{"the password a hash was made from matches", hash, testPassword, true, nil},
		{"a different password does not match and is not an error", hash, otherPassword, false, nil},
		{"an empty password does not match and is not an error", hash, nil, false, nil},
		{"a hash made at another cost still verifies at its own cost", func() []byte {
			h, err := bcrypt.GenerateFromPassword(testPassword, bcrypt.MinCost+1)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}(), testPassword, true, nil},
		{"a truncated hash is an error, not a mismatch", hash[:20], testPassword, false, bcrypt.ErrHashTooShort},
		{"an empty hash is an error, not a mismatch", nil, testPassword, false, password.ErrMalformedHash},
		{"a hash with an unknown prefix is an error", append([]byte("#"), hash[1:]...), testPassword, false, errCorrupt},
		{"a hash with an unreadable cost is an error", []byte(strings.Replace(string(hash), "$04$", "$0x$", 1)), testPassword, false, errCorrupt},
		{"a hash with a salt that is not base64 is an error", []byte(string(hash[:7]) + strings.Repeat("!", 22) + string(hash[29:])), testPassword, false, errCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			match, err := p.Compare(t.Context(), tt.hash, tt.password)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Compare: unexpected error %v", err)
			case tt.wantErr == errCorrupt && (err == nil || errors.Is(err, ErrBusy)):
				t.Fatalf("Compare error = %v, want a corrupt-hash error", err)
			case tt.wantErr != nil && tt.wantErr != errCorrupt && !errors.Is(err, tt.wantErr):
				t.Fatalf("Compare error = %v, want %v", err, tt.wantErr)
			}
			if match != tt.wantMatch {
				t.Errorf("Compare match = %v, want %v", match, tt.wantMatch)
			}
		})
	}

	if st := p.Stats(); st.Rejected != 0 || st.Busy != 0 || st.Waiting != 0 {
		t.Errorf("Stats after sequential calls = %+v, want nothing busy, waiting or rejected", st)
	}
}

// errCorrupt stands for "some error that is not ErrBusy" in TestHashAndCompare.
var errCorrupt = errors.New("any corrupt-hash error")

func TestHash(t *testing.T) {
	tests := []struct {
		name     string
		cost     int
		password []byte
		wantCost int
		wantErr  error
	}{
		{"a hash is made at the configured cost", bcrypt.MinCost + 1, testPassword, bcrypt.MinCost + 1, nil},
		{"an empty password still hashes", bcrypt.MinCost, []byte{}, bcrypt.MinCost, nil},
		{"a 72-byte password hashes", bcrypt.MinCost, []byte(strings.Repeat("a", 72)), bcrypt.MinCost, nil},
		{"a 73-byte password is refused rather than truncated", bcrypt.MinCost, []byte(strings.Repeat("a", 73)), 0, bcrypt.ErrPasswordTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, Options{Workers: 1, Cost: tt.cost})
			hash, err := p.Hash(t.Context(), tt.password)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Hash error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if hash != nil {
					t.Errorf("Hash returned %q with an error", hash)
				}
				return
			}
			if got, err := bcrypt.Cost(hash); err != nil || got != tt.wantCost {
				t.Errorf("cost of the hash = %d, %v; want %d", got, err, tt.wantCost)
			}
			again, err := p.Hash(t.Context(), tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) == string(hash) {
				t.Error("two hashes of one password are identical; each must have its own salt")
			}
		})
	}
}

func TestAnArgon2idPoolHashesInPHCAndStillChecksBcryptHashes(t *testing.T) {
	argon, err := password.NewArgon2id(password.MinArgon2MemoryKiB, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, Options{Workers: 1, Hasher: argon})
	hash, err := p.Hash(t.Context(), testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash = %s, want an Argon2id PHC string with the pool's parameters", hash)
	}
	if p.NeedsRehash(hash) {
		t.Error("a hash the pool just made needs a rehash")
	}
	old, err := bcrypt.GenerateFromPassword(testPassword, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !p.NeedsRehash(old) {
		t.Error("a bcrypt hash does not need a rehash in an Argon2id pool")
	}
	for name, h := range map[string][]byte{"argon2id": hash, "bcrypt": old} {
		if ok, err := p.Compare(t.Context(), h, testPassword); !ok || err != nil {
			t.Errorf("%s: Compare(right password) = %v, %v; want a match", name, ok, err)
		}
		if ok, err := p.Compare(t.Context(), h, otherPassword); ok || err != nil {
			t.Errorf("%s: Compare(wrong password) = %v, %v; want a mismatch", name, ok, err)
		}
	}
}

func TestNew(t *testing.T) {
	valid := []struct {
		name        string
		opts        Options
		wantWorkers int
		wantQueue   int64
		wantMaxWait time.Duration
		wantCost    int
	}{
		{"zero options take the defaults and no queue", Options{}, runtime.GOMAXPROCS(0), 0, DefaultMaxWait, bcrypt.DefaultCost},
		{"explicit options are kept", Options{Workers: 3, Queue: 5, MaxWait: time.Minute, Cost: 12}, 3, 5, time.Minute, 12},
		{"bcrypt's cheapest cost is allowed", Options{Cost: bcrypt.MinCost}, runtime.GOMAXPROCS(0), 0, DefaultMaxWait, bcrypt.MinCost},
		{"bcrypt's dearest cost is allowed", Options{Cost: bcrypt.MaxCost}, runtime.GOMAXPROCS(0), 0, DefaultMaxWait, bcrypt.MaxCost},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.opts)
			if st := p.Stats(); st.Workers != tt.wantWorkers {
				t.Errorf("Workers = %d, want %d", st.Workers, tt.wantWorkers)
			}
			cost := p.hasher.(password.Bcrypt).Cost
			if p.queue != tt.wantQueue || p.maxWait != tt.wantMaxWait || cost != tt.wantCost {
				t.Errorf("queue, max wait, cost = %d, %s, %d; want %d, %s, %d",
					p.queue, p.maxWait, cost, tt.wantQueue, tt.wantMaxWait, tt.wantCost)
			}
		})
	}

	invalid := []struct {
		name  string
		opts  Options
		wants []string
	}{
		{"negative workers are refused", Options{Workers: -1}, []string{"workers must not be negative"}},
		{"a negative queue is refused", Options{Queue: -1}, []string{"queue must not be negative"}},
		{"a negative wait is refused", Options{MaxWait: -time.Second}, []string{"max wait must not be negative"}},
		{"a cost below bcrypt's minimum is refused", Options{Cost: bcrypt.MinCost - 1}, []string{"cost must be from 4 to 31 (got 3)"}},
		{"a cost above bcrypt's maximum is refused", Options{Cost: bcrypt.MaxCost + 1}, []string{"cost must be from 4 to 31 (got 32)"}},
		{"every bad option is reported at once", Options{Workers: -1, Queue: -1, MaxWait: -1, Cost: 99},
			[]string{"workers", "queue", "max wait", "cost"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.opts)
			if err == nil {
				t.Fatalf("New(%+v) = %v, want an error", tt.opts, p)
			}
			for _, want := range tt.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestCallersBeyondTheQueueAreRefusedAtOnce(t *testing.T) {
	tests := []struct {
		name           string
		workers, queue int
	}{
		{"with one worker and no queue, a second caller is refused while the first runs", 1, 0},
		{"with one worker and a queue of two, two callers wait and a third is refused", 1, 2},
		{"with three workers and a queue of one, a fifth caller is refused", 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// MaxWait is far longer than the test, so only the queue bound can refuse a caller.
			p := newPool(t, Options{Workers: tt.workers, Queue: tt.queue, MaxWait: time.Hour, Cost: bcrypt.MinCost})
			hash := cheapHash(t, testPassword)
			h := hold(t, p, tt.workers)

			type result struct {
				match bool
				err   error
			}
			results := make(chan result, tt.workers+tt.queue)
			compare := func() {
				match, err := p.Compare(t.Context(), hash, testPassword)
				results <- result{match, err}
			}
			for range tt.workers {
				go compare()
			}
			h.awaitEntered(tt.workers)
			for range tt.queue {
				go compare()
			}
			eventually(t, "the queue is full", func() bool { return p.Stats().Waiting == tt.queue || h.overrun() })
			if h.overrun() {
				t.Fatalf("%d callers ran at once with %d workers", h.maxRunning.Load(), tt.workers)
			}

			ctx, cancel := context.WithCancel(t.Context())
			stop := cancelIfQueued(p, tt.queue, cancel)
			match, err := p.Compare(ctx, hash, testPassword)
			stop()
			cancel()
			if !errors.Is(err, ErrBusy) || match {
				t.Fatalf("Compare beyond the queue = %v, %v; want false, ErrBusy without joining the queue", match, err)
			}
			// Nobody has been let go yet, so the refusal came while every worker was still held.
			select {
			case r := <-results:
				t.Fatalf("a held or queued caller finished before any worker was released: %+v", r)
			default:
			}

			h.letGo()
			for range tt.workers + tt.queue {
				if r := <-results; r.err != nil || !r.match {
					t.Errorf("an admitted caller got %v, %v; want true, nil", r.match, r.err)
				}
			}
			want := Stats{Workers: tt.workers, Admitted: uint64(tt.workers + tt.queue), Rejected: 1}
			if st := p.Stats(); st.Workers != want.Workers || st.Busy != 0 || st.Waiting != 0 ||
				st.Admitted != want.Admitted || st.Rejected != want.Rejected {
				t.Errorf("Stats = %+v, want %+v (ignoring WaitTotal)", st, want)
			}
		})
	}
}

func TestAWaitingCallerGivesUp(t *testing.T) {
	tests := []struct {
		name         string
		maxWait      time.Duration
		avgHash      time.Duration // the measured hash time the pool starts with
		ctx          func(context.Context) (context.Context, context.CancelFunc)
		cancelQueued bool // cancel the context once the caller is queued
		wantErr      error
		wantRejected uint64
	}{
		{
			name:    "a caller still waiting at MaxWait is refused as busy",
			maxWait: 20 * time.Millisecond,
			ctx:     context.WithCancel,
			wantErr: ErrBusy, wantRejected: 1,
		},
		{
			// The worker is held far longer than the measured hash time, so the estimate that
			// admitted the caller (one round of 1ms) turns out wrong.
			name:    "a caller admitted on an estimate that proves wrong is refused at MaxWait",
			maxWait: 20 * time.Millisecond, avgHash: time.Millisecond,
			ctx:     context.WithCancel,
			wantErr: ErrBusy, wantRejected: 1,
		},
		{
			name:    "a caller whose context is cancelled while waiting gets the context's error",
			maxWait: time.Hour,
			ctx:     context.WithCancel, cancelQueued: true,
			wantErr: context.Canceled, wantRejected: 0,
		},
		{
			name:    "a caller whose deadline passes while waiting gets the context's error",
			maxWait: time.Hour,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 20*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded, wantRejected: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, Options{Workers: 1, Queue: 1, MaxWait: tt.maxWait, Cost: bcrypt.MinCost})
			p.avgHash.Store(int64(tt.avgHash))
			hash := cheapHash(t, testPassword)
			h := hold(t, p, 1)

			holderDone := holdOneWorker(t, p, h, hash)

			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			waiterDone := make(chan error, 1)
			go func() {
				_, err := p.Compare(ctx, hash, testPassword)
				waiterDone <- err
			}()
			if tt.cancelQueued {
				eventually(t, "the caller is queued", func() bool { return p.Stats().Waiting == 1 || h.overrun() })
				cancel()
			}

			if err := receive(t, "the waiting caller to give up", waiterDone); !errors.Is(err, tt.wantErr) {
				t.Fatalf("waiting caller got %v, want %v", err, tt.wantErr)
			}
			if st := p.Stats(); st.Waiting != 0 || st.Rejected != tt.wantRejected {
				t.Errorf("after the caller gave up, Waiting = %d and Rejected = %d; want 0 and %d",
					st.Waiting, st.Rejected, tt.wantRejected)
			}

			h.letGo()
			if err := <-holderDone; err != nil {
				t.Fatalf("the caller holding the worker got %v", err)
			}
			if st := p.Stats(); st.Busy != 0 || st.Admitted != 1 {
				t.Errorf("after the holder finished, Busy = %d and Admitted = %d; want 0 and 1", st.Busy, st.Admitted)
			}
		})
	}
}

func TestAnEndedContextGetsNoWork(t *testing.T) {
	p := newPool(t, Options{Workers: 1, Cost: bcrypt.MinCost})
	ran := false
	p.inSlot = func() { ran = true }
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	if _, err := p.Hash(ctx, testPassword); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := p.Compare(ctx, cheapHash(t, testPassword), testPassword); !errors.Is(err, context.Canceled) {
		t.Errorf("Compare with a cancelled context = %v, want context.Canceled", err)
	}
	if ran {
		t.Error("a caller with a cancelled context was given a worker")
	}
	if st := p.Stats(); st.Admitted != 0 || st.Rejected != 0 {
		t.Errorf("Stats = %+v, want nothing admitted or rejected", st)
	}
}

func TestAFloodNeverExceedsTheWorkers(t *testing.T) {
	const callers, workers, queue = 200, 2, 8
	tests := []struct {
		name string
		// holdFirst keeps the first workers busy until every other caller has queued or been
		// refused, which makes the split between admitted and refused exact.
		holdFirst bool
	}{
		{"with the first workers held, exactly workers plus queue callers are admitted", true},
		{"with work running freely, every caller is either served or refused", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxWait := time.Duration(0) // the default
			if tt.holdFirst {
				maxWait = time.Hour
			}
			p := newPool(t, Options{Workers: workers, Queue: queue, MaxWait: maxWait, Cost: bcrypt.MinCost})
			hash := cheapHash(t, testPassword)
			h := hold(t, p, workers)
			if !tt.holdFirst {
				h.letGo()
			}

			start := make(chan struct{})
			results := make(chan error, callers)
			for range callers {
				go func() {
					<-start
					match, err := p.Compare(t.Context(), hash, testPassword)
					if err == nil && !match {
						err = errors.New("the right password did not match")
					}
					results <- err
				}()
			}
			close(start)

			if tt.holdFirst {
				// A caller that has been admitted but has not yet taken its free worker counts as
				// waiting, so the count settles only once the held workers are taken.
				eventually(t, "every caller holds a worker, has queued or has been refused", func() bool {
					st := p.Stats()
					running := h.running.Load()
					return running == workers && uint64(running)+uint64(st.Waiting)+st.Rejected == callers || h.overrun()
				})
				if st := p.Stats(); h.running.Load() != workers || st.Waiting != queue {
					t.Errorf("%d callers hold workers and %d queued, want %d and %d", h.running.Load(), st.Waiting, workers, queue)
				}
				h.letGo()
			}

			var admitted, rejected uint64
			for range callers {
				switch err := <-results; {
				case err == nil:
					admitted++
				case errors.Is(err, ErrBusy):
					rejected++
				default:
					t.Errorf("a caller got %v, want success or ErrBusy", err)
				}
			}
			if admitted+rejected != callers {
				t.Errorf("admitted %d + rejected %d = %d, want %d", admitted, rejected, admitted+rejected, callers)
			}
			if tt.holdFirst && (admitted != workers+queue || rejected != callers-workers-queue) {
				t.Errorf("admitted %d and rejected %d, want %d and %d", admitted, rejected, workers+queue, callers-workers-queue)
			}
			if got := h.maxRunning.Load(); got > workers || got < 1 {
				t.Errorf("at most %d callers held workers at once, want 1 to %d", got, workers)
			}
			st := p.Stats()
			if st.Admitted != admitted || st.Rejected != rejected || st.Busy != 0 || st.Waiting != 0 {
				t.Errorf("Stats = %+v, want Admitted %d, Rejected %d, nothing busy or waiting", st, admitted, rejected)
			}
		})
	}
}

func TestOnWaitSeesEveryAdmittedCaller(t *testing.T) {
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	p := newPool(t, Options{Workers: 1, Queue: 1, MaxWait: time.Hour, Cost: bcrypt.MinCost, OnWait: func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
	}})
	hash := cheapHash(t, testPassword)
	h := hold(t, p, 1)

	done := make(chan error, 2)
	compare := func() {
		_, err := p.Compare(t.Context(), hash, testPassword)
		done <- err
	}
	go compare()
	h.awaitEntered(1)
	go compare()
	eventually(t, "the second caller is queued", func() bool { return p.Stats().Waiting == 1 || h.overrun() })
	ctx, cancel := context.WithCancel(t.Context())
	stop := cancelIfQueued(p, 1, cancel)
	_, err := p.Compare(ctx, hash, testPassword)
	stop()
	cancel()
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("third caller got %v, want ErrBusy", err)
	}
	h.letGo()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 {
		t.Fatalf("OnWait called %d times (%v), want once per admitted caller: 2", len(waits), waits)
	}
	if waits[0] != 0 || waits[1] <= 0 {
		t.Errorf("OnWait saw %v, want zero for the caller that found a free worker and more for the one that queued", waits)
	}
	if got := p.Stats().WaitTotal; got != waits[1] {
		t.Errorf("WaitTotal = %s, want the queued caller's wait %s", got, waits[1])
	}
}

func TestACallerThatWouldWaitTooLongIsRefusedAtOnce(t *testing.T) {
	// The line has room for every caller here, so only the estimate can refuse one. The hash
	// time is set rather than measured, so the estimates are exact, and the held workers make
	// the hashes in progress last as long as the test needs.
	tests := []struct {
		name             string
		workers          int
		avgHash, maxWait time.Duration
		wantQueued       int // callers admitted to wait behind the held workers
	}{
		// Each estimate counts one round more than the callers ahead need, as a margin.
		{"with one worker, callers one and two rounds away wait and one three rounds away is refused", 1, 3 * time.Second, 10 * time.Second, 2},
		{"a caller whose estimate equals MaxWait still waits", 1, 5 * time.Second, 15 * time.Second, 2},
		{"with two workers, the callers ahead are served two per round", 2, 3 * time.Second, 10 * time.Second, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, Options{Workers: tt.workers, Queue: 100, MaxWait: tt.maxWait, Cost: bcrypt.MinCost})
			p.avgHash.Store(int64(tt.avgHash))
			hash := cheapHash(t, testPassword)
			h := hold(t, p, tt.workers)

			results := make(chan error, tt.workers+tt.wantQueued)
			compare := func() {
				match, err := p.Compare(t.Context(), hash, testPassword)
				if err == nil && !match {
					err = errors.New("the right password did not match")
				}
				results <- err
			}
			for range tt.workers {
				go compare()
			}
			h.awaitEntered(tt.workers)
			for i := range tt.wantQueued {
				go compare()
				eventually(t, "the caller is queued or refused", func() bool {
					st := p.Stats()
					return st.Waiting == i+1 || st.Rejected > 0
				})
				if p.Stats().Rejected > 0 {
					t.Fatalf("caller %d in line was refused; want it queued, its estimate fits in MaxWait", i+1)
				}
			}

			// A refused caller must not join the line even for a moment: it would then get the
			// context's error instead of ErrBusy.
			ctx, cancel := context.WithCancel(t.Context())
			stop := cancelIfQueued(p, tt.wantQueued, cancel)
			start := time.Now()
			match, err := p.Compare(ctx, hash, testPassword)
			took := time.Since(start)
			stop()
			cancel()
			if !errors.Is(err, ErrBusy) || match {
				t.Fatalf("Compare with %d callers in line = %v, %v; want false, ErrBusy without queueing", tt.wantQueued, match, err)
			}
			// The wait limit would have refused it after MaxWait; the estimate refuses it without
			// waiting. A second is far longer than a refusal takes, and far shorter than MaxWait.
			if took >= time.Second {
				t.Errorf("the refusal took %s; want it at once, not after waiting (MaxWait %s)", took, tt.maxWait)
			}

			h.letGo()
			for range tt.workers + tt.wantQueued {
				if err := receive(t, "an admitted caller to finish", results); err != nil {
					t.Errorf("an admitted caller got %v, want a match", err)
				}
			}
			if st := p.Stats(); st.Admitted != uint64(tt.workers+tt.wantQueued) || st.Rejected != 1 || st.Busy != 0 || st.Waiting != 0 {
				t.Errorf("Stats = %+v, want %d admitted, 1 rejected, nothing busy or waiting", st, tt.workers+tt.wantQueued)
			}
		})
	}
}

func TestNoWaitIsEstimatedBeforeAHashIsMeasured(t *testing.T) {
	// Any measured hash takes longer than this MaxWait, so once one is measured, no caller may
	// wait behind another.
	p := newPool(t, Options{Workers: 1, Queue: 2, MaxWait: time.Nanosecond, Cost: bcrypt.MinCost})
	var reservations []*Reservation
	for i := range 3 {
		r, err := p.Reserve(t.Context())
		if err != nil {
			t.Fatalf("reservation %d before any hash was measured: %v; want it admitted, only the line's bound refusing", i+1, err)
		}
		reservations = append(reservations, r)
	}
	if _, err := p.Reserve(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("a reservation beyond the worker and the line = %v, want ErrBusy", err)
	}
	for _, r := range reservations {
		r.Cancel()
	}

	if _, err := p.Hash(t.Context(), testPassword); err != nil {
		t.Fatal(err)
	}
	r, err := p.Reserve(t.Context())
	if err != nil {
		t.Fatalf("with the worker free, Reserve = %v; want it admitted whatever the hash time", err)
	}
	defer r.Cancel()
	if _, err := p.Reserve(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("once a hash is measured, a caller behind another = %v; want ErrBusy from the estimate", err)
	}
	if st := p.Stats(); st.Rejected != 2 || st.Waiting != 1 || st.Busy != 0 {
		t.Errorf("Stats = %+v, want 2 rejected, 1 waiting, none busy", st)
	}
}

func TestCancelGivesUpThePlaceInLine(t *testing.T) {
	p := newPool(t, Options{Workers: 1, Queue: 1, MaxWait: time.Hour, Cost: bcrypt.MinCost})
	hash := cheapHash(t, testPassword)
	h := hold(t, p, 1)
	holderDone := holdOneWorker(t, p, h, hash)

	r, err := p.Reserve(t.Context())
	if err != nil {
		t.Fatalf("Reserve with room in line = %v", err)
	}
	if st := p.Stats(); st.Waiting != 1 {
		t.Fatalf("with a reservation in line, Waiting = %d, want 1", st.Waiting)
	}
	if _, err := p.Reserve(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("with the line full, Reserve = %v, want ErrBusy", err)
	}
	r.Cancel()
	if st := p.Stats(); st.Waiting != 0 {
		t.Fatalf("after Cancel, Waiting = %d, want 0", st.Waiting)
	}

	later := make(chan error, 1)
	go func() {
		match, err := p.Compare(t.Context(), hash, testPassword)
		if err == nil && !match {
			err = errors.New("the right password did not match")
		}
		later <- err
	}()
	eventually(t, "the later caller is queued or refused", func() bool {
		st := p.Stats()
		return st.Waiting == 1 || st.Rejected > 1
	})
	if p.Stats().Rejected > 1 {
		t.Fatal("a caller after the Cancel was refused: the cancelled reservation kept its place")
	}
	h.letGo()
	if err := receive(t, "the holder to finish", holderDone); err != nil {
		t.Fatalf("the caller holding the worker got %v", err)
	}
	if err := receive(t, "the later caller to finish", later); err != nil {
		t.Fatalf("the caller admitted after the Cancel got %v", err)
	}

	if _, err := r.Compare(t.Context(), hash, testPassword); err == nil || errors.Is(err, ErrBusy) {
		t.Errorf("Compare on a cancelled reservation = %v; want an error that is not ErrBusy", err)
	}
	if st := p.Stats(); st.Admitted != 2 || st.Rejected != 1 || st.Busy != 0 || st.Waiting != 0 {
		t.Errorf("Stats = %+v; want the holder and the later caller admitted, the cancelled reservation never", st)
	}
}

func TestAReservationCountsInTheEstimateButHoldsNoWorker(t *testing.T) {
	// With one worker and 3s a hash, MaxWait admits callers up to two rounds away (each
	// estimate adds a round as a margin: 6s and 9s).
	p := newPool(t, Options{Workers: 1, Queue: 100, MaxWait: 10 * time.Second, Cost: bcrypt.MinCost})
	p.avgHash.Store(int64(3 * time.Second))
	hash := cheapHash(t, testPassword)
	var reservations []*Reservation
	for i := range 3 {
		r, err := p.Reserve(t.Context())
		if err != nil {
			t.Fatalf("reservation %d, %d rounds from a worker: %v; want it admitted", i+1, i, err)
		}
		t.Cleanup(r.Cancel)
		reservations = append(reservations, r)
	}
	if _, err := p.Reserve(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("a fourth reservation, three rounds from a worker (12s with the margin) = %v; want ErrBusy from the estimate", err)
	}
	if st := p.Stats(); st.Busy != 0 || st.Waiting != 3 {
		t.Fatalf("with three reservations, Busy = %d and Waiting = %d; want 0 and 3", st.Busy, st.Waiting)
	}

	// The earlier reservations are busy elsewhere and hold no worker, so the last one works at
	// once rather than waiting for them.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	match, err := reservations[2].Compare(ctx, hash, testPassword)
	if err != nil || !match {
		t.Fatalf("Compare by the last reservation = %v, %v; want a match without waiting", match, err)
	}
	if st := p.Stats(); st.WaitTotal != 0 || st.Admitted != 1 || st.Waiting != 2 {
		t.Errorf("Stats = %+v; want one admitted without waiting and two still in line", st)
	}
}

func TestCancelAfterTheWorkDoesNothing(t *testing.T) {
	p := newPool(t, Options{Workers: 1, Queue: 0, MaxWait: time.Hour, Cost: bcrypt.MinCost})
	hash := cheapHash(t, testPassword)
	r, err := p.Reserve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if match, err := r.Compare(t.Context(), hash, testPassword); err != nil || !match {
		t.Fatalf("Compare = %v, %v; want a match", match, err)
	}
	r.Cancel()
	r.Cancel()
	if _, err := r.Compare(t.Context(), hash, testPassword); err == nil || errors.Is(err, ErrBusy) {
		t.Errorf("a second Compare on one reservation = %v; want an error that is not ErrBusy", err)
	}

	// Had the reservation left the line more than once, the pool would count one caller too
	// few and admit a caller beyond its bound: here, one while its only worker is held.
	h := hold(t, p, 1)
	holderDone := holdOneWorker(t, p, h, hash)
	if extra, err := p.Reserve(t.Context()); !errors.Is(err, ErrBusy) {
		if extra != nil {
			extra.Cancel()
		}
		t.Errorf("with the only worker held and no queue, Reserve = %v; want ErrBusy", err)
	}
	h.letGo()
	if err := receive(t, "the holder to finish", holderDone); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Admitted != 2 || st.Busy != 0 || st.Waiting != 0 {
		t.Errorf("Stats = %+v; want 2 admitted, nothing busy or waiting", st)
	}
}

func TestMaxWaitCountsFromTheReservation(t *testing.T) {
	tests := []struct {
		name       string
		holdWorker bool
		wantErr    error
	}{
		{"a reservation that spent MaxWait elsewhere and finds every worker busy is refused at once", true, ErrBusy},
		{"a reservation that spent MaxWait elsewhere and finds a worker free still does its work", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, Options{Workers: 1, Queue: 1, MaxWait: time.Hour, Cost: bcrypt.MinCost})
			hash := cheapHash(t, testPassword)
			h := hold(t, p, 1)
			var holderDone <-chan error
			if tt.holdWorker {
				holderDone = holdOneWorker(t, p, h, hash)
			} else {
				h.letGo()
				free := make(chan error, 1)
				free <- nil
				holderDone = free
			}

			r, err := p.Reserve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			r.since = r.since.Add(-time.Hour) // as if the caller's own work had taken MaxWait
			// The deadline only keeps a pool that waits a fresh MaxWait from hanging the run.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if _, err := r.Compare(ctx, hash, testPassword); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Compare = %v, want %v", err, tt.wantErr)
			}
			h.letGo()
			if err := receive(t, "the holder to finish", holderDone); err != nil {
				t.Fatal(err)
			}
			// The wait OnWait and WaitTotal see starts at Compare, not at Reserve.
			if st := p.Stats(); st.Waiting != 0 || st.Busy != 0 || st.WaitTotal != 0 {
				t.Errorf("Stats = %+v; want nothing waiting or busy, and no time spent waiting", st)
			}
		})
	}
}

func TestExpectedWait(t *testing.T) {
	tests := []struct {
		name           string
		ahead, workers int64
		avgHash        time.Duration
		want           time.Duration
	}{
		{"with a worker free there is no wait", 1, 2, time.Second, 0},
		{"with no hash measured there is no estimate", 40, 2, 0, 0},
		{"with every worker busy and nobody in line, one round and the margin", 2, 2, time.Second, 2 * time.Second},
		{"one in line with two workers still gets a worker in the first round", 3, 2, time.Second, 2 * time.Second},
		{"a full round in line adds a round", 4, 2, time.Second, 3 * time.Second},
		{"64 callers ahead of two workers wait 32 rounds and the margin", 64, 2, 70 * time.Millisecond, 33 * 70 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expectedWait(tt.ahead, tt.workers, tt.avgHash); got != tt.want {
				t.Errorf("expectedWait(%d, %d, %s) = %s, want %s", tt.ahead, tt.workers, tt.avgHash, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name             string
		waiting, workers int
		avgHash          time.Duration
		want             time.Duration
	}{
		{"with no hash measured yet it suggests one second", 10, 2, 0, time.Second},
		{"a short queue of fast hashes still suggests one second", 3, 4, 100 * time.Millisecond, time.Second},
		{"an empty queue needs one round", 0, 4, 1500 * time.Millisecond, 2 * time.Second},
		{"a deep queue scales with the callers per worker", 64, 8, 250 * time.Millisecond, 3 * time.Second},
		{"a partial round of waiters costs a whole round", 9, 8, 400 * time.Millisecond, 2 * time.Second},
		{"an exact number of seconds is not rounded further", 8, 8, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.waiting, tt.workers, tt.avgHash); got != tt.want {
				t.Errorf("retryAfter(%d, %d, %s) = %s, want %s", tt.waiting, tt.workers, tt.avgHash, got, tt.want)
			}
		})
	}

	t.Run("a fresh pool suggests one second", func(t *testing.T) {
		p := newPool(t, Options{Workers: 1, Cost: bcrypt.MinCost})
		if got := p.RetryAfter(); got != time.Second {
			t.Errorf("RetryAfter = %s, want 1s", got)
		}
	})
}

func TestHashTimeIsMeasured(t *testing.T) {
	tests := []struct {
		name         string
		call         func(*Pool) error
		wantMeasured bool
	}{
		{"a hash is measured", func(p *Pool) error {
			_, err := p.Hash(t.Context(), testPassword)
			return err
		}, true},
		{"a comparison that does not match is measured", func(p *Pool) error {
			_, err := p.Compare(t.Context(), cheapHash(t, testPassword), otherPassword)
			return err
		}, true},
		{"a corrupt hash is not measured, since it fails before the expensive work", func(p *Pool) error {
			good := cheapHash(t, testPassword)
			badSalt := string(good[:7]) + strings.Repeat("!", 22) + string(good[29:])
			_, err := p.Compare(t.Context(), []byte(badSalt), testPassword)
			if err == nil {
				return errors.New("a corrupt hash compared without error")
			}
			return nil
		}, false},
		{"a password too long to hash is not measured", func(p *Pool) error {
			if _, err := p.Hash(t.Context(), make([]byte, 73)); err == nil {
				return errors.New("a 73-byte password hashed without error")
			}
			return nil
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, Options{Workers: 1, Cost: bcrypt.MinCost})
			if err := tt.call(p); err != nil {
				t.Fatal(err)
			}
			if measured := p.avgHash.Load() > 0; measured != tt.wantMeasured {
				t.Errorf("average hash time = %s, measured %v; want measured %v",
					time.Duration(p.avgHash.Load()), measured, tt.wantMeasured)
			}
		})
	}
}

func TestMovingAverage(t *testing.T) {
	tests := []struct {
		name        string
		avg, sample time.Duration
		want        time.Duration
	}{
		{"the first sample becomes the average", 0, 80 * time.Millisecond, 80 * time.Millisecond},
		{"a slower sample moves the average an eighth of the way up", 80 * time.Millisecond, 160 * time.Millisecond, 90 * time.Millisecond},
		{"a faster sample moves the average an eighth of the way down", 80 * time.Millisecond, 0, 70 * time.Millisecond},
		{"an equal sample leaves the average alone", 80 * time.Millisecond, 80 * time.Millisecond, 80 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := movingAverage(tt.avg, tt.sample); got != tt.want {
				t.Errorf("movingAverage(%s, %s) = %s, want %s", tt.avg, tt.sample, got, tt.want)
			}
		})
	}
}

// BenchmarkCompare reports the cost of one comparison at bcrypt cost 10 through the pool, alone
// and with as many callers as workers. Timings are reported, never asserted.
func BenchmarkCompare(b *testing.B) {
	const cost = 10
	hash, err := bcrypt.GenerateFromPassword(testPassword, cost)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("one caller", func(b *testing.B) {
		p := newPool(b, Options{Workers: 1, Cost: cost})
		for b.Loop() {
			if ok, err := p.Compare(b.Context(), hash, testPassword); err != nil || !ok {
				b.Fatalf("Compare = %v, %v", ok, err)
			}
		}
	})

	b.Run("as many callers as workers", func(b *testing.B) {
		p := newPool(b, Options{Cost: cost, Queue: DefaultQueue})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ok, err := p.Compare(context.Background(), hash, testPassword); err != nil || !ok {
					b.Errorf("Compare = %v, %v", ok, err)
					return
				}
			}
		})
		b.ReportMetric(float64(p.Stats().Rejected), "rejected")
	})
}
