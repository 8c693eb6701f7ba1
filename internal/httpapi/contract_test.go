package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/service"
)

// specOperations lists every operation of openapi.yaml as "METHOD /path".
func specOperations(t *testing.T) (*openapi3.T, []string) {
	t.Helper()
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(ops)
	return spec, ops
}

// patternRecorder is an api.ServeMux that only records what the generated server registers.
type patternRecorder struct{ patterns []string }

func (r *patternRecorder) HandleFunc(pattern string, _ func(http.ResponseWriter, *http.Request)) {
	r.patterns = append(r.patterns, pattern)
}

func (r *patternRecorder) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestTheGeneratedRouterServesExactlyTheContract(t *testing.T) {
	_, ops := specOperations(t)
	rec := &patternRecorder{}
	api.HandlerWithOptions(api.NewStrictHandler(&httpapi.API{}, nil), api.StdHTTPServerOptions{BaseRouter: rec})
	sort.Strings(rec.patterns)
	if !slices.Equal(rec.patterns, ops) {
		t.Fatalf("the generated router registers\n  %s\nbut openapi.yaml has\n  %s\n(run make generate)",
			strings.Join(rec.patterns, "\n  "), strings.Join(ops, "\n  "))
	}
}

// routeLog collects the route that the server's request log names for each request.
type routeLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *routeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// routeOf returns the route logged for the request with the given id, "unmatched" for the
// fallback handler. The line is written once the handler returns, which may be just after
// the client has its response, so it waits for it briefly.
func (l *routeLog) routeOf(t *testing.T, requestID string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
		for sc.Scan() {
			var line struct {
				Msg, Route string
				RequestID  string `json:"request_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				l.mu.Unlock()
				t.Fatalf("log line %q: %v", sc.Text(), err)
			}
			if line.Msg == "request" && line.RequestID == requestID {
				l.mu.Unlock()
				return line.Route
			}
		}
		l.mu.Unlock()
	}
	t.Fatalf("no request line for request id %s", requestID)
	return ""
}

// TestNewServerRoutesEveryOperationAndNothingElse walks openapi.yaml and calls every
// operation on the real handler from NewServer: the request log must name the operation's
// own route, not the fallback that answers unrouted requests. Paths that are not in the
// contract must reach the fallback.
func TestNewServerRoutesEveryOperationAndNothingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	spec, ops := specOperations(t)
	logs := &routeLog{}
	h, err := httpapi.NewServer(e.svc, httpapi.ServerOptions{Docs: true, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	requests := 0
	call := func(method, path string) string {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		requests++
		id := fmt.Sprintf("contract-%d", requests)
		req.Header.Set("X-Request-ID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return logs.routeOf(t, id)
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		item := spec.Paths.Value(path)
		concrete := path
		for _, p := range append(slices.Clone(item.Parameters), item.GetOperation(method).Parameters...) {
			if p.Value.In == openapi3.ParameterInPath {
				concrete = strings.ReplaceAll(concrete, "{"+p.Value.Name+"}", fmt.Sprint(p.Value.Example))
			}
		}
		if got := call(method, concrete); got != op {
			t.Errorf("%s %s was served by route %q, want %q", method, concrete, got, op)
		}
	}
	for _, path := range []string{"/", "/api", "/api/v1", "/api/v1/", "/docs/", "/openapi.json", "/metrics", "/debug/pprof/", "/api/v1/users/me/sessions/x/y"} {
		if got := call(http.MethodGet, path); got != "unmatched" {
			t.Errorf("GET %s is not in openapi.yaml but was served by route %q", path, got)
		}
	}
}

// TestEveryOperationIsDocumented holds every operation of openapi.yaml to what a client
// author needs: a summary and a description, examples for every body, and every error
// response it can give, each with examples carrying the codes it can answer.
func TestEveryOperationIsDocumented(t *testing.T) {
	spec, ops := specOperations(t)
	var enum []string
	for _, v := range spec.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	documented := map[string]bool{}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		item := spec.Paths.Value(path)
		o := item.GetOperation(method)
		fail := func(format string, args ...any) { t.Errorf("%s: %s", op, fmt.Sprintf(format, args...)) }
		if o.OperationID == "" || strings.TrimSpace(o.Summary) == "" || strings.TrimSpace(o.Description) == "" {
			fail("needs an operationId, a summary and a description")
		}
		if len(o.Tags) == 0 {
			fail("needs a tag")
		}
		security := spec.Security
		if o.Security != nil {
			security = *o.Security
		}
		needs := map[int]bool{}
		if len(security) > 0 {
			needs[http.StatusUnauthorized] = true
			needs[http.StatusInternalServerError] = true
			needs[http.StatusServiceUnavailable] = true
		}
		for _, p := range append(slices.Clone(item.Parameters), o.Parameters...) {
			if p.Value.Example == nil && len(p.Value.Examples) == 0 && p.Value.Schema.Value.Default == nil {
				fail("parameter %s needs an example or a default", p.Value.Name)
			}
			needs[http.StatusBadRequest] = true
		}
		if o.RequestBody != nil {
			for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType} {
				needs[status] = true
			}
			for ct, media := range o.RequestBody.Value.Content {
				if media.Example == nil && len(media.Examples) == 0 {
					fail("request body %s needs an example", ct)
				}
			}
		}
		for status := range needs {
			if o.Responses.Status(status) == nil {
				fail("must document its %d response", status)
			}
		}
		for code, ref := range o.Responses.Map() {
			status, err := strconv.Atoi(code)
			if err != nil {
				fail("response %q: use explicit status codes", code)
				continue
			}
			for ct, media := range ref.Value.Content {
				if status < 400 {
					if media.Schema != nil && !hasExample(media) {
						fail("%d %s needs an example", status, ct)
					}
					continue
				}
				if ct != "application/problem+json" {
					// The pages emailed links open answer people in HTML, and anything the
					// server cannot read at all with a problem document, which the same
					// status must document too.
					page := ct == "text/html" && slices.Contains(o.Tags, "pages") && ref.Value.Content.Get("application/problem+json") != nil
					if !page && (status < 500 || !strings.HasPrefix(path, "/health")) {
						fail("%d answers %s, not a problem document", status, ct)
					}
					continue
				}
				codes := problemExampleCodes(media)
				if len(codes) == 0 {
					fail("%d needs examples with the error codes it answers", status)
				}
				for _, ex := range problemExamples(media) {
					if ex.Status != status {
						fail("%d has an example with status %d", status, ex.Status)
					}
					if !slices.Contains(enum, ex.Code) {
						fail("%d has an example with code %q, which is not in ErrorCode", status, ex.Code)
					}
					documented[ex.Code] = true
				}
			}
		}
	}
	// method_not_allowed belongs to no operation: info.description documents it.
	documented[service.CodeMethodNotAllowed] = strings.Contains(spec.Info.Description, service.CodeMethodNotAllowed)
	for _, code := range enum {
		if !documented[code] {
			t.Errorf("error code %s is answered by no documented response", code)
		}
	}
}

// hasExample reports whether a body has an example, on the media type or on its schema (or,
// for an array, on its items).
func hasExample(media *openapi3.MediaType) bool {
	if media.Example != nil || len(media.Examples) > 0 {
		return true
	}
	s := media.Schema.Value
	return s.Example != nil || s.Items != nil && s.Items.Value.Example != nil
}

type problemExample struct {
	Status int
	Code   string
}

// problemExamples decodes a problem response's example or examples.
func problemExamples(media *openapi3.MediaType) []problemExample {
	var values []any
	if media.Example != nil {
		values = append(values, media.Example)
	}
	for _, ex := range media.Examples {
		values = append(values, ex.Value.Value)
	}
	var out []problemExample
	for _, v := range values {
		b, _ := json.Marshal(v)
		var p problemExample
		_ = json.Unmarshal(b, &p)
		out = append(out, p)
	}
	return out
}

// problemExampleCodes lists the error codes a problem response documents.
func problemExampleCodes(media *openapi3.MediaType) []string {
	var codes []string
	for _, ex := range problemExamples(media) {
		if ex.Code != "" {
			codes = append(codes, ex.Code)
		}
	}
	return codes
}
