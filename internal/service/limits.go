package service

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authly/authly/internal/ratelimit"
)

// RateLimits are Authly's request rate limits (AUTHLY_RATE_LIMIT_*). A zero Limit is off.
type RateLimits struct {
	// Login counts password-grant attempts per login name, lower-cased, whether or not an
	// account has that name.
	Login ratelimit.Limit
	// IP counts requests per client IP across /api/v1/auth/* and registration.
	IP ratelimit.Limit
	// Register counts registrations per client IP.
	Register ratelimit.Limit
}

// The names of the limits: the first part of their keys in the store, in audit details and
// in logs.
const (
	limitLogin    = "login"
	limitIP       = "ip"
	limitRegister = "register"
)

// errRateLimited answers a request over a rate limit. The same answer serves every limit, so
// it never says which one, nor whether a login name exists.
func errRateLimited(retryAfter time.Duration) *Error {
	return &Error{Kind: KindRateLimited, Code: CodeRateLimited, Message: "Too many requests; retry later.",
		RetryAfter: max(retryAfter, time.Second)}
}

// quota is what one request learned about the rate limits it counted against, for the
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers. The HTTP layer puts one
// in the request's context; the service records into it.
type quota struct {
	result ratelimit.Result
	set    bool
}

// record keeps the tightest result: a refusal over anything, otherwise the fewest remaining.
func (q *quota) record(r ratelimit.Result) {
	switch {
	case !q.set, !r.Allowed && q.result.Allowed, r.Allowed == q.result.Allowed && r.Remaining < q.result.Remaining:
		q.result, q.set = r, true
	}
}

type quotaKey struct{}

func withQuota(ctx context.Context, q *quota) context.Context {
	return context.WithValue(ctx, quotaKey{}, q)
}

func quotaFrom(ctx context.Context) *quota {
	q, _ := ctx.Value(quotaKey{}).(*quota)
	return q
}

// limitClient counts a request against the per-IP limit, and a registration against the
// registration limit too. The client is the one the request guard stored in ctx.
//
// Errors: rate limited (rate_limited).
func (s *Service) limitClient(ctx context.Context, registration bool) error {
	ip := clientFrom(ctx).IP
	if err := s.limit(ctx, limitIP, ip, s.limits.IP); err != nil {
		return err
	}
	if registration {
		return s.limit(ctx, limitRegister, ip, s.limits.Register)
	}
	return nil
}

// limitLogin counts a password-grant attempt against its login name. Names are compared
// without case, as accounts are found.
//
// Errors: rate limited (rate_limited).
func (s *Service) limitLogin(ctx context.Context, login string) error {
	return s.limit(ctx, limitLogin, strings.ToLower(login), s.limits.Login)
}

// limit counts one hit on key under the named limit. A store that fails lets the request
// through: Redis being down must not stop every login, and the lockout, kept in PostgreSQL,
// and the bounded bcrypt pool still hold. The failure is logged.
func (s *Service) limit(ctx context.Context, name, key string, l ratelimit.Limit) error {
	if l.Off() {
		return nil
	}
	res, err := s.limiter.Allow(ctx, name+":"+key, l)
	if err != nil {
		s.storeFailures.log(ctx, loggerFrom(ctx, s.log), name, err)
		return nil
	}
	if q := quotaFrom(ctx); q != nil {
		q.record(res)
	}
	if res.Allowed {
		return nil
	}
	s.metrics.RateLimited(name)
	s.auditRateLimited(ctx, name, key, l, res)
	return errRateLimited(res.RetryAfter)
}

// auditRateLimited records that a key tripped its limit: the first refusal of each key in
// each period of the limit, not every refusal, so that a flood cannot flood the audit log.
// The key itself is not recorded, since a login name may be a password typed into the wrong
// field; the client's IP is.
func (s *Service) auditRateLimited(ctx context.Context, name, key string, l ratelimit.Limit, res ratelimit.Result) {
	if !s.firstIn(ctx, "audit:"+name+":"+key, l.Period) {
		return
	}
	s.auditOutsideTx(ctx, auditEvent{Type: AuditRateLimited, Client: clientFrom(ctx), Details: map[string]any{
		"limit": name, "policy": l.String(), "retry_after_seconds": ceilSeconds(res.RetryAfter),
	}})
}

// firstIn reports whether this is the first call for key in period, counted in the rate limit
// store so that every instance agrees. A failing store answers false: audit throttling is not
// worth a log line per request.
func (s *Service) firstIn(ctx context.Context, key string, period time.Duration) bool {
	res, err := s.limiter.Allow(ctx, key, ratelimit.Limit{N: 1, Period: period})
	return err == nil && res.Allowed
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// storeFailureLog logs a failing rate limit store at most once per interval, so an outage
// under load does not bury the logs.
type storeFailureLog struct {
	last atomic.Int64 // unix nanoseconds of the last line
}

const storeFailureLogInterval = 10 * time.Second

func (l *storeFailureLog) log(ctx context.Context, log *slog.Logger, limit string, err error) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(storeFailureLogInterval) || !l.last.CompareAndSwap(last, now) {
		return
	}
	log.LogAttrs(ctx, slog.LevelError, "rate limit store failed; requests pass unlimited until it recovers",
		slog.String("limit", limit), slog.Any("err", err))
}
