// Package keys owns Authly's token-signing keys. It makes them (in memory, stored sealed
// under a key-encryption key, or inside an HSM), keeps them in PostgreSQL, publishes a key
// before it signs, rotates the signing key on a schedule, retires keys once every token they
// signed has expired, and revokes a compromised key on demand. A Store hands token.Issuer
// the current keys (it is a token.KeySource) and the HTTP layer the JWKS.
//
// Several instances share one store through the database: one of them at a time, holding a
// PostgreSQL advisory lock, rotates and retires; every instance polls a cheap fingerprint of
// the published keys every few seconds and rebuilds its keys when it changes.
package keys

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// The states of a key, in the order a key passes through them. A key of any state but
// retired may be revoked.
const (
	StateNext     = "next"     // published, not signing yet
	StateCurrent  = "current"  // signing
	StatePrevious = "previous" // published until every token it signed has expired
	StateRetired  = "retired"  // gone from the JWKS; its private half erased
	StateRevoked  = "revoked"  // withdrawn at once, for a key that may be compromised
)

// Defaults of Options.
const (
	DefaultRotationInterval = 30 * 24 * time.Hour
	DefaultJWKSMaxAge       = 5 * time.Minute
	DefaultPollInterval     = 2 * time.Second
)

// retireMargin is added to the time a previous key stays published, for clocks that
// disagree and instances slow to notice a rotation.
const retireMargin = time.Minute

// Errors of the store's operations.
var (
	ErrNotFound        = errors.New("keys: no such key")
	ErrRotationTooSoon = errors.New("keys: the next key has not been published long enough to sign")
	ErrNoCurrentKey    = errors.New("keys: no current key can sign")
)

// Options configures Open.
type Options struct {
	DB *pgxpool.Pool
	// Algorithm of the keys made from now on: ES256 (the default), EdDSA or RS256. When it
	// changes, a key of the new algorithm is published and takes over once published for
	// JWKSMaxAge.
	Algorithm string
	// Backend is where new keys are made: BackendSoftware (the default) or BackendPKCS11.
	Backend string
	// KEK is the 32-byte key-encryption key that seals software keys. It is needed to make
	// or use software keys, so keep it configured while any software key is current.
	KEK []byte
	// HSM makes and holds BackendPKCS11 keys.
	HSM HSM
	// TokenLifetime is the longest lifetime of a token a key signs (the refresh-token TTL): a
	// key stays published that long after it stops signing. Required.
	TokenLifetime time.Duration
	// RotationInterval is how long a key signs before the next one takes over.
	RotationInterval time.Duration
	// JWKSMaxAge is how long clients may cache the JWKS. A new key is published at least
	// this long (plus PollInterval) before it signs.
	JWKSMaxAge time.Duration
	// PollInterval is how often Run looks for keys changed by another instance.
	PollInterval time.Duration
	Now          func() time.Time // defaults to time.Now
	Logger       *slog.Logger     // defaults to slog.Default()
}

// Store is the key store. It is safe for concurrent use.
type Store struct {
	pool        *pgxpool.Pool
	q           *db.Queries
	alg         string
	backend     string
	kek         *kek
	hsm         HSM
	interval    time.Duration
	maxAge      time.Duration
	poll        time.Duration
	prepublish  time.Duration // how long a next key is published before it may sign
	retireAfter time.Duration // how long a previous key stays published
	now         func() time.Time
	log         *slog.Logger

	snap      atomic.Pointer[snapshot]
	refreshMu sync.Mutex               // one rebuild at a time
	signers   map[string]crypto.Signer // the current key's signer, by kid; under refreshMu
}

// Key describes a key without any private material.
type Key struct {
	ID           string
	Algorithm    string
	State        string
	Backend      string
	HSMLabel     string    // the PKCS #11 label of an HSM key
	CreatedAt    time.Time // made and published as next
	ActivatedAt  time.Time // started signing; zero if it never did
	SupersededAt time.Time // stopped signing; zero while it signs or if it never did
	RetiredAt    time.Time
	RevokedAt    time.Time
}

// Open checks opts, loads the published keys, makes the first keys of an empty store, and
// brings the timeline up to date (a rotation or retirement that fell due while no instance
// ran). It fails when the current key cannot sign here, for example under the wrong KEK.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	if err := s.refresh(ctx, true); err != nil {
		return nil, err
	}
	if s.due(s.snap.Load(), s.now()) {
		if _, err := s.maintain(ctx, true); err != nil {
			return nil, err
		}
		if err := s.refresh(ctx, true); err != nil {
			return nil, err
		}
	}
	snap := s.snap.Load()
	if snap.set.Signing() == nil {
		if snap.loadErr != nil {
			return nil, snap.loadErr
		}
		return nil, ErrNoCurrentKey
	}
	return s, nil
}

