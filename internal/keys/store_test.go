package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

func TestOpenMakesTheFirstKeys(t *testing.T) {
	for _, alg := range []string{token.ES256, token.EdDSA, token.RS256} {
		t.Run("an empty store opened for "+alg+" gets a current and a next key, both published", func(t *testing.T) {
			t.Parallel()
			pool := testdb.Pool(t)
			clk := newClock(t0)
			opts := testOptions(pool, clk)
			opts.Algorithm = alg
			s := mustOpen(t, opts)

			st := states(t, pool)
			if len(st) != 2 {
				t.Fatalf("keys %v, want a current and a next", st)
			}
			current, next := kidIn(t, st, StateCurrent), kidIn(t, st, StateNext)
			if got := s.KeySet().Signing(); got == nil || got.ID() != current || got.Algorithm() != alg {
				t.Fatalf("signing key %v, want %s (%s)", got, current, alg)
			}
			if kids := jwksKids(t, s.JWKS()); !slices.Equal(kids, []string{current, next}) {
				t.Fatalf("JWKS kids %v, want current then next: %v", kids, []string{current, next})
			}
			if !strings.HasPrefix(current, "20300314-") || !token.ValidKeyID(current) {
				t.Errorf("kid %q does not start with the day it was made", current)
			}

			list, err := s.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range list {
				if k.Algorithm != alg || k.Backend != BackendSoftware || !k.CreatedAt.Equal(t0) {
					t.Errorf("List: %+v", k)
				}
				if (k.State == StateCurrent) != !k.ActivatedAt.IsZero() {
					t.Errorf("List: %s key %s has ActivatedAt %v", k.State, k.ID, k.ActivatedAt)
				}
			}

			// A token it signs verifies with the JWKS's public key alone.
			is := newIssuer(t, s, clk)
			tok := issue(t, is, token.Access)
			if _, err := is.Verify(token.Access, tok.Token); err != nil {
				t.Fatal(err)
			}

			// A second instance opening the same store makes no keys of its own.
			again := mustOpen(t, opts)
			if got := states(t, pool); len(got) != 2 || again.KeySet().Signing().ID() != current {
				t.Fatalf("a second Open changed the keys: %v", got)
			}
		})
	}
}

func TestADatabaseDumpRevealsNoPrivateKey(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	clk := newClock(t0)
	s := mustOpen(t, testOptions(pool, clk))
	current := s.KeySet().Signing().ID()
	private, ok := s.signers[current].(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("the current signer is %T", s.signers[current])
	}
	scalar, err := private.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}

	// Everything a dump of the table holds, as text.
	var dump strings.Builder
	rows, err := pool.Query(context.Background(), "SELECT row_to_json(k)::text FROM signing_keys k")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		dump.WriteString(line + "\n")
	}
	rows.Close()
	text := strings.ToLower(dump.String())
	for name, secret := range map[string][]byte{"private scalar": scalar, "PKCS #8 private key": pkcs8} {
		for _, enc := range []string{hex.EncodeToString(secret), strings.ToLower(base64.StdEncoding.EncodeToString(secret)), strings.ToLower(base64.RawURLEncoding.EncodeToString(secret))} {
			if strings.Contains(text, enc) {
				t.Fatalf("the dump holds the %s", name)
			}
		}
	}
	if !strings.Contains(text, `"private_key":"\\x`) {
		t.Fatalf("the dump holds no sealed private key at all, so this test proves nothing:\n%s", text)
	}

	t.Run("the sealed keys do not open under another KEK", func(t *testing.T) {
		opts := testOptions(pool, clk)
		opts.KEK = otherKEK
		if _, err := Open(context.Background(), opts); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("Open with another KEK: %v, want ErrWrongKEK", err)
		}
	})
	t.Run("a sealed key moved into another key's row does not open: the kid is bound to it", func(t *testing.T) {
		pool := testdb.Pool(t)
		mustOpen(t, testOptions(pool, clk))
		if _, err := pool.Exec(context.Background(), `UPDATE signing_keys SET private_key = (SELECT private_key FROM signing_keys WHERE state = 'next') WHERE state = 'current'`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(context.Background(), testOptions(pool, clk)); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("Open with swapped sealed keys: %v, want ErrWrongKEK", err)
		}
	})
	t.Run("a public key swapped under a sealed private key is refused", func(t *testing.T) {
		pool := testdb.Pool(t)
		mustOpen(t, testOptions(pool, clk))
		if _, err := pool.Exec(context.Background(), `UPDATE signing_keys SET public_key = (SELECT public_key FROM signing_keys WHERE state = 'next') WHERE state = 'current'`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(context.Background(), testOptions(pool, clk)); err == nil || !strings.Contains(err.Error(), "does not match the stored public key") {
			t.Fatalf("Open with a swapped public key: %v", err)
		}
	})
}

