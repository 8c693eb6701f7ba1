// Package service is Authly's domain: users and roles, password logins, sessions and their
// refresh-token rotation, lockout, rate limits, audit and cleanup. It takes and returns its own
// Go types and *Error values, records its own metrics, and runs every statement through the
// sqlc queries of internal/gen/db. It knows nothing of HTTP: internal/httpapi adapts it to the
// contract.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/token"
)

// Deps are what a Service needs. Clock and BcryptCost are fields, not globals, so tests can
// control them.
type Deps struct {
	Pool       *pgxpool.Pool
	Tokens     *token.Issuer
	BcryptCost int
	Clock      func() time.Time
	Logger     *slog.Logger
	Sessions   SessionPolicy // zero fields take their defaults
	// AcquireTimeout bounds the wait for a pooled connection; zero means the request's own
	// deadline.
	AcquireTimeout time.Duration
	Metrics        *metrics.Metrics // nil turns metrics off

	// Abuse protection (docs/security.md). Zero values turn each protection off, except the
	// bcrypt pool; config.Load supplies the defaults the server runs with.
	Hasher      *hashpool.Pool    // bcrypt work; nil: GOMAXPROCS workers, hashpool.DefaultQueue waiting, at BcryptCost
	RateLimiter ratelimit.Limiter // where rate limits count; nil: in memory, on Clock
	RateLimits  RateLimits
	Lockout     LockoutPolicy
}

// Service implements Authly's use cases.
type Service struct {
	// store is the one database handle: every query, transaction and pipeline goes through
	// it, so that every wait for a connection is bounded alike.
	store    *database.Bounded
	tokens   *token.Issuer
	now      func() time.Time
	log      *slog.Logger
	sessions SessionPolicy
	metrics  *metrics.Metrics
	// phase is starting, serving or draining; readiness reports it.
	phase   atomic.Int32
	hasher  *hashpool.Pool
	limiter ratelimit.Limiter
	limits  RateLimits
	lockout LockoutPolicy
	// dummyHash is compared against when a login names no account, so that an unknown name
	// costs the same bcrypt work as a known one. It is made by the pool, at the pool's cost.
	dummyHash []byte
	// storeFailures throttles the log line for a failing rate limit store.
	storeFailures storeFailureLog
	// busyAudit throttles, per instance, the question whether to audit a server_busy.
	busyAudit onceEvery
}

// New builds a Service.
func New(d Deps) (*Service, error) {
	if d.Pool == nil || d.Tokens == nil {
		return nil, errors.New("service: pool and token issuer are required")
	}
	if d.BcryptCost == 0 {
		d.BcryptCost = bcrypt.DefaultCost
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Hasher == nil {
		pool, err := hashpool.New(hashpool.Options{Queue: hashpool.DefaultQueue, Cost: d.BcryptCost})
		if err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
		d.Hasher = pool
	}
	if d.RateLimiter == nil {
		d.RateLimiter = ratelimit.NewMemory(d.Clock)
	}
	dummy, err := d.Hasher.Hash(context.Background(), []byte("authly-dummy-password-for-unknown-users"))
	if err != nil {
		return nil, fmt.Errorf("service: computing dummy hash: %w", err)
	}
	return &Service{
		store:     &database.Bounded{Pool: d.Pool, AcquireTimeout: d.AcquireTimeout},
		metrics:   d.Metrics,
		tokens:    d.Tokens,
		now:       d.Clock,
		log:       d.Logger,
		sessions:  d.Sessions.withDefaults(),
		hasher:    d.Hasher,
		limiter:   d.RateLimiter,
		limits:    d.RateLimits,
		lockout:   d.Lockout.withDefaults(),
		dummyHash: dummy,
	}, nil
}

// queries are the generated queries on the store, outside any transaction.
func (s *Service) queries() *db.Queries { return db.New(s.store) }

// inTx runs fn in one transaction: it commits when fn returns nil and rolls back otherwise.
func (s *Service) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.store.Begin(ctx)
	if err != nil {
		return dbError(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := fn(db.New(tx)); err != nil {
		return dbError(err)
	}
	return dbError(tx.Commit(ctx))
}

// Lifecycle phases, as readiness reports them.
const (
	PhaseStarting = "starting"
	PhaseServing  = "serving"
	PhaseDraining = "draining"
)

var phases = []string{PhaseStarting, PhaseServing, PhaseDraining}

// MarkServing makes readiness answer 200 (while the database answers).
func (s *Service) MarkServing() { s.phase.Store(1) }

// MarkDraining makes readiness answer 503, so load balancers stop sending traffic while
// in-flight requests finish.
func (s *Service) MarkDraining() { s.phase.Store(2) }

// Phase reports the lifecycle phase.
func (s *Service) Phase() string { return phases[s.phase.Load()] }

// Health pings the database. It returns an unavailable error when the ping fails.
func (s *Service) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Pool.Ping(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}
