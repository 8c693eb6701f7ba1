package token

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func TestVerifiedTokenCache(t *testing.T) {
	t.Run("a verified token is remembered under its whole string", func(t *testing.T) {
		is, _ := newAsymIssuer(t, ES256, newClock(fixedNow))
		issued := mustIssue(t, is, Access, time.Time{})
		if _, err := is.Verify(Access, issued.Token); err != nil {
			t.Fatal(err)
		}
		v, kid, ok := is.cache.get(Access, issued.Token, fixedNow)
		if !ok || v.ID != issued.ID || kid != kidFor(ES256) {
			t.Fatalf("cache.get = %+v, %q, %v; want the verified claims under kid %s", v, kid, ok, kidFor(ES256))
		}
		if got, err := is.Verify(Access, issued.Token); err != nil || got != v {
			t.Fatalf("second Verify = %+v, %v; want the cached %+v", got, err, v)
		}
	})

	t.Run("a cached token is not served past its exp", func(t *testing.T) {
		clk := newClock(fixedNow)
		is, _ := newAsymIssuer(t, ES256, clk)
		issued := mustIssue(t, is, Access, time.Time{})
		if _, err := is.Verify(Access, issued.Token); err != nil {
			t.Fatal(err)
		}
		clk.Set(issued.ExpiresAt.Add(Leeway + time.Second))
		_, err := is.Verify(Access, issued.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenExpired)
		if is.cache.len() != 0 {
			t.Fatalf("the expired token is still cached")
		}
	})

	t.Run("a token verified within the leeway after exp is not cached", func(t *testing.T) {
		clk := newClock(fixedNow)
		is, _ := newAsymIssuer(t, ES256, clk)
		issued := mustIssue(t, is, Access, time.Time{})
		clk.Set(issued.ExpiresAt.Add(time.Second))
		if _, err := is.Verify(Access, issued.Token); err != nil {
			t.Fatalf("Verify within the leeway: %v", err)
		}
		if is.cache.len() != 0 {
			t.Fatal("a token past its exp was cached")
		}
	})

	t.Run("a cached access token is refused as a refresh token", func(t *testing.T) {
		is, _ := newAsymIssuer(t, ES256, newClock(fixedNow))
		issued := mustIssue(t, is, Access, time.Time{})
		if _, err := is.Verify(Access, issued.Token); err != nil {
			t.Fatal(err)
		}
		_, err := is.Verify(Refresh, issued.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenUnverifiable)
	})

	t.Run("a cached token fails at once when its key is revoked, and its entry is dropped", func(t *testing.T) {
		is, keys := newAsymIssuer(t, ES256, newClock(fixedNow))
		issued := mustIssue(t, is, Access, time.Time{})
		other := mustIssue(t, is, Refresh, time.Time{})
		for _, tok := range []struct {
			typ Type
			raw string
		}{{Access, issued.Token}, {Refresh, other.Token}} {
			if _, err := is.Verify(tok.typ, tok.raw); err != nil {
				t.Fatal(err)
			}
		}
		if is.cache.len() != 2 {
			t.Fatalf("cache holds %d entries, want 2", is.cache.len())
		}
		// The key store drops the revoked key from the set; a new key signs from now on.
		keys.Set(mustKeySet(t, mustSigningKey(t, "20300315-after", ES256, otherECDSA)))
		_, err := is.Verify(Access, issued.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenUnverifiable)
		if n := is.cache.len(); n != 0 {
			t.Fatalf("cache holds %d entries of the revoked key, want 0", n)
		}
	})

	t.Run("a cached HMAC token stays valid while the public keys change", func(t *testing.T) {
		clk := newClock(fixedNow)
		cfg, keys := asymConfig(t, ES256, clk)
		cfg.AccessKey, cfg.RefreshKey = testAccessKey, testRefreshKey
		is, err := NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		raw := handToken(t, hdr(HS256, "at+jwt"), validClaims(), testAccessKey)
		if _, err := is.Verify(Access, raw); err != nil {
			t.Fatal(err)
		}
		keys.Set(mustKeySet(t, mustSigningKey(t, "20300315-after", ES256, otherECDSA)))
		if _, err := is.Verify(Access, raw); err != nil {
			t.Fatalf("an HMAC token was refused after a public-key rotation: %v", err)
		}
		if is.cache.len() != 1 {
			t.Fatalf("the sweep dropped the HMAC token's entry")
		}
	})

	t.Run("the cache never grows past its size", func(t *testing.T) {
		cfg, _ := asymConfig(t, EdDSA, newClock(fixedNow))
		cfg.CacheSize = 32
		is, err := NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 500 {
			issued, err := is.Issue(Access, uuid.New(), testSessionID, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := is.Verify(Access, issued.Token); err != nil {
				t.Fatal(err)
			}
		}
		if n := is.cache.len(); n > 32 || n == 0 {
			t.Fatalf("cache holds %d entries, want 1 to 32", n)
		}
	})

	t.Run("expired entries are swept from memory when new tokens arrive", func(t *testing.T) {
		clk := newClock(fixedNow)
		is, _ := newAsymIssuer(t, EdDSA, clk)
		for range 100 {
			issued := mustIssue(t, is, Access, fixedNow.Add(time.Minute))
			if _, err := is.Verify(Access, issued.Token); err != nil {
				t.Fatal(err)
			}
		}
		clk.Set(fixedNow.Add(2 * time.Minute))
		for range 400 {
			issued := mustIssue(t, is, Access, time.Time{})
			if _, err := is.Verify(Access, issued.Token); err != nil {
				t.Fatal(err)
			}
		}
		if n := is.cache.len(); n != 400 {
			t.Fatalf("cache holds %d entries, want the 400 live ones", n)
		}
	})

	t.Run("a negative size turns the cache off", func(t *testing.T) {
		cfg, _ := asymConfig(t, ES256, newClock(fixedNow))
		cfg.CacheSize = -1
		is, err := NewIssuer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		issued := mustIssue(t, is, Access, time.Time{})
		for range 2 {
			if _, err := is.Verify(Access, issued.Token); err != nil {
				t.Fatal(err)
			}
		}
		if is.cache != nil {
			t.Fatal("the cache exists")
		}
	})
}
