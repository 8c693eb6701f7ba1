package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Test keys are made once per test binary: an RSA key takes a noticeable moment to generate.
var (
	testKeysOnce sync.Once
	testECDSA    *ecdsa.PrivateKey
	testEd25519  ed25519.PrivateKey
	testRSA      *rsa.PrivateKey
	otherECDSA   *ecdsa.PrivateKey
)

func loadTestKeys(tb testing.TB) {
	tb.Helper()
	testKeysOnce.Do(func() {
		var err error
		if testECDSA, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if otherECDSA, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, testEd25519, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
		if testRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
}

// privateKeyFor returns the test private key of alg.
func privateKeyFor(tb testing.TB, alg string) crypto.Signer {
	tb.Helper()
	loadTestKeys(tb)
	switch alg {
	case ES256:
		return testECDSA
	case EdDSA:
		return testEd25519
	case RS256:
		return testRSA
	}
	tb.Fatalf("no test key for %s", alg)
	return nil
}

// kidFor is the key id the tests give the key of alg.
func kidFor(alg string) string { return "20300314-" + strings.ToLower(alg) }

func mustSigningKey(tb testing.TB, kid, alg string, signer crypto.Signer) *SigningKey {
	tb.Helper()
	sk, err := NewSigningKey(kid, alg, signer)
	if err != nil {
		tb.Fatalf("NewSigningKey(%s, %s): %v", kid, alg, err)
	}
	return sk
}

func mustKeySet(tb testing.TB, signing *SigningKey, verify ...VerificationKey) *KeySet {
	tb.Helper()
	ks, err := NewKeySet(signing, verify...)
	if err != nil {
		tb.Fatalf("NewKeySet: %v", err)
	}
	return ks
}

// swappableKeys is a KeySource whose set a test replaces, as the key store does when keys
// rotate or are revoked.
type swappableKeys struct{ set atomic.Pointer[KeySet] }

func newSwappableKeys(ks *KeySet) *swappableKeys {
	s := &swappableKeys{}
	s.set.Store(ks)
	return s
}

func (s *swappableKeys) KeySet() *KeySet { return s.set.Load() }
func (s *swappableKeys) Set(ks *KeySet)  { s.set.Store(ks) }

// asymConfig is a configuration signing with the test key of alg, without HMAC secrets.
func asymConfig(tb testing.TB, alg string, clk *clock) (Config, *swappableKeys) {
	tb.Helper()
	keys := newSwappableKeys(mustKeySet(tb, mustSigningKey(tb, kidFor(alg), alg, privateKeyFor(tb, alg))))
	return Config{
		Algorithm:  alg,
		Keys:       keys,
		Issuer:     testIssuer,
		AccessTTL:  testAccessTTL,
		RefreshTTL: testRefreshTTL,
		Now:        clk.Now,
	}, keys
}

func newAsymIssuer(tb testing.TB, alg string, clk *clock) (*Issuer, *swappableKeys) {
	tb.Helper()
	cfg, keys := asymConfig(tb, alg, clk)
	is, err := NewIssuer(cfg)
	if err != nil {
		tb.Fatalf("NewIssuer(%s): %v", alg, err)
	}
	return is, keys
}

var publicKeyAlgorithms = []string{ES256, EdDSA, RS256}

func TestPublicKeyTokensVerifyWithGolangJWT(t *testing.T) {
	for _, alg := range publicKeyAlgorithms {
		for _, typ := range []Type{Access, Refresh} {
			t.Run("an issued "+string(typ)+" token signed with "+alg+" names its key and verifies with the public key alone", func(t *testing.T) {
				is, _ := newAsymIssuer(t, alg, newClock(fixedNow))
				issued := mustIssue(t, is, typ, time.Time{})
				header := decodeSegment(t, issued.Token, 0)
				if header["alg"] != alg || header["kid"] != kidFor(alg) || header["typ"] != typ.header() {
					t.Fatalf("header = %v, want alg %s, kid %s, typ %s", header, alg, kidFor(alg), typ.header())
				}
				if len(header) != 3 {
					t.Errorf("header has members beyond alg, kid and typ: %v", header)
				}
				if issued.KeyID != kidFor(alg) {
					t.Errorf("Issued.KeyID = %q, want %q", issued.KeyID, kidFor(alg))
				}

				// A plain golang-jwt parser with only the public key accepts it: what a
				// resource server does.
				parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(func() time.Time { return fixedNow })).
					Parse(issued.Token, func(*jwt.Token) (any, error) { return privateKeyFor(t, alg).Public(), nil })
				if err != nil || !parsed.Valid {
					t.Fatalf("golang-jwt with the public key refused the token: %v", err)
				}

				got, err := is.Verify(typ, issued.Token)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.ID != issued.ID || got.UserID != testUserID || got.SessionID != testSessionID ||
					got.KeyID != kidFor(alg) || !got.ExpiresAt.Equal(issued.ExpiresAt) {
					t.Fatalf("Verify = %+v, want the issued claims %+v", got, issued)
				}
			})
		}
	}
}

// opaqueSigner hides the concrete key type behind crypto.Signer, as an HSM key does, so the
// token is signed through signerMethod rather than golang-jwt's own methods.
type opaqueSigner struct{ inner crypto.Signer }

func (s opaqueSigner) Public() crypto.PublicKey { return s.inner.Public() }
func (s opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.inner.Sign(r, digest, opts)
}

func TestCryptoSignerKeysSignWhatGolangJWTVerifies(t *testing.T) {
	for _, alg := range []string{ES256, RS256, EdDSA} {
		t.Run("a token signed through an opaque "+alg+" crypto.Signer verifies with golang-jwt's standard method", func(t *testing.T) {
			signer := opaqueSigner{privateKeyFor(t, alg)}
			sk := mustSigningKey(t, "opaque-"+strings.ToLower(alg), alg, signer)
			if alg != EdDSA {
				if _, ok := sk.method.(*signerMethod); !ok {
					t.Fatalf("an opaque signer signs with %T, want the crypto.Signer method", sk.method)
				}
			}
			is, err := NewIssuer(Config{Algorithm: alg, Keys: StaticKeys{mustKeySet(t, sk)}, Issuer: testIssuer,
				AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL, Now: newClock(fixedNow).Now})
			if err != nil {
				t.Fatal(err)
			}
			// ECDSA signatures are random, so several of them cover r and s of every length.
			for range 50 {
				issued := mustIssue(t, is, Access, time.Time{})
				_, err := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(func() time.Time { return fixedNow })).
					Parse(issued.Token, func(*jwt.Token) (any, error) { return signer.Public(), nil })
				if err != nil {
					t.Fatalf("golang-jwt refused a token signed through crypto.Signer: %v", err)
				}
			}
		})
	}
}

