// Package service is Authly's hand-written layer between the generated HTTP contract and the
// generated queries: password hashing, token issuance and verification, and the rules of the
// user and role model. The domain side speaks Go; api.go adapts it to the strict server.
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
	"github.com/authly/authly/internal/metrics"
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
}

// Service implements Authly's use cases.
type Service struct {
	pool       *pgxpool.Pool
	q          *db.Queries
	tokens     *token.Issuer
	bcryptCost int
	now        func() time.Time
	log        *slog.Logger
	sessions   SessionPolicy
	db         *database.Bounded
	metrics    *metrics.Metrics
	// phase is starting, serving or draining; readiness reports it.
	phase atomic.Int32
	// dummyHash is compared against when a login names no account, so that an unknown name
	// costs the same bcrypt work as a known one.
	dummyHash []byte
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
	dummy, err := bcrypt.GenerateFromPassword([]byte("authly-dummy-password-for-unknown-users"), d.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("service: computing dummy hash: %w", err)
	}
	bounded := &database.Bounded{Pool: d.Pool, AcquireTimeout: d.AcquireTimeout}
	return &Service{
		pool:       d.Pool,
		db:         bounded,
		metrics:    d.Metrics,
		q:          db.New(bounded),
		tokens:     d.Tokens,
		bcryptCost: d.BcryptCost,
		now:        d.Clock,
		log:        d.Logger,
		sessions:   d.Sessions.withDefaults(),
		dummyHash:  dummy,
	}, nil
}

// inTx runs fn in one transaction: it commits when fn returns nil and rolls back otherwise.
func (s *Service) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return dbError(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := fn(s.q.WithTx(tx)); err != nil {
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
	if err := s.pool.Ping(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

func (s *Service) hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.bcryptCost)
	if err != nil {
		return "", internal(err)
	}
	return string(h), nil
}

// checkPassword compares a password with a stored hash; a nil hash compares against the
// dummy hash and always fails.
func (s *Service) checkPassword(hash []byte, password string) bool {
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}