func TestRotationTimeline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	clk := newClock(t0)
	s := mustOpen(t, testOptions(pool, clk))
	is := newIssuer(t, s, clk)
	st := states(t, pool)
	first, second := kidIn(t, st, StateCurrent), kidIn(t, st, StateNext)
	var oldRefresh token.Issued

	t.Run("nothing rotates a second before the interval ends", func(t *testing.T) {
		clk.Set(t0.Add(DefaultRotationInterval - time.Second))
		oldRefresh = issue(t, is, token.Refresh)
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := s.KeySet().Signing().ID(); got != first {
			t.Fatalf("signing with %s, want %s still", got, first)
		}
	})

	var third string
	t.Run("when the interval ends the next key signs, the old one stays published and a new next is made", func(t *testing.T) {
		clk.Set(t0.Add(DefaultRotationInterval))
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
		st := states(t, pool)
		if st[first] != StatePrevious || st[second] != StateCurrent || len(st) != 3 {
			t.Fatalf("keys %v, want %s previous and %s current and a new next", st, first, second)
		}
		third = kidIn(t, st, StateNext)
		if got := s.KeySet().Signing().ID(); got != second {
			t.Fatalf("signing with %s, want %s", got, second)
		}
		if kids := jwksKids(t, s.JWKS()); !slices.Equal(kids, []string{second, third, first}) {
			t.Fatalf("JWKS kids %v, want current, next, previous", kids)
		}
		if _, err := is.Verify(token.Refresh, oldRefresh.Token); err != nil {
			t.Fatalf("a refresh token of the previous key is refused: %v", err)
		}
		if tok := issue(t, is, token.Access); tok.KeyID != second {
			t.Fatalf("new token signed by %s, want %s", tok.KeyID, second)
		}
	})

	retireAt := t0.Add(DefaultRotationInterval).Add(testTokenLifetime + DefaultPollInterval + token.Leeway + retireMargin)
	t.Run("the previous key stays published until its last token has expired", func(t *testing.T) {
		clk.Set(retireAt.Add(-time.Second))
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
		if st := states(t, pool); st[first] != StatePrevious {
			t.Fatalf("key %s is %s a second before its retirement", first, st[first])
		}
	})

	t.Run("then it is retired: out of the JWKS, its tokens refused, its private half erased", func(t *testing.T) {
		clk.Set(retireAt)
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
		if st := states(t, pool); st[first] != StateRetired {
			t.Fatalf("key %s is %s, want retired", first, st[first])
		}
		if kids := jwksKids(t, s.JWKS()); slices.Contains(kids, first) {
			t.Fatalf("JWKS still lists %s: %v", first, kids)
		}
		if _, ok := s.KeySet().Lookup(first); ok {
			t.Fatal("the retired key still verifies")
		}
		var sealed []byte
		if err := pool.QueryRow(ctx, "SELECT private_key FROM signing_keys WHERE kid = $1", first).Scan(&sealed); err != nil || sealed != nil {
			t.Fatalf("the retired key's sealed private half: %x, %v", sealed, err)
		}
		// Its last token has expired by now; at a time it had not, it is refused all the
		// same, for its key is gone.
		clk.Set(oldRefresh.ExpiresAt.Add(-time.Minute))
		if _, err := is.Verify(token.Refresh, oldRefresh.Token); !errors.Is(err, token.ErrInvalid) {
			t.Fatalf("a token of the retired key: %v, want refused", err)
		}
	})
}