func newStore(opts Options) (*Store, error) {
	if opts.DB == nil {
		return nil, errors.New("keys: no database")
	}
	if opts.Algorithm == "" {
		opts.Algorithm = token.ES256
	}
	if !token.Asymmetric(opts.Algorithm) {
		return nil, fmt.Errorf("keys: unsupported algorithm %q (want ES256, EdDSA or RS256)", opts.Algorithm)
	}
	if opts.Backend == "" {
		opts.Backend = BackendSoftware
	}
	s := &Store{
		pool:     opts.DB,
		q:        db.New(opts.DB),
		alg:      opts.Algorithm,
		backend:  opts.Backend,
		hsm:      opts.HSM,
		interval: cmpOr(opts.RotationInterval, DefaultRotationInterval),
		maxAge:   cmpOr(opts.JWKSMaxAge, DefaultJWKSMaxAge),
		poll:     cmpOr(opts.PollInterval, DefaultPollInterval),
		now:      opts.Now,
		log:      opts.Logger,
		signers:  map[string]crypto.Signer{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.KEK != nil {
		k, err := newKEK(opts.KEK)
		if err != nil {
			return nil, err
		}
		s.kek = k
	}
	switch s.backend {
	case BackendSoftware:
		if s.kek == nil {
			return nil, errors.New("keys: the software backend needs a key-encryption key")
		}
	case BackendPKCS11:
		if s.hsm == nil {
			return nil, errors.New("keys: the pkcs11 backend needs an HSM")
		}
		if s.alg == token.EdDSA {
			return nil, errors.New("keys: the pkcs11 backend makes ES256 and RS256 keys, not EdDSA")
		}
	default:
		return nil, fmt.Errorf("keys: unknown backend %q (want %s or %s)", s.backend, BackendSoftware, BackendPKCS11)
	}
	if opts.TokenLifetime <= 0 {
		return nil, errors.New("keys: the token lifetime is required")
	}
	if s.maxAge < 0 || s.poll < 0 || s.interval < 0 {
		return nil, errors.New("keys: negative interval")
	}
	s.prepublish = s.maxAge + s.poll
	if s.interval <= s.prepublish {
		return nil, fmt.Errorf("keys: the rotation interval (%s) must be longer than the JWKS max age plus the poll interval (%s)", s.interval, s.prepublish)
	}
	s.retireAfter = opts.TokenLifetime + s.poll + token.Leeway + retireMargin
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// KeySet returns the keys that sign and verify now. It implements token.KeySource.
func (s *Store) KeySet() *token.KeySet { return s.snap.Load().set }

// JWKS returns the JSON Web Key Set (RFC 7517) of the published keys: the current one, the
// next one and the previous ones, public members only. The body is built once per change of
// keys; callers must not modify it.
func (s *Store) JWKS() []byte { return s.snap.Load().jwks }

// JWKSMaxAge is how long clients may cache the JWKS, for its Cache-Control header.
func (s *Store) JWKSMaxAge() time.Duration { return s.maxAge }

// List returns every key ever made, newest first, without private material.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	rows, err := s.q.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: listing: %w", err)
	}
	out := make([]Key, 0, len(rows))
	for _, r := range rows {
		out = append(out, Key{
			ID: r.Kid, Algorithm: r.Algorithm, State: r.State, Backend: r.Backend,
			HSMLabel: deref(r.HsmLabel), CreatedAt: r.CreatedAt, ActivatedAt: derefTime(r.ActivatedAt),
			SupersededAt: derefTime(r.SupersededAt), RetiredAt: derefTime(r.RetiredAt), RevokedAt: derefTime(r.RevokedAt),
		})
	}
	return out, nil
}

// Run keeps the store current until ctx ends: every PollInterval it looks for keys changed
// by another instance, and when a rotation or retirement is due it tries to take the store's
// lock and carry it out (the instance that gets the lock does; the others skip). Errors are
// logged and retried on the next tick. It returns nil when ctx ends.
func (s *Store) Run(ctx context.Context) error {
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		err := s.tick(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			s.log.Warn("signing keys: refresh failed; keeping the keys loaded before", slog.Any("error", err))
			failing = true
		case err == nil && failing:
			s.log.Info("signing keys: refresh works again")
			failing = false
		}
	}
}

// tick is one pass of Run.
func (s *Store) tick(ctx context.Context) error {
	if err := s.refresh(ctx, false); err != nil {
		return err
	}
	if !s.due(s.snap.Load(), s.now()) {
		return nil
	}
	changed, err := s.maintain(ctx, false)
	if err != nil || !changed {
		return err
	}
	return s.refresh(ctx, true)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefTime(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return *p
}
