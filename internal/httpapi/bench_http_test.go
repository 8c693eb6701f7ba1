package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/authly/authly/internal/httpapi"
)

// BenchmarkMeHTTP measures GET /api/v1/users/me end to end through the real handler, with
// parallel keep-alive clients: the bearer check's one query included. Run it with
// -cpuprofile and focus on httpapi.NewServer's handler to see where the server's time goes.
func BenchmarkMeHTTP(b *testing.B) {
	svc, pair := benchService(b)
	h, err := httpapi.NewServer(svc, httpapi.ServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/users/me", nil)
			req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkMeHandler measures the server's own work for GET /api/v1/users/me, without the
// network: middleware, token check with its one query, and the response, on a recorder.
func BenchmarkMeHandler(b *testing.B) {
	svc, pair := benchService(b)
	h, err := httpapi.NewServer(svc, httpapi.ServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
