package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/metrics"
)

func TestLivenessAndReadinessFollowTheLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ready := func() (int, api.Readiness) {
		t.Helper()
		r, err := e.client.GetReadinessWithResponse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.JSON200 != nil {
			return r.StatusCode(), *r.JSON200
		}
		if r.JSON503 == nil {
			t.Fatalf("readiness: %d %s", r.StatusCode(), r.Body)
		}
		return r.StatusCode(), *r.JSON503
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || body.Status != api.ReadinessStatusStarting {
		t.Fatalf("before serving: %d %+v", code, body)
	}
	e.svc.MarkServing()
	if code, body := ready(); code != http.StatusOK || body.Database != api.ReadinessDatabaseOk {
		t.Fatalf("serving: %d %+v", code, body)
	}
	e.svc.MarkDraining()
	if code, body := ready(); code != http.StatusServiceUnavailable || body.Status != api.ReadinessStatusDraining {
		t.Fatalf("draining: %d %+v", code, body)
	}
	e.svc.MarkServing()
	e.pool.Close()
	if code, body := ready(); code != http.StatusServiceUnavailable || body.Database != api.ReadinessDatabaseUnreachable {
		t.Fatalf("database gone: %d %+v", code, body)
	}
	live, err := e.client.GetLivenessWithResponse(ctx)
	if err != nil || live.JSON200 == nil || live.JSON200.Status != api.LivenessStatusOk {
		t.Fatalf("liveness with the database gone: %v %d", err, live.StatusCode())
	}
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line is not one JSON object: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEveryRequestLogsOneSafeLine(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := newEnvWithServer(t, httpapi.ServerOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	_, tok := e.verifiedUser("olga")

	resp, _ := e.raw("GET", "/api/v1/users/me", "", "", "Authorization", "Bearer "+tok.AccessToken, "X-Request-ID", "req-123.abc")
	if resp.Header.Get("X-Request-ID") != "req-123.abc" {
		t.Fatalf("a well-formed request id is not echoed: %q", resp.Header.Get("X-Request-ID"))
	}
	resp, _ = e.raw("GET", "/api/v1/users/me", "", "", "Authorization", "Bearer "+tok.AccessToken, "X-Request-ID", `bad id"} {"forged":"line`)
	if id := resp.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("a malformed request id was kept: %q", id)
	}
	e.raw("GET", "/api/v1/users/%0a%7B%22forged%22:1%7D/nothing", "", "")

	out := logs.String()
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, testPassword} {
		if strings.Contains(out, secret) {
			t.Fatal("the log contains a token or password")
		}
	}
	var requests []map[string]any
	for _, l := range logs.lines(t) {
		if l["msg"] == "request" {
			requests = append(requests, l)
		}
		if _, forged := l["forged"]; forged {
			t.Fatalf("a client forged a log field: %v", l)
		}
	}
	if len(requests) < 3 {
		t.Fatalf("request lines: %d", len(requests))
	}
	for _, field := range []string{"request_id", "method", "route", "status", "duration", "client_ip"} {
		if _, ok := requests[len(requests)-1][field]; !ok {
			t.Fatalf("the request line lacks %s: %v", field, requests[len(requests)-1])
		}
	}
	var sawEchoed, sawUnmatched bool
	for _, l := range requests {
		sawEchoed = sawEchoed || (l["request_id"] == "req-123.abc" && l["route"] == "GET /api/v1/users/me")
		sawUnmatched = sawUnmatched || (l["route"] == "unmatched" && l["status"] == float64(404))
	}
	if !sawEchoed || !sawUnmatched {
		t.Fatalf("route templates, not raw paths, are logged: %v", requests)
	}
}

func TestMetricsCountRequestsLoginsAndTokens(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	e := newEnvWithServer(t, httpapi.ServerOptions{Metrics: m})
	_, tok := e.verifiedUser("pia")
	e.tryLogin("pia", "not the password")
	if _, err := e.client.RefreshTokenWithResponse(context.Background(), api.RefreshRequest{
		GrantType: api.RefreshRequestGrantTypeRefreshToken, RefreshToken: tok.RefreshToken,
	}); err != nil {
		t.Fatal(err)
	}
	if r, _ := e.client.LogoutWithResponse(context.Background(), bearer(e.login("pia", testPassword).AccessToken)); r.StatusCode() != http.StatusOK {
		t.Fatalf("logout: %d", r.StatusCode())
	}

	if testutil.CollectAndCount(m.Registry(), "authly_http_requests_total") == 0 {
		t.Fatal("no HTTP request series")
	}
	checks := []struct {
		name, expo string
	}{
		{"successful logins", `authly_logins_total{outcome="success"}`},
		{"failed logins", `authly_logins_total{outcome="invalid_credentials"}`},
		{"issued access tokens", `authly_tokens_issued_total{type="access"}`},
		{"tokens revoked by logout", `authly_tokens_revoked_total{reason="logout"}`},
		{"requests by route template", `authly_http_requests_total{method="POST",route="POST /api/v1/auth/token",status="200"}`},
		{"the latency histogram", `authly_http_request_duration_seconds_count{method="POST",route="POST /api/v1/auth/logout"}`},
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			labels := make([]string, 0, len(metric.GetLabel()))
			for _, l := range metric.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			name := mf.GetName()
			value := metric.GetCounter().GetValue()
			if h := metric.GetHistogram(); h != nil {
				name += "_count"
				value = float64(h.GetSampleCount())
			}
			if value > 0 {
				all.WriteString(name + "{" + strings.Join(labels, ",") + "}\n")
			}
		}
	}
	for _, c := range checks {
		if !strings.Contains(all.String(), c.expo) {
			t.Errorf("%s: no non-zero %s in\n%s", c.name, c.expo, all.String())
		}
	}
}
