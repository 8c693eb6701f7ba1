package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/httpapi"
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

// BenchmarkRefreshHTTP measures POST /api/v1/auth/refresh end to end through the real
// handler.
func BenchmarkRefreshHTTP(b *testing.B) {
	svc, pair := benchService(b)
	url := benchServer(b, svc) + "/api/v1/auth/refresh"
	for b.Loop() {
		body, _ := json.Marshal(api.RefreshRequest{GrantType: api.RefreshRequestGrantTypeRefreshToken, RefreshToken: pair.RefreshToken})
		pair.RefreshToken = postForTokens(b, url, body).RefreshToken
	}
}

// benchServer serves svc through the real handler and returns its base URL.
func benchServer(b *testing.B, svc *service.Service) string {
	b.Helper()
	h, err := httpapi.NewServer(svc, httpapi.ServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}

// postForTokens posts a JSON body that must be answered 200 with a token pair.
func postForTokens(b *testing.B, url string, body []byte) api.TokenResponse {
	b.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var tr api.TokenResponse
	err = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("POST %s: %d %v", url, resp.StatusCode, err)
	}
	return tr
}

// BenchmarkPasswordLoginHTTP measures POST /api/v1/auth/token with the password grant end to
// end through the real handler, at bcrypt's cheapest cost.
func BenchmarkPasswordLoginHTTP(b *testing.B) {
	svc, _ := benchService(b)
	url := benchServer(b, svc) + "/api/v1/auth/token"
	body, _ := json.Marshal(map[string]string{"grant_type": "password", "username": "bench", "password": testPassword})
	for b.Loop() {
		postForTokens(b, url, body)
	}
}
