package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Which routes the per-IP rate limits cover: every route under /api/v1/auth/, the pages that
// emailed links open, and registration, which also has a limit of its own.
const (
	authPathPrefix    = "/api/v1/auth/"
	registrationRoute = http.MethodPost + " /api/v1/users"
)

// linkPages are the paths of the pages emailed links open.
var linkPages = map[string]bool{"/verify-email": true, "/reset-password": true, "/confirm-email-change": true}

// rateLimited reports whether the route counts against the per-IP limit, and whether it is
// registration.
func rateLimited(pattern string) (ipLimited, registration bool) {
	_, path, _ := strings.Cut(pattern, " ")
	registration = pattern == registrationRoute
	return registration || strings.HasPrefix(path, authPathPrefix) || linkPages[path], registration
}

// quotaWriter writes the RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers
// (IETF draft "RateLimit header fields for HTTP") of the tightest limit the request counted
// against, just before the status line, once every limit has been counted: the guard's per-IP
// limits, and the login name's limit that the token endpoint adds (caller.countedAgainst).
type quotaWriter struct {
	http.ResponseWriter
	caller  *caller
	written bool
}

func (w *quotaWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		if q := w.caller.quota; q.Counted {
			h := w.Header()
			h.Set("RateLimit-Limit", strconv.Itoa(q.Limit))
			h.Set("RateLimit-Remaining", strconv.Itoa(q.Remaining))
			h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(q.ResetAfter), 10))
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

// ceilSeconds is d in whole seconds, rounded up, as the RateLimit-Reset header counts it.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
