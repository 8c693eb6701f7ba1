package token

import (
	"fmt"
	"testing"
	"time"
)

// benchIssuer signs with alg: the HMAC secrets for HS256, otherwise the test key of alg.
// cacheSize is Config.CacheSize.
func benchIssuer(b *testing.B, alg string, cacheSize int) *Issuer {
	b.Helper()
	var cfg Config
	if HMAC(alg) {
		cfg = Config{Algorithm: alg, AccessKey: testAccessKey, RefreshKey: testRefreshKey, Issuer: testIssuer,
			AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL}
	} else {
		cfg, _ = asymConfig(b, alg, newClock(time.Now()))
		cfg.Now = nil
	}
	cfg.CacheSize = cacheSize
	is, err := NewIssuer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return is
}

var benchAlgorithms = []string{HS256, ES256, EdDSA, RS256}

// BenchmarkIssue measures signing one access token: a random jti, the claims and the
// signature, per algorithm.
func BenchmarkIssue(b *testing.B) {
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			is := benchIssuer(b, alg, -1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := is.Issue(Access, testUserID, testSessionID, time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify measures the check of every bearer request before its database lookup,
// per algorithm: with the cache off (parse, key lookup, pinned algorithm, typ header,
// signature, issuer and time claims) and with the cache on, where the same token presented
// again is a map lookup.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range benchAlgorithms {
		for _, cached := range []bool{false, true} {
			name := fmt.Sprintf("%s/cache=%s", alg, map[bool]string{false: "off", true: "on"}[cached])
			b.Run(name, func(b *testing.B) {
				size := -1
				if cached {
					size = 0
				}
				is := benchIssuer(b, alg, size)
				tok, err := is.Issue(Access, testUserID, testSessionID, time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := is.Verify(Access, tok.Token); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
