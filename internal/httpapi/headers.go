package httpapi

import (
	"net/http"

	"github.com/rs/cors"
)

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
