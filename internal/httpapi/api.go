// Package httpapi is Authly's HTTP transport: it implements the generated strict server of
// openapi.yaml on top of the domain in internal/service. It owns the router and every piece of
// middleware (request log, panic recovery, security headers, CORS, the request guard with its
// rate limits, authentication, strict JSON and schema checks), the one table that maps a
// domain error kind to an HTTP status, and the one writer of application/problem+json. It
// converts requests to service calls and results to responses; the rules live in the domain.
package httpapi

import (
	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/web"
)

// API adapts the Service to the generated strict server, one file per resource: it converts
// requests to calls and results to responses, nothing more. Errors go to the strict handler's
// error hook, which writes them as problems in one place.
type API struct {
	svc   *service.Service
	docs  bool          // serve the reference page and openapi.yaml
	pages *web.Renderer // the pages emailed links open
	jwks  JWKSSource    // the public signing keys; nil serves an empty set
}

var _ api.StrictServerInterface = (*API)(nil)

func noStore() *string { s := "no-store"; return &s }

// deref returns what p points to, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
