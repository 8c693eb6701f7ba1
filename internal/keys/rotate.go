package keys

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// The timeline of one key, with the defaults (30-day rotation, 5-minute JWKS max age, 2-second
// poll, 7-day refresh tokens):
//
//	created as next ──(RotationInterval of the key before it)──▶ current ──(RotationInterval)──▶
//	previous ──(TokenLifetime + PollInterval + leeway + 1 minute)──▶ retired
//
// A new next key is made as soon as the one before it becomes current, so it is published a
// whole RotationInterval before it signs; it may never sign until it has been published for
// JWKSMaxAge + PollInterval, so every client that caches the JWKS for at most JWKSMaxAge
// knows it before it sees a token it signed. A previous key stays published until the last
// token it signed has expired, including tokens signed by instances that noticed the
// rotation up to PollInterval late.

// txState gathers what a transaction did, for the work that follows its commit.
type txState struct {
	changed   bool
	rotatedTo string   // the kid that became current, if any
	made      []HSMRef // HSM keys made: destroyed again if the transaction fails
	removed   []HSMRef // HSM keys retired or revoked: destroyed once the transaction commits
}

// inTx runs fn in a transaction that holds the key store's advisory lock. With wait false it
// does not wait for the lock: it returns false when another instance holds it.
func (s *Store) inTx(ctx context.Context, wait bool, fn func(q *db.Queries, st *txState) error) (bool, *txState, error) {
	st := &txState{}
	err := func() error {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		q := s.q.WithTx(tx)
		if wait {
			if err := q.LockSigningKeys(ctx); err != nil {
				return err
			}
		} else {
			locked, err := q.TryLockSigningKeys(ctx)
			if err != nil {
				return err
			}
			if !locked {
				return errNotLocked
			}
		}
		if err := fn(q, st); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}()
	if errors.Is(err, errNotLocked) {
		return false, st, nil
	}
	if err != nil {
		s.destroy(ctx, st.made, "cleaning up after a failed change")
		return true, st, err
	}
	s.destroy(ctx, st.removed, "erasing a retired or revoked key")
	return true, st, nil
}

var errNotLocked = errors.New("keys: lock held elsewhere")

// destroy deletes HSM keys, logging failures: a key left in the HSM is unreachable from the
// published set, so failing here never reopens a key.
func (s *Store) destroy(ctx context.Context, refs []HSMRef, why string) {
	for _, ref := range refs {
		if s.hsm == nil {
			s.log.Warn("signing keys: no HSM configured to delete a key from", slog.String("label", ref.Label), slog.String("reason", why))
			continue
		}
		if err := s.hsm.Destroy(context.WithoutCancel(ctx), ref); err != nil {
			s.log.Warn("signing keys: deleting a key from the HSM failed", slog.String("label", ref.Label), slog.String("reason", why), slog.Any("error", err))
		}
	}
}