func TestANewKeyIsPublishedBeforeItSigns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	clk := newClock(t0)
	s := mustOpen(t, testOptions(pool, clk))
	next := kidIn(t, states(t, pool), StateNext)
	publishFor := DefaultJWKSMaxAge + DefaultPollInterval

	if _, err := s.Rotate(ctx); !errors.Is(err, ErrRotationTooSoon) {
		t.Fatalf("Rotate right after the next key was made: %v, want ErrRotationTooSoon", err)
	}
	clk.Set(t0.Add(publishFor - time.Second))
	if _, err := s.Rotate(ctx); !errors.Is(err, ErrRotationTooSoon) {
		t.Fatalf("Rotate a second before the next key has been published long enough: %v", err)
	}
	clk.Set(t0.Add(publishFor))
	k, err := s.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if k.ID != next || k.State != StateCurrent || !k.ActivatedAt.Equal(t0.Add(publishFor)) {
		t.Fatalf("Rotate = %+v, want %s current since %v", k, next, t0.Add(publishFor))
	}
	if got := s.KeySet().Signing().ID(); got != next {
		t.Fatalf("signing with %s after Rotate, want %s", got, next)
	}

	t.Run("a scheduled rotation waits for a next key made late", func(t *testing.T) {
		// Revoking the next key shortly before the rotation is due makes a fresh next key,
		// which must not sign before it has been published long enough.
		due := clk.Now().Add(DefaultRotationInterval)
		clk.Set(due.Add(-time.Minute))
		if _, err := s.Revoke(ctx, kidIn(t, states(t, pool), StateNext)); err != nil {
			t.Fatal(err)
		}
		late := kidIn(t, states(t, pool), StateNext)
		clk.Set(due)
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := s.KeySet().Signing().ID(); got != next {
			t.Fatalf("rotated to %s before it was published long enough", got)
		}
		clk.Set(due.Add(-time.Minute + publishFor))
		if err := s.tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := s.KeySet().Signing().ID(); got != late {
			t.Fatalf("signing with %s, want %s once published long enough", got, late)
		}
	})
}

