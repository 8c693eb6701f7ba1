package oauth

import (
	"crypto/subtle"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkClientSecretCheck measures what checking one client secret costs with the digest
// Authly stores, against bcrypt at Authly's default password cost, which would cap a
// machine-to-machine token endpoint at a few requests per second per CPU. docs/security.md
// quotes the figures.
func BenchmarkClientSecretCheck(b *testing.B) {
	svc := &Service{}
	peppered := &Service{pepper: []byte("a pepper of the server, kept outside the database")}
	const secret = "Xq3u0m2T1yV9cQ8r7Zp6Lk5Jh4Gf3Ds2Aa1Ss0Dd9Ff"
	for _, tc := range []struct {
		name string
		svc  *Service
	}{{"sha256", svc}, {"hmac-sha256", peppered}} {
		stored := tc.svc.hashClientSecret(secret)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if subtle.ConstantTimeCompare(tc.svc.hashClientSecret(secret), stored) != 1 {
					b.Fatal("mismatch")
				}
			}
		})
	}
	b.Run("bcrypt-cost-12", func(b *testing.B) {
		stored, err := bcrypt.GenerateFromPassword([]byte(secret), 12)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if bcrypt.CompareHashAndPassword(stored, []byte(secret)) != nil {
				b.Fatal("mismatch")
			}
		}
	})
}
