package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/authly/authly/internal/clientip"
	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/metrics"
)

// ServerOptions configure the HTTP side of Authly.
type ServerOptions struct {
	Logger       *slog.Logger
	Metrics      *metrics.Metrics // nil turns HTTP metrics off
	Docs         bool             // serve GET /docs and GET /openapi.yaml; they answer 404 otherwise
	MaxBodyBytes int64            // request body cap (AUTHLY_MAX_BODY_BYTES); 64 KiB when zero
	// ClientIP decides which address a request comes from (AUTHLY_TRUSTED_PROXIES); nil
	// trusts no proxy and takes the connection's peer.
	ClientIP *clientip.Resolver
	// CORSAllowedOrigins are the exact origins CORS allows (AUTHLY_CORS_ALLOWED_ORIGINS);
	// none means no CORS headers at all.
	CORSAllowedOrigins []string
}

const defaultMaxBodyBytes = 64 << 10

// statusOf is the one table that maps an error kind to an HTTP status. Duplicates answer
// 400, not 409, as the contract in DESIGN.md §2 specifies.
var statusOf = map[Kind]int{
	KindInternal:         http.StatusInternalServerError,
	KindInvalid:          http.StatusBadRequest,
	KindUnauthenticated:  http.StatusUnauthorized,
	KindForbidden:        http.StatusForbidden,
	KindNotFound:         http.StatusNotFound,
	KindConflict:         http.StatusBadRequest,
	KindTooLarge:         http.StatusRequestEntityTooLarge,
	KindUnsupportedMedia: http.StatusUnsupportedMediaType,
	KindMethodNotAllowed: http.StatusMethodNotAllowed,
	KindRateLimited:      http.StatusTooManyRequests,
	KindUnavailable:      http.StatusServiceUnavailable,
}

// server holds what the HTTP middleware needs.
type server struct {
	svc      *Service
	log      *slog.Logger
	metrics  *metrics.Metrics
	maxBody  int64
	clientIP *clientip.Resolver
	routes   map[string]*route
	mux      *http.ServeMux
	problems *problemWriter
}

// NewServer builds Authly's whole HTTP handler. Every route comes from openapi.yaml through
// the generated std-http server; this is the one place they are mounted.
func NewServer(svc *Service, opts ServerOptions) (http.Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultMaxBodyBytes
	}
	if opts.ClientIP == nil {
		opts.ClientIP = clientip.NewResolver(nil)
	}
	routes, err := loadRoutes()
	if err != nil {
		return nil, err
	}
	s := &server{
		svc:      svc,
		log:      opts.Logger,
		metrics:  opts.Metrics,
		maxBody:  opts.MaxBodyBytes,
		clientIP: opts.ClientIP,
		routes:   routes,
		mux:      http.NewServeMux(),
		problems: &problemWriter{log: opts.Logger},
	}
	strict := api.NewStrictHandlerWithOptions(&API{svc: svc, docs: opts.Docs}, nil, api.StrictHTTPServerOptions{
		// The generated defaults write err.Error() to the client; these never do.
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			s.problems.write(w, r, &Error{Kind: KindInvalid, Code: CodeInvalidRequest,
				Message: "The request body could not be decoded.", Cause: err})
		},
		ResponseErrorHandlerFunc: s.problems.write,
	})
	api.HandlerWithOptions(strict, api.StdHTTPServerOptions{
		BaseRouter:  s.mux,
		Middlewares: []api.MiddlewareFunc{s.guard},
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			s.problems.write(w, r, &Error{Kind: KindInvalid, Code: CodeInvalidRequest,
				Message: "A request parameter is invalid.", Cause: err,
				Fields: paramFieldErrors(err)})
		},
	})
	// Anything the contract does not route lands here: 405 when the path exists with
	// another method, 404 otherwise.
	s.mux.HandleFunc("/", s.notRouted)
	return s.recoverer(s.logRequests(securityHeaders(corsHeaders(opts.CORSAllowedOrigins, s.mux)))), nil
}

// paramFieldErrors names the parameter of a generated binding error.
func paramFieldErrors(err error) []FieldError {
	var pe *api.InvalidParamFormatError
	if errors.As(err, &pe) {
		return []FieldError{{Field: pe.ParamName, Message: "is malformed"}}
	}
	var qe *api.RequiredParamError
	if errors.As(err, &qe) {
		return []FieldError{{Field: qe.ParamName, Message: "is required"}}
	}
	return nil
}