func TestOnlyOneInstanceRotates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	clk := newClock(t0)
	const instances = 4
	stores := make([]*Store, instances)
	for i := range stores {
		stores[i] = mustOpen(t, testOptions(newPool(t, url), clk))
	}
	pool := newPool(t, url)
	before := states(t, pool)
	first, second := kidIn(t, before, StateCurrent), kidIn(t, before, StateNext)

	clk.Set(t0.Add(DefaultRotationInterval))
	var wg sync.WaitGroup
	errs := make(chan error, instances*5)
	for round := range 5 {
		for _, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Half wait for the lock, as Open does; half skip when it is taken, as Run does.
				_, err := s.maintain(ctx, round%2 == 0)
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after := states(t, pool)
	if len(after) != 3 || after[first] != StatePrevious || after[second] != StateCurrent || countIn(after, StateNext) != 1 {
		t.Fatalf("after concurrent maintenance: %v, want exactly one rotation from %s to %s", after, first, second)
	}
	for _, s := range stores {
		if err := s.refresh(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got := s.KeySet().Signing().ID(); got != second {
			t.Fatalf("an instance signs with %s, want %s", got, second)
		}
	}
}

// TestInstancesFollowChangesWithinSeconds runs two instances' background loops: a rotation
// and a revocation made through one reach the other at its next poll.
func TestInstancesFollowChangesWithinSeconds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := testdb.URL(t)
	clk := newClock(t0)
	open := func() *Store {
		opts := testOptions(newPool(t, url), clk)
		opts.PollInterval = 50 * time.Millisecond
		s := mustOpen(t, opts)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return s
	}
	a, b := open(), open()
	bIssuer := newIssuer(t, b, clk)

	clk.Set(t0.Add(DefaultJWKSMaxAge + time.Minute))
	rotated, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other instance signs with the rotated key", func() bool {
		return b.KeySet().Signing().ID() == rotated.ID
	})

	// A token from b, verified once so that b's cache holds it.
	tok := issue(t, bIssuer, token.Access)
	if tok.KeyID != rotated.ID {
		t.Fatalf("b signed with %s, want %s", tok.KeyID, rotated.ID)
	}
	if _, err := bIssuer.Verify(token.Access, tok.Token); err != nil {
		t.Fatal(err)
	}
	revoked, err := a.Revoke(ctx, rotated.ID)
	if err != nil {
		t.Fatal(err)
	}
	if revoked.State != StateRevoked || revoked.RevokedAt.IsZero() {
		t.Fatalf("Revoke = %+v", revoked)
	}
	eventually(t, "the other instance refuses the revoked key's cached token", func() bool {
		_, err := bIssuer.Verify(token.Access, tok.Token)
		return errors.Is(err, token.ErrInvalid)
	})
	if got := b.KeySet().Signing(); got == nil || got.ID() == rotated.ID {
		t.Fatalf("b signs with %v after the revocation", got)
	}
	if kids := jwksKids(t, b.JWKS()); slices.Contains(kids, rotated.ID) {
		t.Fatalf("b's JWKS still lists the revoked key: %v", kids)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	clk := newClock(t0)
	s := mustOpen(t, testOptions(pool, clk))
	is := newIssuer(t, s, clk)

	t.Run("an unknown or malformed kid is not found", func(t *testing.T) {
		for _, kid := range []string{"20300314-unknown", "'; DROP TABLE signing_keys; --", "../../etc/passwd", ""} {
			if _, err := s.Revoke(ctx, kid); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Revoke(%q): %v, want ErrNotFound", kid, err)
			}
		}
		if len(states(t, pool)) != 2 {
			t.Fatal("the keys changed")
		}
	})

	t.Run("revoking the next key makes a new next key and leaves the current one signing", func(t *testing.T) {
		before := states(t, pool)
		current, next := kidIn(t, before, StateCurrent), kidIn(t, before, StateNext)
		if _, err := s.Revoke(ctx, next); err != nil {
			t.Fatal(err)
		}
		after := states(t, pool)
		if after[next] != StateRevoked || after[current] != StateCurrent || kidIn(t, after, StateNext) == next {
			t.Fatalf("keys %v", after)
		}
	})

	t.Run("revoking the current key fails its tokens at once, and the next key signs at once", func(t *testing.T) {
		before := states(t, pool)
		current, next := kidIn(t, before, StateCurrent), kidIn(t, before, StateNext)
		access, refresh := issue(t, is, token.Access), issue(t, is, token.Refresh)
		if _, err := is.Verify(token.Access, access.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Revoke(ctx, current); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			typ token.Type
			raw string
		}{{token.Access, access.Token}, {token.Refresh, refresh.Token}} {
			if _, err := is.Verify(tc.typ, tc.raw); !errors.Is(err, jwt.ErrTokenUnverifiable) {
				t.Fatalf("a %s token of the revoked key: %v, want refused for its unknown kid", tc.typ, err)
			}
		}
		if got := s.KeySet().Signing().ID(); got != next {
			t.Fatalf("signing with %s, want the former next key %s", got, next)
		}
		after := states(t, pool)
		if after[current] != StateRevoked || countIn(after, StateNext) != 1 {
			t.Fatalf("keys %v", after)
		}
		var sealed []byte
		if err := pool.QueryRow(ctx, "SELECT private_key FROM signing_keys WHERE kid = $1", current).Scan(&sealed); err != nil || sealed != nil {
			t.Fatalf("the revoked key's sealed private half: %x, %v", sealed, err)
		}
	})

	t.Run("revoking a revoked key changes nothing", func(t *testing.T) {
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var revoked Key
		for _, k := range list {
			if k.State == StateRevoked {
				revoked = k
			}
		}
		clk.Advance(time.Hour)
		again, err := s.Revoke(ctx, revoked.ID)
		if err != nil || !again.RevokedAt.Equal(revoked.RevokedAt) {
			t.Fatalf("Revoke again = %+v, %v; want %+v unchanged", again, err, revoked)
		}
	})
}

