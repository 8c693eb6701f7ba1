package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/authly/authly/internal/clientip"
	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/logctx"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/web"
)

// ServerOptions configure the HTTP side of Authly.
type ServerOptions struct {
	Logger       *slog.Logger
	Metrics      *metrics.Metrics // HTTP request metrics; nil turns them off
	Docs         bool             // serve GET /docs and GET /openapi.yaml; they answer 404 otherwise
	MaxBodyBytes int64            // request body cap (AUTHLY_MAX_BODY_BYTES); 64 KiB when zero
	// ClientIP decides which address a request comes from (AUTHLY_TRUSTED_PROXIES); nil
	// trusts no proxy and takes the connection's peer.
	ClientIP *clientip.Resolver
	// CORSAllowedOrigins are the exact origins CORS allows (AUTHLY_CORS_ALLOWED_ORIGINS);
	// none means no CORS headers at all.
	CORSAllowedOrigins []string
	// JWKS is served at GET /.well-known/jwks.json (usually the key store); nil serves an
	// empty key set.
	JWKS JWKSSource
}

const defaultMaxBodyBytes = 64 << 10

// server holds what the HTTP middleware needs.
type server struct {
	svc      *service.Service
	log      *slog.Logger
	metrics  *metrics.Metrics
	maxBody  int64
	clientIP *clientip.Resolver
	routes   map[string]*route
	mux      *http.ServeMux
	problems *problemWriter
}

// NewServer builds Authly's whole HTTP handler on svc. Every route comes from openapi.yaml
// through the generated std-http server; this is the one place they are mounted. From the
// outside in, a request passes the panic recoverer, the request log, the security headers,
// CORS, the router, the guard (guard.go) and the strict handler, which calls API.
func NewServer(svc *service.Service, opts ServerOptions) (http.Handler, error) {
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
	pages, err := web.New("")
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
	strict := api.NewStrictHandlerWithOptions(&API{svc: svc, docs: opts.Docs, pages: pages, jwks: opts.JWKS}, nil, api.StrictHTTPServerOptions{
		// The generated defaults write err.Error() to the client; these never do.
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			s.problems.write(w, r, &service.Error{Kind: service.KindInvalid, Code: service.CodeInvalidRequest,
				Message: "The request body could not be decoded.", Cause: err})
		},
		ResponseErrorHandlerFunc: s.problems.write,
	})
	api.HandlerWithOptions(strict, api.StdHTTPServerOptions{
		BaseRouter:  s.mux,
		Middlewares: []api.MiddlewareFunc{s.guard},
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			s.problems.write(w, r, &service.Error{Kind: service.KindInvalid, Code: service.CodeInvalidRequest,
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
func paramFieldErrors(err error) []service.FieldError {
	var pe *api.InvalidParamFormatError
	if errors.As(err, &pe) {
		return []service.FieldError{{Field: pe.ParamName, Message: "is malformed"}}
	}
	var qe *api.RequiredParamError
	if errors.As(err, &qe) {
		return []service.FieldError{{Field: qe.ParamName, Message: "is required"}}
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
		s.problems.write(w, r, service.Errorf(service.KindMethodNotAllowed, service.CodeMethodNotAllowed, "The method is not allowed on this resource."))
		return
	}
	s.problems.write(w, r, service.NotFound())
}

// requestIDPattern is what an incoming X-Request-ID must look like to be reused; anything
// else is replaced, so the header cannot inject into logs.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

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

// logRequests gives each request an id and a logger carrying it, and when the request ends
// records the HTTP metrics and logs one line. Only the route template is logged, never the raw
// path or query.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !requestIDPattern.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		r = r.WithContext(logctx.With(r.Context(), s.log, id))
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
		logctx.From(r.Context(), s.log).LogAttrs(r.Context(), slog.LevelInfo, "request",
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
				s.problems.write(w, r, service.Internal(errors.New("panic: "+string(debug.Stack()))))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
