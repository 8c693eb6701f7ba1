// Package logctx owns the request-scoped logger: the transport puts a request's id in its
// context when the request arrives, and every line the transport or the domain logs about
// that request carries the id.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// requestLog is what With keeps in a context. The logger carrying the request id is only
// built when something is logged, which at the default levels is rare: building it for every
// request cost several allocations.
type requestLog struct {
	base *slog.Logger
	id   string
}

// With returns ctx carrying a logger that adds request_id to every line logged through
// base.
func With(ctx context.Context, base *slog.Logger, requestID string) context.Context {
	return context.WithValue(ctx, key{}, &requestLog{base: base, id: requestID})
}

// From returns the request-scoped logger of ctx, or fallback when ctx carries none.
func From(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*requestLog); ok {
		return l.base.With("request_id", l.id)
	}
	return fallback
}