var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (s *server) notRouted(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.problems.write(w, r, Errorf(KindMethodNotAllowed, CodeMethodNotAllowed, "The method is not allowed on this resource."))
		return
	}
	s.problems.write(w, r, errNotFound())
}

// securityHeaderValues are the headers every response carries (OWASP Secure Headers), with
// canonical keys and values of capacity one, so that every response can share them: an Add
// copies, a Set replaces, and nothing writes into them.
var securityHeaderValues = func() []struct {
	key   string
	value []string
} {
	var out []struct {
		key   string
		value []string
	}
	for _, kv := range [][2]string{
		{"X-Content-Type-Options", "nosniff"},
		{"X-Frame-Options", "DENY"},
		{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
		{"Strict-Transport-Security", "max-age=31536000"},
		{"Referrer-Policy", "no-referrer"},
		{"Cross-Origin-Resource-Policy", "same-origin"},
		// Current OWASP advice: turn the legacy XSS auditor off; CSP does the job.
		{"X-XSS-Protection", "0"},
		// Tokens and user data must never be cached by a browser or a proxy.
		{"Cache-Control", "no-store"},
	} {
		out = append(out, struct {
			key   string
			value []string
		}{http.CanonicalHeaderKey(kv[0]), []string{kv[1]}[:1:1]})
	}
	return out
}()

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, kv := range securityHeaderValues {
			h[kv.key] = kv.value
		}
		next.ServeHTTP(w, r)
	})
}

// requestIDPattern is what an incoming X-Request-ID must look like to be reused; anything
// else is replaced, so the header cannot inject into logs.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type loggerKey struct{}

// requestLog is what logRequests keeps in a request's context. The logger carrying the
// request id is only built when something is logged, which at the default levels is rare:
// building it for every request cost several allocations.
type requestLog struct {
	base *slog.Logger
	id   string
}

func (l *requestLog) logger() *slog.Logger { return l.base.With("request_id", l.id) }

// loggerFrom returns the request-scoped logger.
func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*requestLog); ok {
		return l.logger()
	}
	return fallback
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests gives each request an id and a logger carrying it, and logs one line when the
// request ends. Only the route template is logged, never the raw path or query.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !requestIDPattern.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		rl := &requestLog{base: s.log, id: id}
		r = r.WithContext(context.WithValue(r.Context(), loggerKey{}, rl))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		s.metrics.ObserveHTTP(route, r.Method, sw.status, time.Since(start))
		if !s.log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		rl.logger().LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)),
			slog.String("client_ip", s.clientIP.ClientIP(r)),
		)
	})
}

// recoverer turns a panic into a logged 500 without leaking the panic value.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.problems.write(w, r, internal(errors.New("panic: "+string(debug.Stack()))))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// problemWriter is the one writer of application/problem+json (RFC 9457).
type problemWriter struct {
	log *slog.Logger
}

func (p *problemWriter) write(w http.ResponseWriter, r *http.Request, err error) {
	e := AsError(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		// A 5xx is logged once, here, with its cause. A 4xx is the client's business. A login
		// the bcrypt pool sheds is the server protecting itself as designed, not a fault: it is
		// a warning, so that a flood does not bury real errors (the metrics count each one).
		level := slog.LevelError
		if e.Code == CodeServerBusy {
			level = slog.LevelWarn
		}
		loggerFrom(r.Context(), p.log).LogAttrs(r.Context(), level, "request failed",
			slog.String("code", e.Code), slog.Int("status", status), slog.Any("cause", e.Cause))
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	if e.Kind == KindUnauthenticated && e.Code == CodeInvalidToken {
		h.Set("WWW-Authenticate", `Bearer realm="authly", error="invalid_token"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	body := api.Problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Code:   api.ErrorCode(e.Code),
	}
	if e.Message != "" {
		body.Detail = &e.Message
	}
	if len(e.Fields) > 0 {
		fields := make([]api.FieldError, len(e.Fields))
		for i, f := range e.Fields {
			fields[i] = api.FieldError{Field: f.Field, Message: f.Message}
		}
		body.Errors = &fields
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
