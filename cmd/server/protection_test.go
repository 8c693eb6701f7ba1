package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/testredis"
)

func TestAnUnreachableRedisStopsTheStart(t *testing.T) {
	err := run(context.Background(), nil, envFrom(map[string]string{
		"DATABASE_URL":              testdb.URL(t),
		"AUTHLY_MAIL_DIR":           t.TempDir(),
		"JWT_SECRET_KEY":            secretA,
		"AUTHLY_KEY_ENCRYPTION_KEY": testKEK,
		"JWT_REFRESH_SECRET_KEY":    secretB,
		"AUTHLY_BCRYPT_COST":        "4",
		"AUTHLY_LISTEN_ADDR":        "127.0.0.1:0",
		"AUTHLY_RATE_LIMIT_STORE":   "redis",
		"AUTHLY_REDIS_URL":          "redis://:hunter2@127.0.0.1:1/0",
	}), nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "AUTHLY_REDIS_URL") || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("want a start-up error naming AUTHLY_REDIS_URL, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error shows the Redis password: %v", err)
	}
}

// TestServeWiresTheProtections starts the server with Redis rate limits, a trusted proxy, a
// small body cap and one CORS origin, and checks each reaches the running server.
func TestServeWiresTheProtections(t *testing.T) {
	base, stop := startServe(t, map[string]string{
		"DATABASE_URL":                testdb.URL(t),
		"AUTHLY_MAIL_DIR":             t.TempDir(),
		"JWT_SECRET_KEY":              secretA,
		"AUTHLY_KEY_ENCRYPTION_KEY":   testKEK,
		"JWT_REFRESH_SECRET_KEY":      secretB,
		"AUTHLY_BCRYPT_COST":          "4",
		"AUTHLY_LISTEN_ADDR":          "127.0.0.1:0",
		"AUTHLY_RATE_LIMIT_STORE":     "redis",
		"AUTHLY_REDIS_URL":            testredis.URL(t),
		"AUTHLY_RATE_LIMIT_LOGIN":     "2/1h",
		"AUTHLY_TRUSTED_PROXIES":      "127.0.0.1",
		"AUTHLY_LOCKOUT_THRESHOLD":    "0",
		"AUTHLY_MAX_BODY_BYTES":       "1024",
		"AUTHLY_CORS_ALLOWED_ORIGINS": "https://app.example.com",
	})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve returned %v on shutdown", err)
		}
	}()
	// The Redis server may outlive this run (AUTHLY_TEST_REDIS_URL), so the login name is new
	// each time. Its keys expire within the hour.
	name := "wired-" + strings.ToLower(rand.Text())
	send := func(body string, headers ...string) *http.Response {
		req, err := http.NewRequest("POST", base+"/api/v1/auth/token", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	login := `{"grant_type":"password","username":"` + name + `","password":"wrong password"}`
	var statuses []int
	for range 3 {
		statuses = append(statuses, send(login, "X-Forwarded-For", "203.0.113.9").StatusCode)
	}
	if statuses[0] != 401 || statuses[1] != 401 || statuses[2] != 429 {
		t.Errorf("logins under AUTHLY_RATE_LIMIT_LOGIN=2/1h: %v", statuses)
	}
	if resp := send(`{"grant_type":"password","username":"x","password":"` + strings.Repeat("x", 2000) + `"}`); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over AUTHLY_MAX_BODY_BYTES: %d", resp.StatusCode)
	}
	if resp := send(login, "Origin", "https://app.example.com"); resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("no CORS for the configured origin: %v", resp.Header)
	}
}
