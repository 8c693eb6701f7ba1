package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

// refusingServer is Authly whose bcrypt pool refuses every password check and hash, as a
// full pool does under a flood, with the metrics on and a JSON log at warn level, as the
// benchmark's server runs.
func refusingServer(b *testing.B) http.Handler {
	b.Helper()
	issuer, err := token.NewIssuer(token.Config{
		Algorithm: "HS256", AccessKey: accessKey, RefreshKey: refreshKey, Issuer: "authly-bench",
		AccessTTL: 30 * time.Minute, RefreshTTL: 7 * 24 * time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	pool, err := hashpool.New(hashpool.Options{Workers: 1, Queue: 0, Cost: bcrypt.MinCost})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New()
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := service.New(service.Deps{Pool: testdb.Pool(b), Tokens: issuer, Hasher: pool, Metrics: m, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	// A place in line that is never given up keeps the one worker spoken for: every
	// further caller is refused at once.
	held, err := pool.Reserve(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(held.Cancel)
	h, err := httpapi.NewServer(svc, httpapi.ServerOptions{Logger: log, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// benchmarkRefused measures the server's own work, without the network, for a request that
// the bcrypt pool refuses.
func benchmarkRefused(b *testing.B, path, body string) {
	h := refusingServer(b)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusServiceUnavailable {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkRefusedLogin is a password login that the full bcrypt pool refuses.
func BenchmarkRefusedLogin(b *testing.B) {
	benchmarkRefused(b, "/api/v1/auth/token", `{"grant_type":"password","username":"alice","password":"`+testPassword+`"}`)
}

// BenchmarkRefusedRegistration is a registration that the full bcrypt pool refuses.
func BenchmarkRefusedRegistration(b *testing.B) {
	benchmarkRefused(b, "/api/v1/users", `{"username":"alice","email":"alice@example.com","password":"`+testPassword+`"}`)
}
