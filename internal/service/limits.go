package service

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authly/authly/internal/logctx"
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

// Quota is what a request learned about the rate limits it counted against: the result of
// the tightest, for the RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers. The
// zero Quota counted against none.
type Quota struct {
	ratelimit.Result
	Counted bool // false when no limit counted the request
}

// Tighter returns the tighter of q and o: a refusal over anything, otherwise the fewest
// remaining.
func (q Quota) Tighter(o Quota) Quota {
	switch {
	case !o.Counted:
		return q
	case !q.Counted, !o.Allowed && q.Allowed, o.Allowed == q.Allowed && o.Remaining < q.Remaining:
		return o
	}
	return q
}

// LimitClient counts a request from client against the per-IP limit, and a registration
// against the registration limit too. It returns the tightest of the limits it counted
// against, also when it refuses.
//
// Errors: rate limited (rate_limited).
func (s *Service) LimitClient(ctx context.Context, client Client, registration bool) (Quota, error) {
	quota, err := s.limit(ctx, limitIP, client.IP, s.limits.IP, client)
	if err != nil || !registration {
		return quota, err
	}
	register, err := s.limit(ctx, limitRegister, client.IP, s.limits.Register, client)
	return quota.Tighter(register), err
}

// limitLogin counts a password-grant attempt against its login name. Names are compared
// without case, as accounts are found.
//
// Errors: rate limited (rate_limited).
func (s *Service) limitLogin(ctx context.Context, login string, client Client) (Quota, error) {
	return s.limit(ctx, limitLogin, strings.ToLower(login), s.limits.Login, client)
}

// limit counts one hit on key under the named limit and returns the limit's result; the zero
// Quota when the limit is off or its store failed. A store that fails lets the request
// through: Redis being down must not stop every login, and the lockout, kept in PostgreSQL,
// and the bounded bcrypt pool still hold. The failure is logged.
func (s *Service) limit(ctx context.Context, name, key string, l ratelimit.Limit, client Client) (Quota, error) {
	if l.Off() {
		return Quota{}, nil
	}
	res, err := s.limiter.Allow(ctx, name+":"+key, l)
	if err != nil {
		s.storeFailures.log(ctx, logctx.From(ctx, s.log), name, err)
		return Quota{}, nil
	}
	quota := Quota{Result: res, Counted: true}
	if res.Allowed {
		return quota, nil
	}
	s.metrics.RateLimited(name)
	s.auditRateLimited(ctx, name, key, l, res, client)
	return quota, errRateLimited(res.RetryAfter)
}

// auditRateLimited records that a key tripped its limit: the first refusal of each key in
// each period of the limit, not every refusal, so that a flood cannot flood the audit log.
// The key itself is not recorded, since a login name may be a password typed into the wrong
// field; the client's IP is.
func (s *Service) auditRateLimited(ctx context.Context, name, key string, l ratelimit.Limit, res ratelimit.Result, client Client) {
	if !s.firstIn(ctx, "audit:"+name+":"+key, l.Period) {
		return
	}
	s.auditOutsideTx(ctx, auditEntry{Type: AuditRateLimited, Client: client, Details: map[string]any{
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

// onceEvery lets one caller through per interval, without a lock.
type onceEvery struct {
	last atomic.Int64 // Unix nanoseconds of the last caller let through
}

// allow reports whether a caller at now is the first in interval since the last one let
// through.
func (o *onceEvery) allow(now time.Time, interval time.Duration) bool {
	n, last := now.UnixNano(), o.last.Load()
	return n-last >= int64(interval) && o.last.CompareAndSwap(last, n)
}

// storeFailureLog logs a failing rate limit store at most once per interval, so an outage
// under load does not bury the logs.
type storeFailureLog struct{ onceEvery }

const storeFailureLogInterval = 10 * time.Second

func (l *storeFailureLog) log(ctx context.Context, log *slog.Logger, limit string, err error) {
	if !l.allow(time.Now(), storeFailureLogInterval) {
		return
	}
	log.LogAttrs(ctx, slog.LevelError, "rate limit store failed; requests pass unlimited until it recovers",
		slog.String("limit", limit), slog.Any("err", err))
}