// maintain brings the store's timeline up to date. It reports whether it changed anything.
func (s *Store) maintain(ctx context.Context, wait bool) (bool, error) {
	_, st, err := s.inTx(ctx, wait, func(q *db.Queries, st *txState) error {
		_, err := s.advance(ctx, q, st, false)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("keys: maintenance: %w", err)
	}
	return st.changed, nil
}

// Rotate makes the next key current now, rather than when the rotation interval ends, and
// publishes a new next key. It fails with ErrRotationTooSoon while the next key has not
// been published for JWKSMaxAge plus the poll interval. It returns the new current key.
func (s *Store) Rotate(ctx context.Context) (Key, error) {
	var rotatedTo string
	_, _, err := s.inTx(ctx, true, func(q *db.Queries, st *txState) error {
		rotated, err := s.advance(ctx, q, st, true)
		if err != nil {
			return err
		}
		if !rotated {
			return ErrRotationTooSoon
		}
		rotatedTo = st.rotatedTo
		return nil
	})
	if err != nil {
		return Key{}, err
	}
	if err := s.refresh(ctx, true); err != nil {
		return Key{}, err
	}
	return s.key(ctx, rotatedTo)
}

// Revoke withdraws a key at once, for a key that may be compromised: it leaves the JWKS and
// every instance's key set at their next poll, so every token it signed fails from then on.
// When it was the current key, the next key takes over immediately (it has been published
// since the last rotation) and a new next key is made. Its private half is erased, or
// deleted from the HSM. Revoking a revoked key changes nothing. It fails with ErrNotFound
// for an unknown kid.
func (s *Store) Revoke(ctx context.Context, kid string) (Key, error) {
	if !token.ValidKeyID(kid) {
		return Key{}, ErrNotFound
	}
	_, _, err := s.inTx(ctx, true, func(q *db.Queries, st *txState) error {
		row, err := q.GetSigningKeyForUpdate(ctx, kid)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if row.State == StateRevoked {
			return nil
		}
		if _, err := q.RevokeSigningKey(ctx, db.RevokeSigningKeyParams{Kid: kid, Now: s.now()}); err != nil {
			return err
		}
		if row.Backend == BackendPKCS11 && row.State != StateRetired && row.HsmLabel != nil {
			st.removed = append(st.removed, HSMRef{ID: row.HsmKeyID, Label: *row.HsmLabel})
		}
		_, err = s.advance(ctx, q, st, false)
		return err
	})
	if err != nil {
		return Key{}, err
	}
	s.log.Warn("signing key revoked", slog.String("kid", kid))
	if err := s.refresh(ctx, true); err != nil {
		return Key{}, err
	}
	return s.key(ctx, kid)
}

// key returns one key's description.
func (s *Store) key(ctx context.Context, kid string) (Key, error) {
	all, err := s.List(ctx)
	if err != nil {
		return Key{}, err
	}
	for _, k := range all {
		if k.ID == kid {
			return k, nil
		}
	}
	return Key{}, ErrNotFound
}

// split sorts published rows by state.
func split(rows []keyRow) (current, next *keyRow, previous []keyRow) {
	for i := range rows {
		switch rows[i].state {
		case StateCurrent:
			current = &rows[i]
		case StateNext:
			next = &rows[i]
		case StatePrevious:
			previous = append(previous, rows[i])
		}
	}
	return current, next, previous
}

// matches reports whether a key is of the configured algorithm and backend.
func (s *Store) matches(r *keyRow) bool { return r.alg == s.alg && r.backend == s.backend }

// due reports, from a snapshot, whether advance would change anything now.
func (s *Store) due(snap *snapshot, now time.Time) bool {
	current, next, previous := split(snap.rows)
	switch {
	case current == nil || next == nil:
		return true
	case s.replaceNext(next, now):
		return true
	case s.rotationDue(current, now) && s.published(next, now):
		return true
	}
	return slices.ContainsFunc(previous, func(p keyRow) bool { return s.retireDue(&p, now) })
}

func (s *Store) rotationDue(current *keyRow, now time.Time) bool {
	return !now.Before(current.activatedAt.Add(s.interval)) || !s.matches(current)
}

// published reports whether next has been published long enough to sign.
func (s *Store) published(next *keyRow, now time.Time) bool {
	return !now.Before(next.createdAt.Add(s.prepublish))
}

// replaceNext reports whether a next key of another algorithm or backend than configured
// should give way to one that matches. It waits until the key has been published for a
// while, so that instances of two configurations during a rolling change replace each
// other's next key at most once per JWKS max age instead of on every poll.
func (s *Store) replaceNext(next *keyRow, now time.Time) bool {
	return !s.matches(next) && s.published(next, now)
}

func (s *Store) retireDue(previous *keyRow, now time.Time) bool {
	return !now.Before(previous.supersededAt.Add(s.retireAfter))
}

// advance applies the timeline inside a locked transaction, from the rows as they are now:
// it gives the store a current key if it has none, replaces a next key of the wrong kind,
// rotates when due (or, with force, whenever the next key has been published long enough),
// makes a next key if there is none, and retires previous keys whose tokens have all
// expired. It reports whether it rotated.
func (s *Store) advance(ctx context.Context, q *db.Queries, st *txState, force bool) (bool, error) {
	dbRows, err := q.ListPublishedSigningKeys(ctx)
	if err != nil {
		return false, err
	}
	rows := make([]keyRow, 0, len(dbRows))
	for _, r := range dbRows {
		rows = append(rows, rowFrom(r))
	}
	current, next, previous := split(rows)
	now := s.now()

	if next != nil && s.replaceNext(next, now) {
		if err := s.retire(ctx, q, st, next, now); err != nil {
			return false, err
		}
		next = nil
	}
	if current == nil {
		// An empty store, or one whose current key was just revoked: there is no key to
		// wait for, so the next key (published since the last rotation) or a new key
		// signs at once.
		if next != nil && s.matches(next) {
			if err := s.activate(ctx, q, st, next.kid, now); err != nil {
				return false, err
			}
			current, next = next, nil
		} else {
			made, err := s.create(ctx, q, st, StateCurrent, now)
			if err != nil {
				return false, err
			}
			current = &made
		}
	}
	rotated := false
	if next != nil && (force || s.rotationDue(current, now)) && s.published(next, now) && s.matches(next) {
		n, err := q.SupersedeSigningKey(ctx, db.SupersedeSigningKeyParams{Kid: current.kid, Now: now})
		if err != nil {
			return false, err
		}
		if n != 1 {
			return false, fmt.Errorf("key %s is no longer current", current.kid)
		}
		if err := s.activate(ctx, q, st, next.kid, now); err != nil {
			return false, err
		}
		s.log.Info("signing key rotated", slog.String("from", current.kid), slog.String("to", next.kid))
		rotated, next = true, nil
	}
	if next == nil {
		if _, err := s.create(ctx, q, st, StateNext, now); err != nil {
			return false, err
		}
	}
	for i := range previous {
		if s.retireDue(&previous[i], now) {
			if err := s.retire(ctx, q, st, &previous[i], now); err != nil {
				return false, err
			}
		}
	}
	return rotated, nil
}

func (s *Store) activate(ctx context.Context, q *db.Queries, st *txState, kid string, now time.Time) error {
	n, err := q.ActivateSigningKey(ctx, db.ActivateSigningKeyParams{Kid: kid, Now: now})
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("key %s is no longer next", kid)
	}
	st.changed, st.rotatedTo = true, kid
	return nil
}

