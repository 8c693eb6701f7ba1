package token

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// libraryOnly returns a copy of is that signs and verifies through golang-jwt alone: the
// reference the compact codec must agree with.
func libraryOnly(is *Issuer) *Issuer {
	ref := *is
	ref.codec = nil
	return &ref
}

func compactIssuer(t *testing.T, alg, issuer string, clk *clock) *Issuer {
	t.Helper()
	is, err := NewIssuer(Config{
		Algorithm: alg, AccessKey: testAccessKey, RefreshKey: testRefreshKey, Issuer: issuer,
		AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if is.codec == nil {
		t.Fatalf("no compact codec for %s with issuer %q", alg, issuer)
	}
	return is
}

func TestCompactSigningYieldsTheLibrarysBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	issuers := []string{testIssuer, "authly", `https://auth.example/<a>&"b"\c`, "émetteur ✓", "x\u2028y"}
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		for _, issuer := range issuers {
			clk := newClock(fixedNow)
			is := compactIssuer(t, alg, issuer, clk)
			ref := libraryOnly(is)
			for i := range 50 {
				clk.Set(fixedNow.Add(time.Duration(r.Int64N(int64(400*24*time.Hour))) + time.Duration(r.IntN(1e9))))
				typ := []Type{Access, Refresh}[i%2]
				user, session := uuid.New(), uuid.New()
				notAfter := time.Time{}
				if i%3 == 0 {
					notAfter = clk.Now().Add(time.Duration(r.Int64N(int64(48 * time.Hour))))
				}
				// Both draw the same jti from the same random bytes.
				var seed [32]byte
				for j := range seed {
					seed[j] = byte(r.Uint32())
				}
				is.random, ref.random = rand.NewChaCha8(seed), rand.NewChaCha8(seed)
				got, err := is.Issue(typ, user, session, notAfter)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.Issue(typ, user, session, notAfter)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("%s, issuer %q: compact signing differs from golang-jwt:\n got %+v\nwant %+v", alg, issuer, got, want)
				}
			}
		}
	}
}

func TestCompactVerificationTakesTheFastPathForAuthlysTokens(t *testing.T) {
	clk := newClock(fixedNow)
	is := compactIssuer(t, "HS256", testIssuer, clk)
	for _, typ := range []Type{Access, Refresh} {
		tok, err := is.Issue(typ, testUserID, testSessionID, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := is.codec.verify(typ, tok.Token, clk.Now())
		if !ok {
			t.Fatalf("%s token %s did not take the fast path", typ, tok.Token)
		}
		if v.ID != tok.ID || v.UserID != testUserID || v.SessionID != testSessionID || !v.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Fatalf("fast path read %+v from %+v", v, tok)
		}
	}
}

