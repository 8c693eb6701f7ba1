package service_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

// benchService is a service on a fresh database with one verified user, logged in.
func benchService(b *testing.B) (*service.Service, service.TokenPair) {
	b.Helper()
	issuer, err := token.NewIssuer(token.Config{
		Algorithm: "HS256", AccessKey: accessKey, RefreshKey: refreshKey, Issuer: "authly-bench",
		AccessTTL: 30 * time.Minute, RefreshTTL: 7 * 24 * time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := service.New(service.Deps{Pool: testdb.Pool(b), Tokens: issuer, BcryptCost: bcrypt.MinCost})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.EnsureAdmin(ctx, service.NewUser{Username: "bench", Email: "bench@example.com", Password: testPassword}, service.AdminFromBootstrap); err != nil {
		b.Fatal(err)
	}
	pair, _, err := svc.PasswordLogin(ctx, "bench", testPassword, service.Client{IP: "127.0.0.1", UserAgent: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return svc, pair
}

// BenchmarkRefresh measures one rotation through the service: verify, then the one rotation
// statement.
func BenchmarkRefresh(b *testing.B) {
	svc, pair := benchService(b)
	ctx := context.Background()
	client := service.Client{IP: "127.0.0.1", UserAgent: "bench"}
	for b.Loop() {
		next, err := svc.Refresh(ctx, pair.RefreshToken, client)
		if err != nil {
			b.Fatal(err)
		}
		pair = next
	}
}

// BenchmarkAuthenticate measures the bearer check: signature, claims and one indexed query.
func BenchmarkAuthenticate(b *testing.B) {
	svc, pair := benchService(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := svc.Authenticate(ctx, pair.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPasswordLogin measures a password login through the service at bcrypt's cheapest
// cost, so that what it shows is mostly the login's own work: the lockout bookkeeping, the
// session and its tokens, the session cap and the audit record.
func BenchmarkPasswordLogin(b *testing.B) {
	svc, _ := benchService(b)
	ctx := context.Background()
	client := service.Client{IP: "127.0.0.1", UserAgent: "bench"}
	for b.Loop() {
		if _, _, err := svc.PasswordLogin(ctx, "bench", testPassword, client); err != nil {
			b.Fatal(err)
		}
	}
}
