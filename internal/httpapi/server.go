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
	// RefusalHold is how refused requests (server_busy, rate_limited, account_locked) are
	// held before their answer (AUTHLY_REFUSAL_HOLD, AUTHLY_REFUSAL_HOLD_CONCURRENT); the
	// zero value holds none.
	RefusalHold RefusalHold
	// RefusalLogInterval is how often, at most, the log gets a line per kind of refusal;
	// DefaultRefusalLogInterval when zero.
	RefusalLogInterval time.Duration
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
// CORS, the trailing slash, the router, the guard (guard.go) and the strict handler, which
// calls API.
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
		problems: &problemWriter{log: opts.Logger,
			refusals: newRefusals(opts.Logger, opts.Metrics, opts.RefusalLogInterval, opts.RefusalHold)},
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
	return s.recoverer(s.logRequests(securityHeaders(corsHeaders(opts.CORSAllowedOrigins, s.trailingSlash(s.mux))))), nil
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

// probeMethods are the methods an Allow header can name, in the order it names them.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// notRouted answers what the contract does not route: 405 when the path names a resource of
// the contract that another method serves, 404 otherwise.
func (s *server) notRouted(w http.ResponseWriter, r *http.Request) {
	if allowed := s.allowedMethods(r); len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.problems.write(w, r, service.Errorf(service.KindMethodNotAllowed, service.CodeMethodNotAllowed, "The method is not allowed on this resource."))
		return
	}
	s.problems.write(w, r, service.NotFound())
}

// allowedMethods lists the methods that serve r's path. A path can match several templates,
// such as /api/v1/users/me, which GET /api/v1/users/me serves while PUT and DELETE would take
// it for /api/v1/users/{user_id} and refuse "me" as an id. The resource a path names is the
// most specific template it matches, as the router decides between two routes, and only the
// methods of that template work on it.
func (s *server) allowedMethods(r *http.Request) []string {
	var (
		allowed []string
		best    string
	)
	probe := *r
	for _, m := range probeMethods {
		probe.Method = m
		_, pattern := s.mux.Handler(&probe)
		_, path, ok := strings.Cut(pattern, " ")
		if !ok {
			continue // the fallback, or nothing
		}
		switch {
		case best == "" || moreSpecific(path, best):
			best, allowed = path, append(allowed[:0], m)
		case path == best:
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// moreSpecific reports whether path template a is more specific than b, both matching one
// request path: at the first segment where they differ, a has a literal and b a wildcard.
func moreSpecific(a, b string) bool {
	for a != "" && b != "" {
		var sa, sb string
		sa, a, _ = strings.Cut(strings.TrimPrefix(a, "/"), "/")
		sb, b, _ = strings.Cut(strings.TrimPrefix(b, "/"), "/")
		if sa != sb {
			return !strings.HasPrefix(sa, "{") && strings.HasPrefix(sb, "{")
		}
	}
	return false
}

// trailingSlash serves a path that ends in a slash exactly as the same path without it,
// for every method, when that path is one of the contract's: client libraries written for
// the first Authly, whose routes ended in a slash, send POST /api/v1/users/. Such a request
// is routed as it is, with no redirect, since many clients follow no redirect, or drop the
// body when they do. A page is the exception: its relative links resolve against the URL
// the browser shows, so a page's path with a slash answers a 308 to the path without it,
// which keeps the method and the body. Any other path is left alone: without the slash it
// would be no route either.
func (s *server) trailingSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if len(path) < 2 || path[len(path)-1] != '/' {
			next.ServeHTTP(w, r)
			return
		}
		u := *r.URL
		u.Path = strings.TrimSuffix(path, "/")
		u.RawPath = strings.TrimSuffix(u.RawPath, "/")
		trimmed := *r
		trimmed.URL = &u
		if len(s.allowedMethods(&trimmed)) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if _, pattern := s.mux.Handler(&trimmed); s.routes[pattern] != nil && s.routes[pattern].page {
			// A relative reference keeps working behind a proxy that mounts Authly under a
			// prefix: "../docs" from /docs/ is /docs.
			escaped := u.EscapedPath()
			location := ".." + escaped[strings.LastIndexByte(escaped, '/'):]
			if u.RawQuery != "" {
				location += "?" + u.RawQuery
			}
			w.Header().Set("Location", location)
			w.WriteHeader(http.StatusPermanentRedirect)
			return
		}
		next.ServeHTTP(w, &trimmed)
		// The request log outside reads the route from the request it passed on.
		r.Pattern = trimmed.Pattern
	})
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
