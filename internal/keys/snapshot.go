package keys

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// keyRow is a published key as the store reads it.
type keyRow struct {
	kid, alg, state, backend string
	publicDER                []byte
	public                   crypto.PublicKey
	sealed                   []byte
	kekID                    string
	hsm                      HSMRef
	createdAt                time.Time
	activatedAt              time.Time
	supersededAt             time.Time
}

func rowFrom(r db.ListPublishedSigningKeysRow) keyRow {
	k := keyRow{
		kid: r.Kid, alg: r.Algorithm, state: r.State, backend: r.Backend,
		publicDER: r.PublicKey, sealed: r.PrivateKey, kekID: deref(r.KekID),
		hsm:       HSMRef{ID: r.HsmKeyID, Label: deref(r.HsmLabel)},
		createdAt: r.CreatedAt, activatedAt: derefTime(r.ActivatedAt), supersededAt: derefTime(r.SupersededAt),
	}
	return k
}

// snapshot is what the store serves between two changes of keys. It is never modified once
// stored.
type snapshot struct {
	fingerprint string   // as GetSigningKeysFingerprint computes it
	rows        []keyRow // the published keys, without their sealed private halves
	set         *token.KeySet
	jwks        []byte
	loadErr     error // why the current key cannot sign here, if it cannot
}

// fingerprint computes, from rows ordered by kid in byte order, the value of the query
// GetSigningKeysFingerprint.
func fingerprint(rows []keyRow) string {
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = r.kid + ":" + r.state
	}
	return strings.Join(parts, ",")
}

// refresh rebuilds the snapshot when the published keys changed, when the current key could
// not be loaded last time (an HSM that was unreachable), or always with force.
func (s *Store) refresh(ctx context.Context, force bool) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	old := s.snap.Load()
	if !force && old != nil && old.loadErr == nil {
		fp, err := s.q.GetSigningKeysFingerprint(ctx)
		if err != nil {
			return fmt.Errorf("keys: polling: %w", err)
		}
		if fp == old.fingerprint {
			return nil
		}
	}
	dbRows, err := s.q.ListPublishedSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: loading: %w", err)
	}
	rows := make([]keyRow, 0, len(dbRows))
	for _, r := range dbRows {
		rows = append(rows, rowFrom(r))
	}
	slices.SortFunc(rows, func(a, b keyRow) int { return strings.Compare(a.kid, b.kid) })
	snap, err := s.build(ctx, rows)
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	if old != nil && old.fingerprint != snap.fingerprint {
		s.log.Info("signing keys changed", slog.String("keys", snap.fingerprint))
	}
	return nil
}

// build makes a snapshot of rows. A row whose public key does not parse is left out and
// logged; a current key that cannot be loaded here leaves the snapshot without a signing
// key (Issue then fails) but every published key still verifies, and revoked keys are gone
// either way.
func (s *Store) build(ctx context.Context, rows []keyRow) (*snapshot, error) {
	snap := &snapshot{fingerprint: fingerprint(rows)}
	var signing *token.SigningKey
	var verify []token.VerificationKey
	for i := range rows {
		r := &rows[i]
		public, err := x509.ParsePKIXPublicKey(r.publicDER)
		if err != nil {
			s.log.Error("signing keys: unreadable public key; leaving it out", slog.String("kid", r.kid), slog.Any("error", err))
			continue
		}
		r.public = public
		if r.state == StateCurrent {
			sk, err := s.currentSigner(ctx, *r)
			if err != nil {
				snap.loadErr = err
				s.log.Error("signing keys: the current key cannot sign here", slog.String("kid", r.kid), slog.Any("error", err))
			} else {
				signing = sk
				continue // NewKeySet adds its public key
			}
		}
		verify = append(verify, token.VerificationKey{ID: r.kid, Algorithm: r.alg, Key: public})
	}
	if !slices.ContainsFunc(rows, func(r keyRow) bool { return r.state == StateCurrent }) {
		clear(s.signers)
	}
	set, err := token.NewKeySet(signing, verify...)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	snap.set = set
	for _, r := range rows {
		if r.public != nil {
			r.sealed = nil
			snap.rows = append(snap.rows, r)
		}
	}
	if snap.jwks, err = jwks(snap.rows); err != nil {
		return nil, err
	}
	return snap, nil
}

// currentSigner returns the signing key of the current row, loading its private half only
// when it became current since the last build. Only the current key's signer is kept in
// memory.
func (s *Store) currentSigner(ctx context.Context, r keyRow) (*token.SigningKey, error) {
	signer, ok := s.signers[r.kid]
	if !ok {
		var err error
		if signer, err = s.loadSigner(ctx, r); err != nil {
			return nil, err
		}
		clear(s.signers)
		s.signers[r.kid] = signer
	}
	return token.NewSigningKey(r.kid, r.alg, signer)
}

// jwks renders the published keys as a JWK Set: the current key first, then the next one,
// then the previous ones, newest first. go-jose writes the public members of each key.
func jwks(rows []keyRow) ([]byte, error) {
	order := map[string]int{StateCurrent: 0, StateNext: 1, StatePrevious: 2}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b keyRow) int {
		if d := order[a.state] - order[b.state]; d != 0 {
			return d
		}
		return b.createdAt.Compare(a.createdAt)
	})
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(sorted))}
	for _, r := range sorted {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: r.public, KeyID: r.kid, Algorithm: r.alg, Use: "sig"})
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: rendering the JWKS: %w", err)
	}
	return body, nil
}
