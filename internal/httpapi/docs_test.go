package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/authly/authly/internal/docs"
	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/service"
)

func init() {
	// The contract checker decodes every response body it validates; these two media types
	// have no decoder of their own in kin-openapi.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.FileBodyDecoder)
}

// docsServer serves e's service with the reference page on or off.
func docsServer(t *testing.T, e *env, enabled bool) *api.ClientWithResponses {
	t.Helper()
	h, err := httpapi.NewServer(e.svc, httpapi.ServerOptions{Docs: enabled})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client, err := api.NewClientWithResponses(srv.URL, api.WithHTTPClient(&http.Client{
		Transport: &contractChecker{t: t, next: http.DefaultTransport},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

const defaultCSP = "default-src 'none'; frame-ancestors 'none'"

func TestDocsServeTheSpecThePageAndItsScript(t *testing.T) {
	t.Parallel()
	client := docsServer(t, newEnv(t), true)
	ctx := context.Background()

	specResp, err := client.GetOpenAPISpecWithResponse(ctx)
	if err != nil || specResp.StatusCode() != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %v %d", err, specResp.StatusCode())
	}
	onDisk, err := os.ReadFile(filepath.Join("..", "..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(specResp.Body, onDisk) {
		t.Error("GET /openapi.yaml differs from openapi.yaml: run make generate")
	}
	if ct, csp := specResp.HTTPResponse.Header.Get("Content-Type"), specResp.HTTPResponse.Header.Get("Content-Security-Policy"); ct != "application/yaml" || csp != defaultCSP {
		t.Errorf("GET /openapi.yaml: Content-Type %q, CSP %q", ct, csp)
	}

	page, err := client.GetDocsWithResponse(ctx)
	if err != nil || page.StatusCode() != http.StatusOK {
		t.Fatalf("GET /docs: %v %d", err, page.StatusCode())
	}
	if ct := page.HTTPResponse.Header.Get("Content-Type"); ct != "text/html" {
		t.Errorf("GET /docs: Content-Type %q", ct)
	}
	if !bytes.Contains(page.Body, []byte(`<redoc spec-url="openapi.yaml">`)) || !bytes.Contains(page.Body, []byte(`<script src="docs/redoc.standalone.js">`)) {
		t.Errorf("GET /docs is not the reference page:\n%s", page.Body)
	}
	// The relaxed policy is the one openapi.yaml documents, and it still forbids every
	// other site and any inline script.
	csp := page.HTTPResponse.Header.Get("Content-Security-Policy")
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	documented := spec.Paths.Value("/docs").Get.Responses.Status(200).Value.Headers["Content-Security-Policy"].Value.Schema.Value.Example
	if csp != docs.PageCSP || csp != documented {
		t.Errorf("GET /docs: CSP %q; the page's is %q; openapi.yaml documents %q", csp, docs.PageCSP, documented)
	}
	for _, directive := range strings.Split(csp, ";") {
		name, sources, _ := strings.Cut(strings.TrimSpace(directive), " ")
		if strings.Contains(sources, "http") || strings.Contains(sources, "*") || name == "script-src" && sources != "'self'" {
			t.Errorf("GET /docs: the CSP directive %q allows too much", directive)
		}
	}
	if xfo := page.HTTPResponse.Header.Get("X-Frame-Options"); xfo != "DENY" {
		t.Errorf("GET /docs: X-Frame-Options %q", xfo)
	}

	script, err := client.GetDocsScriptWithResponse(ctx)
	if err != nil || script.StatusCode() != http.StatusOK {
		t.Fatalf("GET /docs/redoc.standalone.js: %v %d", err, script.StatusCode())
	}
	if ct, csp := script.HTTPResponse.Header.Get("Content-Type"), script.HTTPResponse.Header.Get("Content-Security-Policy"); ct != "text/javascript" || csp != defaultCSP {
		t.Errorf("GET /docs/redoc.standalone.js: Content-Type %q, CSP %q", ct, csp)
	}
	if !bytes.Equal(script.Body, docs.Script()) || len(script.Body) < 100_000 {
		t.Errorf("GET /docs/redoc.standalone.js: %d bytes, not the Redoc bundle", len(script.Body))
	}

	// Every other response keeps the strict policy.
	health, err := client.GetHealthWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if csp := health.HTTPResponse.Header.Get("Content-Security-Policy"); csp != defaultCSP {
		t.Errorf("GET /health: CSP %q", csp)
	}
}

func TestDocsCanBeDisabled(t *testing.T) {
	t.Parallel()
	client := docsServer(t, newEnv(t), false)
	ctx := context.Background()
	for path, call := range map[string]func() (*http.Response, []byte, error){
		"/openapi.yaml": func() (*http.Response, []byte, error) {
			r, err := client.GetOpenAPISpecWithResponse(ctx)
			return r.HTTPResponse, r.Body, err
		},
		"/docs": func() (*http.Response, []byte, error) {
			r, err := client.GetDocsWithResponse(ctx)
			return r.HTTPResponse, r.Body, err
		},
		"/docs/redoc.standalone.js": func() (*http.Response, []byte, error) {
			r, err := client.GetDocsScriptWithResponse(ctx)
			return r.HTTPResponse, r.Body, err
		},
	} {
		resp, body, err := call()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusNotFound || problemCode(t, body) != service.CodeNotFound {
			t.Errorf("GET %s with docs disabled: %d %s", path, resp.StatusCode, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != defaultCSP {
			t.Errorf("GET %s with docs disabled: CSP %q", path, csp)
		}
	}
}

// chromium finds a Chromium or Chrome binary: $AUTHLY_CHROMIUM, or one on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AUTHLY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found for the reference page test: install it (Debian: apt-get install chromium), " +
		"or set AUTHLY_CHROMIUM to a Chromium or Chrome binary")
	return ""
}

// requestLog records the paths a browser asks for.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.paths = append(l.paths, r.URL.Path)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// TestTheReferencePageRendersInChromium loads /docs in headless Chromium, under the CSP the
// server sends, and requires every operation of openapi.yaml to be rendered. The page itself
// holds none of them: they appear only when Redoc ran, fetched the document and rendered it.
func TestTheReferencePageRendersInChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	e := newEnv(t)
	h, err := httpapi.NewServer(e.svc, httpapi.ServerOptions{Docs: true})
	if err != nil {
		t.Fatal(err)
	}
	requests := &requestLog{}
	srv := httptest.NewServer(requests.wrap(h))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage",
		// The sandbox cannot start as root, which is how CI runs; the page is our own.
		"--no-sandbox",
		"--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=20000",
		"--dump-dom", srv.URL+"/docs")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("chromium did not finish in time\n%s", stderr.String())
		}
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()

	spec, ops := specOperations(t)
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		summary := spec.Paths.Value(path).GetOperation(method).Summary
		if !strings.Contains(dom, summary) {
			t.Errorf("the rendered page lacks the operation %s (%q)", op, summary)
		}
	}
	requests.mu.Lock()
	defer requests.mu.Unlock()
	for _, want := range []string{"/docs", "/docs/redoc.standalone.js", "/openapi.yaml"} {
		if !slices.Contains(requests.paths, want) {
			t.Errorf("the browser never asked for %s; it asked for %v", want, requests.paths)
		}
	}
	if t.Failed() {
		t.Logf("chromium's output:\n%s\nthe page:\n%.3000s", stderr.String(), dom)
	}
}
