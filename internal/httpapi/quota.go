package service

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/rs/cors"
)

// Which routes the per-IP rate limits cover: every route under /api/v1/auth/, and
// registration, which also has a limit of its own.
const (
	authPathPrefix    = "/api/v1/auth/"
	registrationRoute = http.MethodPost + " /api/v1/users"
)

// rateLimited reports whether the route counts against the per-IP limit, and whether it is
// registration.
func rateLimited(pattern string) (ipLimited, registration bool) {
	_, path, _ := strings.Cut(pattern, " ")
	registration = pattern == registrationRoute
	return registration || strings.HasPrefix(path, authPathPrefix), registration
}

// quotaWriter writes the RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers
// (IETF draft "RateLimit header fields for HTTP") of the tightest limit the request counted
// against, just before the status line, once every limit has been counted.
type quotaWriter struct {
	http.ResponseWriter
	quota   *quota
	written bool
}

func (w *quotaWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		if q := w.quota; q.set {
			h := w.Header()
			h.Set("RateLimit-Limit", strconv.Itoa(q.result.Limit))
			h.Set("RateLimit-Remaining", strconv.Itoa(q.result.Remaining))
			h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(q.result.ResetAfter), 10))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *quotaWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *quotaWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// corsHeaders answers CORS for the exact origins allowed, through rs/cors. With none, there is
// no CORS at all: no header is added, and a preflight is an OPTIONS request like any other,
// answered 405. Credentials are never allowed: Authly's clients send bearer tokens, not
// cookies, so a browser never needs to attach them.
func corsHeaders(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "X-Request-ID"},
		ExposedHeaders:   []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "WWW-Authenticate", "X-Request-ID"},
		AllowCredentials: false,
		MaxAge:           600,
	}).Handler(next)
}