func TestECDSASignatureEncoding(t *testing.T) {
	der := func(r, s []byte) []byte {
		// SEQUENCE { INTEGER r, INTEGER s } for short positive integers.
		intOf := func(b []byte) []byte {
			if b[0]&0x80 != 0 {
				b = append([]byte{0}, b...)
			}
			return append([]byte{0x02, byte(len(b))}, b...)
		}
		body := append(intOf(r), intOf(s)...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	t.Run("short r and s are left-padded to 32 bytes each", func(t *testing.T) {
		got, err := ecdsaJOSE(der([]byte{0x01, 0x02}, []byte{0xff}), 32)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 64)
		want[30], want[31], want[63] = 0x01, 0x02, 0xff
		if string(got) != string(want) {
			t.Fatalf("ecdsaJOSE = %x, want %x", got, want)
		}
	})
	t.Run("an integer longer than the curve is refused", func(t *testing.T) {
		long := make([]byte, 33)
		long[0] = 1
		if _, err := ecdsaJOSE(der(long, []byte{1}), 32); err == nil {
			t.Fatal("a 33-byte r was accepted")
		}
	})
	t.Run("trailing bytes after the signature are refused", func(t *testing.T) {
		if _, err := ecdsaJOSE(append(der([]byte{1}, []byte{1}), 0), 32); err == nil {
			t.Fatal("trailing data was accepted")
		}
	})
}

func TestNewSigningKey(t *testing.T) {
	loadTestKeys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // the point is that it is refused
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		kid    string
		alg    string
		signer crypto.Signer
		ok     bool
	}{
		{"an ES256 key on P-256 is accepted", "k1", ES256, testECDSA, true},
		{"an EdDSA Ed25519 key is accepted", "k1", EdDSA, testEd25519, true},
		{"an RS256 2048-bit key is accepted", "k1", RS256, testRSA, true},
		{"a P-384 key for ES256 is refused", "k1", ES256, p384, false},
		{"a 1024-bit RSA key is refused", "k1", RS256, smallRSA, false},
		{"an Ed25519 key for ES256 is refused", "k1", ES256, testEd25519, false},
		{"an ECDSA key for RS256 is refused", "k1", RS256, testECDSA, false},
		{"an HMAC algorithm is refused", "k1", HS256, testECDSA, false},
		{`the algorithm "none" is refused`, "k1", "none", testECDSA, false},
		{"a nil signer is refused", "k1", ES256, nil, false},
		{"an empty kid is refused", "", ES256, testECDSA, false},
		{"a kid with a slash is refused", "a/b", ES256, testECDSA, false},
		{"a kid of 65 characters is refused", strings.Repeat("a", 65), ES256, testECDSA, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sk, err := NewSigningKey(tc.kid, tc.alg, tc.signer)
			if tc.ok != (err == nil) {
				t.Fatalf("NewSigningKey: err = %v, want ok = %v", err, tc.ok)
			}
			if tc.ok && (sk.ID() != tc.kid || sk.Algorithm() != tc.alg || !publicEqual(sk.Public(), tc.signer.Public())) {
				t.Fatalf("NewSigningKey = %s %s, want %s %s", sk.ID(), sk.Algorithm(), tc.kid, tc.alg)
			}
		})
	}
}

