package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/token"
)

// lockedBuffer is a log sink that handlers on several goroutines may write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines written so far.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// loggedServer is Authly with one JSON logger at level for the service and the server.
func loggedServer(t *testing.T, level slog.Level) (*service.Service, *httptest.Server, *lockedBuffer) {
	t.Helper()
	sink := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: level}))
	issuer, err := token.NewIssuer(token.Config{
		Algorithm: "HS256", AccessKey: accessKey, RefreshKey: refreshKey, Issuer: "authly-test",
		AccessTTL: 30 * time.Minute, RefreshTTL: 7 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Deps{Pool: testdb.Pool(t), Tokens: issuer, BcryptCost: bcrypt.MinCost, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewServer(svc, httpapi.ServerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return svc, srv, sink
}

func doRequest(t *testing.T, method, url, requestID, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if requestID != "" {
		req.Header.Set("X-Request-ID", requestID)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestEveryRequestIsLoggedOnceWithItsRequestID(t *testing.T) {
	t.Parallel()
	_, srv, sink := loggedServer(t, slog.LevelInfo)

	resp := doRequest(t, http.MethodGet, srv.URL+"/health", "trace-42", "")
	if got := resp.Header.Get("X-Request-ID"); got != "trace-42" {
		t.Fatalf("X-Request-ID = %q, want the caller's", got)
	}
	resp = doRequest(t, http.MethodGet, srv.URL+"/health", "not a valid id!", "")
	generated := resp.Header.Get("X-Request-ID")
	if len(generated) != 16 || generated == "not a valid id!" {
		t.Fatalf("an invalid X-Request-ID was answered with %q, want a fresh 16-character id", generated)
	}

	var ids []string
	for _, l := range sink.lines(t) {
		if l["msg"] == "request" {
			if l["route"] != "GET /health" || l["status"] != float64(200) || l["method"] != "GET" {
				t.Fatalf("request line %v", l)
			}
			ids = append(ids, l["request_id"].(string))
		}
	}
	if len(ids) != 2 || ids[0] != "trace-42" || ids[1] != generated {
		t.Fatalf("request lines carry ids %v, want [trace-42 %s]", ids, generated)
	}
}

func TestServiceLogsCarryTheRequestID(t *testing.T) {
	t.Parallel()
	svc, srv, sink := loggedServer(t, slog.LevelWarn)
	ctx := context.Background()
	if _, err := svc.EnsureAdmin(ctx, service.NewUser{Username: "ines", Email: "ines@example.com", Password: testPassword}, service.AdminFromBootstrap); err != nil {
		t.Fatal(err)
	}
	pair, _, err := svc.PasswordLogin(ctx, "ines", testPassword, service.Client{})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"grant_type":"refresh_token","refresh_token":"` + pair.RefreshToken + `"}`
	if resp := doRequest(t, http.MethodPost, srv.URL+"/api/v1/auth/refresh", "first-use", body); resp.StatusCode != http.StatusOK {
		t.Fatalf("first refresh: %d", resp.StatusCode)
	}
	if resp := doRequest(t, http.MethodPost, srv.URL+"/api/v1/auth/refresh", "second-use", body); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reuse: %d", resp.StatusCode)
	}

	lines := sink.lines(t)
	var reuse []map[string]any
	for _, l := range lines {
		if l["msg"] == "request" {
			t.Fatalf("a request line at warn level: %v", l)
		}
		if l["msg"] == "refresh token reuse: session revoked" {
			reuse = append(reuse, l)
		}
	}
	if len(reuse) != 1 || reuse[0]["request_id"] != "second-use" {
		t.Fatalf("reuse warnings %v, want one with request_id second-use", reuse)
	}
}
