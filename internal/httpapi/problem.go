package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/logctx"
	"github.com/authly/authly/internal/service"
)

// statusOf is the one table that maps a domain error kind to an HTTP status. A conflict (a
// taken username or email) answers 400, not 409: openapi.yaml declares it among the 400s of
// registration and update, with its field error.
var statusOf = map[service.Kind]int{
	service.KindInternal:         http.StatusInternalServerError,
	service.KindInvalid:          http.StatusBadRequest,
	service.KindUnauthenticated:  http.StatusUnauthorized,
	service.KindForbidden:        http.StatusForbidden,
	service.KindNotFound:         http.StatusNotFound,
	service.KindConflict:         http.StatusBadRequest,
	service.KindTooLarge:         http.StatusRequestEntityTooLarge,
	service.KindUnsupportedMedia: http.StatusUnsupportedMediaType,
	service.KindMethodNotAllowed: http.StatusMethodNotAllowed,
	service.KindRateLimited:      http.StatusTooManyRequests,
	service.KindUnavailable:      http.StatusServiceUnavailable,
}

// problemWriter is the one writer of application/problem+json (RFC 9457). Every error a
// request can end in comes here: a domain *service.Error keeps its kind, code, message and
// field errors, and anything else is an internal error whose cause is only logged.
type problemWriter struct {
	log      *slog.Logger
	refusals *refusals
}

// statusClientClosedRequest is what the logs and metrics record for a request whose client
// went away before its answer (nginx's 499): the client's doing, not a server error. It is
// never meant for a client, which is gone by then.
const statusClientClosedRequest = 499

// The WWW-Authenticate challenges of a bearer route (RFC 6750 §3): with no error code for a
// request that sent no bearer token at all, whether it sent nothing or another scheme (§3.1),
// and invalid_token for one whose token was refused. Shared, never modified.
var (
	bearerChallenge       = []string{`Bearer realm="authly"`}
	invalidTokenChallenge = []string{`Bearer realm="authly", error="invalid_token"`}
)

func (p *problemWriter) write(w http.ResponseWriter, r *http.Request, err error) {
	e := service.AsError(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 && errors.Is(r.Context().Err(), context.Canceled) {
		// The client went away, and the failure is the cancellation that followed (a query or
		// a wait for a bcrypt worker cut short): nothing the server did wrong. It is logged at
		// debug level and counted as 499, out of the 5xx that alerts watch.
		logctx.From(r.Context(), p.log).LogAttrs(r.Context(), slog.LevelDebug, "client closed the request",
			slog.String("outcome", service.OutcomeClientClosed), slog.String("code", e.Code), slog.Any("cause", e.Cause))
		w.WriteHeader(statusClientClosedRequest)
		return
	}
	retryAfter := e.RetryAfter
	refusal, refused := refusalKindOf(e.Code)
	switch {
	case refused:
		// The server protecting itself or its users as designed, not a fault: counted, and
		// logged in aggregate (refusal.go).
		retryAfter = p.refusals.refuse(r.Context(), refusal, retryAfter)
	case status >= 500:
		// A 5xx is logged once, here, with its cause. A 4xx is the client's business.
		logctx.From(r.Context(), p.log).LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("code", e.Code), slog.Int("status", status), slog.Any("cause", e.Cause))
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	if e.Kind == service.KindUnauthenticated && e.Code == service.CodeInvalidToken {
		if bearerToken(r) == "" {
			h["Www-Authenticate"] = bearerChallenge
		} else {
			h["Www-Authenticate"] = invalidTokenChallenge
		}
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(retryAfter), 1), 10))
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