func (s *Store) retire(ctx context.Context, q *db.Queries, st *txState, r *keyRow, now time.Time) error {
	n, err := q.RetireSigningKey(ctx, db.RetireSigningKeyParams{Kid: r.kid, Now: now})
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("key %s is no longer %s", r.kid, r.state)
	}
	if r.backend == BackendPKCS11 {
		st.removed = append(st.removed, r.hsm)
	}
	st.changed = true
	s.log.Info("signing key retired", slog.String("kid", r.kid))
	return nil
}

// create makes a key in the configured algorithm and backend and stores it in state.
func (s *Store) create(ctx context.Context, q *db.Queries, st *txState, state string, now time.Time) (keyRow, error) {
	kid, err := newKID(now)
	if err != nil {
		return keyRow{}, err
	}
	m, err := s.makeKey(ctx, kid)
	if err != nil {
		return keyRow{}, err
	}
	p := db.InsertSigningKeyParams{
		Kid: kid, Algorithm: s.alg, State: state, Backend: s.backend, PublicKey: m.publicDER,
		PrivateKey: m.sealed, CreatedAt: now,
	}
	if m.sealed != nil {
		p.KekID = &m.kekID
	}
	if m.hsm != nil {
		st.made = append(st.made, *m.hsm)
		p.HsmKeyID, p.HsmLabel = m.hsm.ID, &m.hsm.Label
	}
	if state == StateCurrent {
		p.ActivatedAt = &now
		st.rotatedTo = kid
	}
	if err := q.InsertSigningKey(ctx, p); err != nil {
		return keyRow{}, err
	}
	st.changed = true
	s.log.Info("signing key made", slog.String("kid", kid), slog.String("state", state), slog.String("algorithm", s.alg), slog.String("backend", s.backend))
	r := keyRow{kid: kid, alg: s.alg, state: state, backend: s.backend, createdAt: now}
	if state == StateCurrent {
		r.activatedAt = now
	}
	return r, nil
}

// newKID returns a key id: the day it was made, for people reading lists of keys, and 72
// random bits, so that ids never collide and cannot be guessed ahead.
func newKID(now time.Time) (string, error) {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return now.UTC().Format("20060102") + "-" + base64.RawURLEncoding.EncodeToString(b), nil
}
