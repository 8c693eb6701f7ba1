package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// route is one operation of openapi.yaml, keyed by the ServeMux pattern the generated server
// registers for it ("GET /api/v1/users/{user_id}").
type route struct {
	route        *routers.Route
	auth         bool
	ipLimited    bool // counts against the per-IP rate limit
	registration bool // counts against the registration rate limit too
	page         bool // answers an HTML page, whose relative links depend on its URL
	pathParams   []string
	contentTypes map[string]bool
}

func loadRoutes() (map[string]*route, error) {
	spec, err := api.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("httpapi: loading embedded openapi.yaml: %w", err)
	}
	routes := map[string]*route{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			security := spec.Security
			if op.Security != nil {
				security = *op.Security
			}
			rt := &route{
				route: &routers.Route{Spec: spec, Path: path, PathItem: item, Method: method, Operation: op},
				auth:  len(security) > 0,
			}
			// Path parameters may be declared on the path item or on the operation.
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				if p.Value != nil && p.Value.In == openapi3.ParameterInPath {
					rt.pathParams = append(rt.pathParams, p.Value.Name)
				}
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				rt.contentTypes = map[string]bool{}
				for ct := range op.RequestBody.Value.Content {
					rt.contentTypes[ct] = true
				}
			}
			rt.ipLimited, rt.registration = rateLimited(method + " " + path)
			for _, resp := range op.Responses.Map() {
				if resp.Value != nil && resp.Value.Content.Get("text/html") != nil {
					rt.page = true
				}
			}
			routes[method+" "+path] = rt
		}
	}
	return routes, nil
}

// callerKey keys what guard learns about a request's caller: one value, so one allocation.
// It carries the request from the guard to the strict handler's methods, which hand each
// field to the domain as a parameter.
type callerKey struct{}

type caller struct {
	client    service.Client
	principal service.Principal // set on bearer operations
	quota     service.Quota     // the tightest rate limit the request counted against so far
}

// countedAgainst keeps the tighter of the caller's quota and q, for the RateLimit-* headers.
func (c *caller) countedAgainst(q service.Quota) { c.quota = c.quota.Tighter(q) }

// callerFrom returns what guard stored about the request's caller; an empty caller when guard
// did not run.
func callerFrom(ctx context.Context) *caller {
	if c, ok := ctx.Value(callerKey{}).(*caller); ok {
		return c
	}
	return &caller{}
}

// validation is how guard runs the contract's request validator; it is never modified.
var validation = &openapi3filter.Options{
	MultiError: true,
	// Authentication is done in guard, before validation, not by the validator.
	AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
}

// guard runs inside every generated route, after routing and before the strict handler: it
// counts the request against the client IP's rate limits, authenticates bearer operations,
// then enforces the body's size, media type, encoding and schema, so that the handler only
// ever sees requests that match openapi.yaml. The rate limits come first, as they are the
// cheapest refusal.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := s.routes[r.Pattern]
		if rt == nil {
			s.problems.write(w, r, service.Internal(fmt.Errorf("no contract route for %q", r.Pattern)))
			return
		}
		who := &caller{client: service.Client{IP: s.clientIP.ClientIP(r), UserAgent: r.UserAgent()}}
		ctx := context.WithValue(r.Context(), callerKey{}, who)
		if rt.ipLimited {
			w = &quotaWriter{ResponseWriter: w, caller: who}
			quota, err := s.svc.LimitClient(ctx, who.client, rt.registration)
			who.countedAgainst(quota)
			if err != nil {
				s.problems.write(w, r.WithContext(ctx), err)
				return
			}
		}
		if rt.auth {
			p, err := s.svc.Authenticate(ctx, bearerToken(r))
			if err != nil {
				s.problems.write(w, r, err)
				return
			}
			who.principal = p
		}
		r = r.WithContext(ctx)
		if err := s.checkBody(w, r, rt); err != nil {
			s.problems.write(w, r, err)
			return
		}
		var params map[string]string
		if len(rt.pathParams) > 0 {
			params = make(map[string]string, len(rt.pathParams))
			for _, name := range rt.pathParams {
				params[name] = r.PathValue(name)
			}
		}
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: rt.route, Options: validation}
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			s.problems.write(w, r, schemaError(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer" header. Tokens anywhere else,
// such as the query string, are ignored (RFC 6750 §5.3).
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// checkBody reads a capped body and rejects a wrong media type (415), an oversized body
// (413), invalid UTF-8, control characters, malformed JSON and trailing data (400). The
// body is then put back for the validator and the generated decoder.
func (s *server) checkBody(w http.ResponseWriter, r *http.Request, rt *route) error {
	if rt.contentTypes == nil {
		return nil
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	// JSON and forms are UTF-8 here (RFC 8259 §8.1); a body declared in another charset
	// would be read wrongly, so it is refused rather than guessed at.
	charset, hasCharset := params["charset"]
	if err != nil || !rt.contentTypes[mediaType] || hasCharset && !strings.EqualFold(charset, "utf-8") {
		return service.Errorf(service.KindUnsupportedMedia, service.CodeUnsupportedMedia, "The request body's content type is not accepted here.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return service.Errorf(service.KindTooLarge, service.CodePayloadTooLarge, "The request body is too large.")
		}
		return &service.Error{Kind: service.KindInvalid, Code: service.CodeInvalidRequest, Message: "The request body could not be read.", Cause: err}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if !utf8.Valid(body) {
		return service.InvalidFields(service.FieldError{Field: "body", Message: "must be valid UTF-8"})
	}
	switch mediaType {
	case "application/json":
		return checkJSON(body)
	case "application/x-www-form-urlencoded":
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return service.InvalidFields(service.FieldError{Field: "body", Message: "is not a valid form"})
		}
		for name, vs := range values {
			for _, v := range vs {
				if fe := service.CheckText(name, v); fe != nil {
					return service.InvalidFields(*fe)
				}
			}
			if len(vs) > 1 {
				return service.InvalidFields(service.FieldError{Field: name, Message: "must appear once"})
			}
		}
	}
	return nil
}

// schemaError turns a validator error into field errors. Only the schema's reason and the
// field's location are kept: never the offending value, which may be a password.
func schemaError(err error) error {
	var fields []service.FieldError
	var visit func(error)
	visit = func(err error) {
		// A RequestError is checked first: it unwraps to the MultiError of its own schema
		// errors, which must keep the request error's location.
		if reqErr, ok := err.(*openapi3filter.RequestError); ok {
			field := "body"
			if reqErr.Parameter != nil {
				field = reqErr.Parameter.Name
			}
			var inner openapi3.MultiError
			if errors.As(reqErr.Err, &inner) {
				for _, e := range inner {
					addSchemaField(&fields, field, e, reqErr.Reason)
				}
				return
			}
			addSchemaField(&fields, field, reqErr.Err, reqErr.Reason)
			return
		}
		if multi, ok := err.(openapi3.MultiError); ok {
			for _, e := range multi {
				visit(e)
			}
			return
		}
		fields = append(fields, service.FieldError{Field: "body", Message: "is invalid"})
	}
	visit(err)
	e := service.InvalidFields(fields...)
	e.Cause = err
	return e
}

func addSchemaField(fields *[]service.FieldError, field string, err error, reason string) {
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		if ptr := se.JSONPointer(); len(ptr) > 0 {
			if field == "body" {
				field = strings.Join(ptr, ".")
			}
		}
		*fields = append(*fields, service.FieldError{Field: field, Message: se.Reason})
		return
	}
	if reason == "" {
		reason = "is invalid"
	}
	*fields = append(*fields, service.FieldError{Field: field, Message: reason})
}
