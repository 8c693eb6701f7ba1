// Package service is Authly's domain: users and roles, password logins, sessions and their
// refresh-token rotation, lockout, rate limits, audit and cleanup, and the account flows
// (verification, password reset and email change by one-time emailed links, re-authentication
// for sensitive changes) with the mail they queue in internal/mail's outbox. It takes and returns its own
// Go types and *Error values, records its own metrics, and runs every statement through the
// sqlc queries of internal/gen/db. It knows nothing of HTTP: internal/httpapi adapts it to the
// contract.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/mail"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/password"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/token"
)

// Deps are what a Service needs. Clock and the password hashing are fields, not globals, so
// tests can control them.
type Deps struct {
	Pool   *pgxpool.Pool
	Tokens *token.Issuer
	// PasswordHasher makes new password hashes; nil means bcrypt at BcryptCost. It is used only
	// when Hasher is nil: a given Hasher brings its own.
	PasswordHasher password.Hasher
	BcryptCost     int
	Clock          func() time.Time
	Logger         *slog.Logger
	Sessions       SessionPolicy // zero fields take their defaults
	// AcquireTimeout bounds the wait for a pooled connection; zero means the request's own
	// deadline.
	AcquireTimeout time.Duration
	Metrics        *metrics.Metrics // nil turns metrics off

	// Abuse protection (docs/security.md). Zero values turn each protection off, except the
	// bcrypt pool; config.Load supplies the defaults the server runs with.
	Hasher      *hashpool.Pool    // password hashing; nil: GOMAXPROCS workers, hashpool.DefaultQueue waiting, with PasswordHasher
	RateLimiter ratelimit.Limiter // where rate limits count; nil: in memory, on Clock
	RateLimits  RateLimits
	Lockout     LockoutPolicy

	// Account flows (docs/security.md, "Account mail"). Mail queues messages in the outbox;
	// nil renders the embedded templates (messages are queued, and sent by whichever worker
	// drains the outbox). PublicURL is the base of emailed links; empty means
	// DefaultPublicURL. Verification's zero value is VerifyByEmail. MailLimits' zero limits are
	// off.
	Mail         *mail.Outbox
	PublicURL    string
	Verification Verification
	MailLimits   MailLimits
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

	outbox       *mail.Outbox
	publicURL    string
	verification Verification
	mailLimits   MailLimits
	deferred     deferredWork
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
		pool, err := hashpool.New(hashpool.Options{Queue: hashpool.DefaultQueue, Cost: d.BcryptCost, Hasher: d.PasswordHasher})
		if err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
		d.Hasher = pool
	}
	if d.RateLimiter == nil {
		d.RateLimiter = ratelimit.NewMemory(d.Clock)
	}
	// Made by the pool's own Hasher, so that an unknown name costs what a known one does under
	// the configured algorithm and parameters.
	dummy, err := d.Hasher.Hash(context.Background(), []byte("authly-dummy-password-for-unknown-users"))
	if err != nil {
		return nil, fmt.Errorf("service: computing dummy hash: %w", err)
	}
	if d.Mail == nil {
		templates, err := mail.LoadTemplates("")
		if err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
		d.Mail = mail.NewOutbox(templates, "")
	}
	if d.PublicURL == "" {
		d.PublicURL = DefaultPublicURL
	}
	switch d.Verification {
	case "":
		d.Verification = VerifyByEmail
	case VerifyByEmail, VerifyByAdmin, VerifyOff:
	default:
		return nil, fmt.Errorf("service: unknown verification mode %q", d.Verification)
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

		outbox:       d.Mail,
		publicURL:    strings.TrimRight(d.PublicURL, "/"),
		verification: d.Verification,
		mailLimits:   d.MailLimits,
		deferred:     deferredWork{slots: make(chan struct{}, maxDeferred)},
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
