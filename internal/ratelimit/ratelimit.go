// Package ratelimit owns Authly's request rate limits and the in-memory and Redis stores that count them.
//
// Both stores run the generic cell rate algorithm (GCRA): a key may take N
// hits at once, and then one more every Period/N. A store keeps one
// timestamp per key, the theoretical arrival time (TAT) of the next hit, and
// forgets the key once its bucket is full again. The interval Period/N is
// cut to whole microseconds, the resolution of Redis's clock, so both stores
// give the same answers.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is "N per Period"; N == 0 means off.
type Limit struct {
	N      int
	Period time.Duration
}

// maxPeriod keeps a timestamp plus a period, in microseconds since 1970,
// below 2^53, where Redis's Lua numbers stop being exact integers.
const maxPeriod = 366 * 24 * time.Hour

// ParseLimit reads a limit written as "N/period", such as "5/1m", "60/1m",
// "10/1h" or "100/30s", where period is a Go duration. "0" turns the limit off.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return Limit{}, nil
	}
	count, period, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("ratelimit: limit %q: want \"N/period\" such as \"5/1m\" or \"100/30s\", or \"0\" for off", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 0 {
		return Limit{}, fmt.Errorf("ratelimit: limit %q: the count %q is not a whole number of 0 or more", s, count)
	}
	d, err := time.ParseDuration(strings.TrimSpace(period))
	if err != nil {
		return Limit{}, fmt.Errorf("ratelimit: limit %q: the period %q is not a duration such as 30s, 1m or 1h", s, period)
	}
	if n == 0 {
		return Limit{}, nil
	}
	l := Limit{N: n, Period: d}
	if err := l.validate(); err != nil {
		return Limit{}, fmt.Errorf("ratelimit: limit %q: %w", s, err)
	}
	return l, nil
}

// Off reports whether the limit lets everything through.
func (l Limit) Off() bool { return l.N == 0 }

// String writes the limit the way ParseLimit reads it.
func (l Limit) String() string {
	if l.Off() {
		return "0"
	}
	period := l.Period.String()
	for _, unit := range []struct {
		size time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if l.Period%unit.size == 0 {
			period = strconv.FormatInt(int64(l.Period/unit.size), 10) + unit.name
			break
		}
	}
	return strconv.Itoa(l.N) + "/" + period
}

func (l Limit) validate() error {
	switch {
	case l.N < 0:
		return fmt.Errorf("the count %d is negative", l.N)
	case l.Off():
		return nil
	case l.Period <= 0:
		return fmt.Errorf("the period %s is not positive", l.Period)
	case l.Period > maxPeriod:
		return fmt.Errorf("the period %s is longer than %s", l.Period, maxPeriod)
	case l.Period/time.Duration(l.N) < time.Microsecond:
		return fmt.Errorf("%d per %s is more than one a microsecond", l.N, l.Period)
	}
	return nil
}

// interval is the time one hit occupies, Period/N, cut to whole microseconds
// as Redis counts them. N intervals make the burst, at most Period.
func (l Limit) interval() time.Duration {
	return (l.Period / time.Duration(l.N)).Truncate(time.Microsecond)
}

// Result is the outcome of one hit. Limit, Remaining and ResetAfter feed the
// RateLimit-* response headers, and RetryAfter feeds Retry-After; both
// headers count whole seconds, so round the durations up.
type Result struct {
	// Allowed reports whether the hit may proceed.
	Allowed bool
	// Limit is the limit's N, or 0 when the limit is off.
	Limit int
	// Remaining is how many more hits would be allowed right now.
	Remaining int
	// RetryAfter is, for a denied hit, how long until one would be allowed;
	// 0 for an allowed one.
	RetryAfter time.Duration
	// ResetAfter is how long until the whole burst of N is available again.
	ResetAfter time.Duration
}

// Limiter is the rate limit store the domain counts hits in.
type Limiter interface {
	// Allow records one hit for key under limit l and reports whether it is allowed.
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}

// ErrInvalidLimit is returned, wrapped, by Allow for a limit ParseLimit
// would have refused.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// check validates l for Allow, which handles off limits itself.
func check(l Limit) error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidLimit, l, err)
	}
	return nil
}

// offResult answers a hit under an off limit.
var offResult = Result{Allowed: true}

// maxKeyLen bounds how much of a key a store keeps. Keys carry client input,
// such as a login name, that may be as long as the body limit allows.
const maxKeyLen = 128

// storageKey is the form of key a store keeps: the key itself when short,
// otherwise its SHA-256. The two forms are marked apart, so a short key can
// never name a long key's bucket.
func storageKey(key string) string {
	if len(key) <= maxKeyLen {
		return "k:" + key
	}
	sum := sha256.Sum256([]byte(key))
	return "h:" + hex.EncodeToString(sum[:])
}