func TestAChangeOfAlgorithmTakesOverOncePublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	clk := newClock(t0)
	es := mustOpen(t, testOptions(pool, clk))
	esKID := es.KeySet().Signing().ID()
	publishFor := DefaultJWKSMaxAge + DefaultPollInterval

	// The same store reopened for EdDSA: the ES256 current key keeps signing meanwhile.
	clk.Set(t0.Add(time.Minute))
	opts := testOptions(pool, clk)
	opts.Algorithm = token.EdDSA
	ed := mustOpen(t, opts)
	if got := ed.KeySet().Signing(); got.ID() != esKID || got.Algorithm() != token.ES256 {
		t.Fatalf("signing with %s %s, want the ES256 key until an EdDSA key is published", got.ID(), got.Algorithm())
	}

	clk.Set(t0.Add(publishFor))
	if err := ed.tick(ctx); err != nil {
		t.Fatal(err)
	}
	edNext := kidIn(t, states(t, pool), StateNext)
	if _, public, ok := publicOf(ed, edNext); !ok || public != token.EdDSA {
		t.Fatalf("the next key is %s, want EdDSA", public)
	}
	if got := ed.KeySet().Signing().Algorithm(); got != token.ES256 {
		t.Fatalf("an EdDSA key signs before it has been published long enough: %s", got)
	}

	clk.Set(t0.Add(2 * publishFor))
	if err := ed.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ed.KeySet().Signing(); got.ID() != edNext || got.Algorithm() != token.EdDSA {
		t.Fatalf("signing with %s %s, want %s EdDSA", got.ID(), got.Algorithm(), edNext)
	}
	if st := states(t, pool); st[esKID] != StatePrevious {
		t.Fatalf("the ES256 key is %s, want previous", st[esKID])
	}
}

// publicOf returns the published public key of kid and its algorithm.
func publicOf(s *Store, kid string) (any, string, bool) {
	for _, r := range s.snap.Load().rows {
		if r.kid == kid {
			switch r.public.(type) {
			case *ecdsa.PublicKey:
				return r.public, token.ES256, true
			case ed25519.PublicKey:
				return r.public, token.EdDSA, true
			case *rsa.PublicKey:
				return r.public, token.RS256, true
			}
		}
	}
	return nil, "", false
}

func TestOpenChecksItsOptions(t *testing.T) {
	pool := testdb.Pool(t)
	clk := newClock(t0)
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
	}{
		{"no database", func(o *Options) { o.DB = nil }},
		{"an HMAC algorithm", func(o *Options) { o.Algorithm = token.HS256 }},
		{"a KEK of 16 bytes", func(o *Options) { o.KEK = testKEK[:16] }},
		{"the software backend without a KEK", func(o *Options) { o.KEK = nil }},
		{"the pkcs11 backend without an HSM", func(o *Options) { o.Backend = BackendPKCS11 }},
		{"an unknown backend", func(o *Options) { o.Backend = "vault" }},
		{"no token lifetime", func(o *Options) { o.TokenLifetime = 0 }},
		{"a rotation interval shorter than the JWKS max age", func(o *Options) { o.RotationInterval = time.Minute }},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			opts := testOptions(pool, clk)
			tc.mutate(&opts)
			if _, err := Open(context.Background(), opts); err == nil {
				t.Fatal("Open succeeded")
			}
		})
	}
	if n := len(states(t, pool)); n != 0 {
		t.Fatalf("refused Opens made %d keys", n)
	}
}