func TestNewKeySet(t *testing.T) {
	loadTestKeys(t)
	sk := mustSigningKey(t, "current", ES256, testECDSA)
	t.Run("the signing key verifies too, beside the other keys", func(t *testing.T) {
		ks := mustKeySet(t, sk, VerificationKey{ID: "previous", Algorithm: EdDSA, Key: testEd25519.Public()})
		if got := strings.Join(ks.IDs(), ","); got != "current,previous" {
			t.Fatalf("IDs = %s, want current,previous", got)
		}
		if k, ok := ks.Lookup("current"); !ok || k.Algorithm != ES256 {
			t.Fatalf("Lookup(current) = %+v, %v", k, ok)
		}
	})
	t.Run("the signing key listed again among the verification keys is accepted once", func(t *testing.T) {
		ks := mustKeySet(t, sk, VerificationKey{ID: "current", Algorithm: ES256, Key: testECDSA.Public()})
		if len(ks.IDs()) != 1 {
			t.Fatalf("IDs = %v", ks.IDs())
		}
	})
	for _, tc := range []struct {
		name string
		key  VerificationKey
	}{
		{"a kid that differs only from the signing key's public key is refused", VerificationKey{ID: "current", Algorithm: ES256, Key: otherECDSA.Public()}},
		{"a public key listed for an HMAC algorithm is refused", VerificationKey{ID: "k", Algorithm: HS256, Key: testECDSA.Public()}},
		{"a secret listed for a public-key algorithm is refused", VerificationKey{ID: "k", Algorithm: ES256, Key: []byte("secret")}},
		{"an empty HMAC secret is refused", VerificationKey{ID: "k", Algorithm: HS256, Key: []byte{}}},
		{"an unknown algorithm is refused", VerificationKey{ID: "k", Algorithm: "ES384", Key: testECDSA.Public()}},
		{"an unknown token type is refused", VerificationKey{ID: "k", Algorithm: ES256, Key: testECDSA.Public(), Type: "id"}},
		{"a kid with a quote is refused", VerificationKey{ID: `k"`, Algorithm: ES256, Key: testECDSA.Public()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewKeySet(sk, tc.key); err == nil {
				t.Fatal("NewKeySet accepted it")
			}
		})
	}
	t.Run("two verification keys with one kid are refused", func(t *testing.T) {
		k := VerificationKey{ID: "k", Algorithm: ES256, Key: testECDSA.Public()}
		if _, err := NewKeySet(nil, k, k); err == nil {
			t.Fatal("NewKeySet accepted a duplicate kid")
		}
	})
	t.Run("a nil set has no keys", func(t *testing.T) {
		var ks *KeySet
		if _, ok := ks.Lookup("current"); ok || ks.Signing() != nil || ks.IDs() != nil {
			t.Fatal("a nil KeySet has keys")
		}
	})
}

