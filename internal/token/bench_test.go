package token

import (
	"testing"
	"time"
)

func benchIssuer(b *testing.B) *Issuer {
	b.Helper()
	is, err := NewIssuer(Config{
		Algorithm: "HS256", AccessKey: testAccessKey, RefreshKey: testRefreshKey, Issuer: testIssuer,
		AccessTTL: testAccessTTL, RefreshTTL: testRefreshTTL,
	})
	if err != nil {
		b.Fatal(err)
	}
	return is
}

// BenchmarkIssue measures signing one access token: a random jti, the claims and HMAC.
func BenchmarkIssue(b *testing.B) {
	is := benchIssuer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Issue(Access, testUserID, testSessionID, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures the check of every bearer request before its database lookup:
// parse, pinned algorithm, typ header, HMAC, issuer and time claims.
func BenchmarkVerify(b *testing.B) {
	is := benchIssuer(b)
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
}