// TestCompactVerificationDecidesAsTheLibrary runs valid, tampered, re-signed and mistimed
// tokens through Verify with and without the compact codec: both must accept the same
// tokens with the same claims, and refuse the same ones.
func TestCompactVerificationDecidesAsTheLibrary(t *testing.T) {
	clk := newClock(fixedNow)
	is := compactIssuer(t, "HS256", testIssuer, clk)
	ref := libraryOnly(is)
	access, err := is.Issue(Access, testUserID, testSessionID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	refresh, err := is.Issue(Refresh, testUserID, testSessionID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	now := fixedNow.Unix()
	// payload writes the compact layout with the given values, verbatim.
	payload := func(iss, sub string, exp, nbf, iat string, jti, sid string) []byte {
		return fmt.Appendf(nil, `{"iss":%s,"sub":"%s","exp":%s,"nbf":%s,"iat":%s,"jti":"%s","sid":"%s"}`,
			iss, sub, exp, nbf, iat, jti, sid)
	}
	n := func(v int64) string { return fmt.Sprint(v) }
	iss := `"` + testIssuer + `"`
	sub, sid, jti := testUserID.String(), testSessionID.String(), "AAAAAAAAAAAAAAAAAAAAAA"
	exp := n(now + 600)

	cases := map[string]string{
		"an access token":             access.Token,
		"a refresh token":             refresh.Token,
		"a truncated signature":       access.Token[:len(access.Token)-1],
		"an extended signature":       access.Token + "A",
		"a padded signature":          access.Token + "=",
		"a signature with a bit flip": flipLast(access.Token),
		"the payload of another":      swapPayload(access.Token, refresh.Token),
		"no signature":                access.Token[:strings.LastIndexByte(access.Token, '.')],
		"an alg none header": enc.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." +
			strings.Split(access.Token, ".")[1] + ".",
		"compact, valid":                   is.codec.sign(Access, payload(iss, sub, exp, n(now), n(now), jti, sid)),
		"compact, expired":                 is.codec.sign(Access, payload(iss, sub, n(now-6), n(now-60), n(now-60), jti, sid)),
		"compact, expired within leeway":   is.codec.sign(Access, payload(iss, sub, n(now-4), n(now-60), n(now-60), jti, sid)),
		"compact, expiring at leeway":      is.codec.sign(Access, payload(iss, sub, n(now-5), n(now-60), n(now-60), jti, sid)),
		"compact, not yet valid":           is.codec.sign(Access, payload(iss, sub, exp, n(now+6), n(now), jti, sid)),
		"compact, valid within leeway":     is.codec.sign(Access, payload(iss, sub, exp, n(now+5), n(now+5), jti, sid)),
		"compact, issued in the future":    is.codec.sign(Access, payload(iss, sub, exp, n(now), n(now+6), jti, sid)),
		"compact, another issuer":          is.codec.sign(Access, payload(`"someone-else"`, sub, exp, n(now), n(now), jti, sid)),
		"compact, a float exp":             is.codec.sign(Access, payload(iss, sub, n(now+600)+".5", n(now), n(now), jti, sid)),
		"compact, a leading zero":          is.codec.sign(Access, payload(iss, sub, "0"+exp, n(now), n(now), jti, sid)),
		"compact, a negative nbf":          is.codec.sign(Access, payload(iss, sub, exp, "-1", n(now), jti, sid)),
		"compact, a bad subject":           is.codec.sign(Access, payload(iss, strings.Repeat("z", 36), exp, n(now), n(now), jti, sid)),
		"compact, a quote in the jti":      is.codec.sign(Access, payload(iss, sub, exp, n(now), n(now), `AAAAAAAAAAAAAAAAAAAA\"`, sid)),
		"compact, as a refresh token":      is.codec.sign(Refresh, payload(iss, sub, exp, n(now), n(now), jti, sid)),
		"compact, trailing data":           is.codec.sign(Access, append(payload(iss, sub, exp, n(now), n(now), jti, sid), ' ')),
		"library, extra claim":             librarySigned(t, jwt.MapClaims{"iss": testIssuer, "sub": sub, "exp": now + 600, "nbf": now, "iat": now, "jti": jti, "sid": sid, "aud": "x"}),
		"library, claims in other order":   librarySigned(t, jwt.MapClaims{"sid": sid, "jti": jti, "iat": now, "nbf": now, "exp": now + 600, "sub": sub, "iss": testIssuer}),
		"library, no nbf":                  librarySigned(t, jwt.MapClaims{"iss": testIssuer, "sub": sub, "exp": now + 600, "iat": now, "jti": jti, "sid": sid}),
		"library, expired":                 librarySigned(t, jwt.MapClaims{"iss": testIssuer, "sub": sub, "exp": now - 60, "nbf": now - 120, "iat": now - 120, "jti": jti, "sid": sid}),
		"library, signed with another key": librarySignedWith(t, otherKey, jwt.MapClaims{"iss": testIssuer, "sub": sub, "exp": now + 600, "nbf": now, "iat": now, "jti": jti, "sid": sid}),
	}
	accepted := 0
	for name, raw := range cases {
		for _, typ := range []Type{Access, Refresh} {
			got, gotErr := is.Verify(typ, raw)
			want, wantErr := ref.Verify(typ, raw)
			if (gotErr == nil) != (wantErr == nil) || got != want {
				t.Errorf("%s as %s: with the codec %+v, %v; golang-jwt alone %+v, %v", name, typ, got, gotErr, want, wantErr)
			}
			if gotErr == nil {
				accepted++
			}
		}
	}
	// The corpus must hold tokens both accept, or the comparison proves nothing.
	if accepted < 5 {
		t.Fatalf("only %d tokens accepted", accepted)
	}
}

func flipLast(tok string) string {
	b := []byte(tok)
	if b[len(b)-2] == 'A' {
		b[len(b)-2] = 'B'
	} else {
		b[len(b)-2] = 'A'
	}
	return string(b)
}

func swapPayload(a, b string) string {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	return pa[0] + "." + pb[1] + "." + pa[2]
}

func librarySigned(t *testing.T, claims jwt.MapClaims) string {
	return librarySignedWith(t, testAccessKey, claims)
}

func librarySignedWith(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["typ"] = Access.header()
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