func TestIssueWithoutACurrentKey(t *testing.T) {
	loadTestKeys(t)
	verifyOnly := mustKeySet(t, nil, VerificationKey{ID: "old", Algorithm: ES256, Key: testECDSA.Public()})
	is, err := NewIssuer(Config{Algorithm: ES256, Keys: StaticKeys{verifyOnly}, Issuer: testIssuer,
		AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.Issue(Access, testUserID, testSessionID, time.Time{}); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("Issue without a signing key: %v, want ErrNoSigningKey", err)
	}
}

// TestMigrationFromHMAC follows a deployment from HS256 to ES256: tokens issued under HS256,
// with or without a kid, keep verifying under ES256 while the secrets stay configured, and
// only until they expire.
func TestMigrationFromHMAC(t *testing.T) {
	clk := newClock(fixedNow)
	before := newTestIssuer(t, HS256, clk)
	oldAccess := mustIssue(t, before, Access, time.Time{})
	oldRefresh := mustIssue(t, before, Refresh, time.Time{})
	// Tokens from before key ids were written into headers have none.
	noKID := handToken(t, hdr(HS256, "at+jwt"), validClaims(), testAccessKey)

	cfg, _ := asymConfig(t, ES256, clk)
	cfg.AccessKey, cfg.RefreshKey = testAccessKey, testRefreshKey
	after, err := NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("new tokens are signed with ES256 and the store's key", func(t *testing.T) {
		issued := mustIssue(t, after, Access, time.Time{})
		if h := decodeSegment(t, issued.Token, 0); h["alg"] != ES256 || h["kid"] != kidFor(ES256) {
			t.Fatalf("header %v, want ES256 with the store's kid", h)
		}
	})
	t.Run("an HS256 access token issued before the switch still verifies", func(t *testing.T) {
		if _, err := after.Verify(Access, oldAccess.Token); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an HS256 refresh token issued before the switch still verifies", func(t *testing.T) {
		if _, err := after.Verify(Refresh, oldRefresh.Token); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an HS256 access token without kid, from before key ids, still verifies", func(t *testing.T) {
		if _, err := after.Verify(Access, noKID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an HS512 token signed with the right secret is refused: the secrets verify HS256 only", func(t *testing.T) {
		raw := handToken(t, map[string]any{"alg": HS512, "typ": "at+jwt", "kid": HMACAccessKeyID}, validClaims(), testAccessKey)
		_, err := after.Verify(Access, raw)
		checkVerifyErr(t, err, false, nil)
	})
	t.Run("the old tokens are refused once expired, even though they were cached", func(t *testing.T) {
		clk.Set(oldAccess.ExpiresAt.Add(Leeway + time.Second))
		defer clk.Set(fixedNow)
		_, err := after.Verify(Access, oldAccess.Token)
		checkVerifyErr(t, err, false, jwt.ErrTokenExpired)
	})
	t.Run("without the secrets, HS256 tokens are refused", func(t *testing.T) {
		withoutSecrets, _ := newAsymIssuer(t, ES256, clk)
		for _, raw := range []string{oldAccess.Token, noKID} {
			_, err := withoutSecrets.Verify(Access, raw)
			checkVerifyErr(t, err, false, nil)
		}
	})
	t.Run("the HMAC secrets never sign under ES256", func(t *testing.T) {
		for range 5 {
			if h := decodeSegment(t, mustIssue(t, after, Refresh, time.Time{}).Token, 0); h["alg"] != ES256 {
				t.Fatalf("a refresh token was signed with %v", h["alg"])
			}
		}
	})
}

// TestChangeOfPublicKeyAlgorithm: while the store's current key is still ES256 after a change
// to EdDSA, tokens are signed with that key in its own algorithm, and keys of both
// algorithms verify.
func TestChangeOfPublicKeyAlgorithm(t *testing.T) {
	loadTestKeys(t)
	clk := newClock(fixedNow)
	keys := newSwappableKeys(mustKeySet(t, mustSigningKey(t, "es", ES256, testECDSA)))
	is, err := NewIssuer(Config{Algorithm: EdDSA, Keys: keys, Issuer: testIssuer, AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	old := mustIssue(t, is, Access, time.Time{})
	if h := decodeSegment(t, old.Token, 0); h["alg"] != ES256 {
		t.Fatalf("signed with %v, want the current key's ES256", h["alg"])
	}
	keys.Set(mustKeySet(t, mustSigningKey(t, "ed", EdDSA, testEd25519), VerificationKey{ID: "es", Algorithm: ES256, Key: testECDSA.Public()}))
	fresh := mustIssue(t, is, Access, time.Time{})
	if h := decodeSegment(t, fresh.Token, 0); h["alg"] != EdDSA || h["kid"] != "ed" {
		t.Fatalf("after rotation signed with %v, want EdDSA by ed", h)
	}
	for _, raw := range []string{old.Token, fresh.Token} {
		if _, err := is.Verify(Access, raw); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
}
