package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authly/authly/internal/clientip"
	"github.com/authly/authly/internal/ratelimit"
)

// Defaults of the abuse protection settings, as docs/security.md lists them.
const (
	defaultRateLimitLogin     = "5/1m"
	defaultRateLimitIP        = "60/1m"
	defaultRateLimitRegister  = "10/1h"
	defaultLockoutThreshold   = 5
	defaultLockoutDuration    = time.Minute
	defaultLockoutMaxDuration = time.Hour
	defaultLockoutResetAfter  = 24 * time.Hour
	defaultHashQueue          = 64
	defaultHashMaxWait        = 1500 * time.Millisecond
	// A second is less than a full bcrypt pool's line takes to serve (1.5s), so the line
	// never runs dry while its refused callers are held; 256 held requests are a few
	// megabytes of goroutine stacks and connection buffers.
	defaultRefusalHold           = time.Second
	defaultRefusalHoldConcurrent = 256
	defaultMaxBodyBytes          = 64 << 10
)

// protection reads the abuse protection settings into c: rate limits and their store, the
// trusted proxies, the lockout, the bcrypt queue, the hold of refusals, the body cap and
// CORS.
func (e *env) protection(c *Config) {
	c.RateLimitStore = e.oneOf(envRateLimitStore, "memory", "memory", "redis")
	c.RedisURL = e.redisURL(c.RateLimitStore)
	c.RateLimitLogin = e.limit(envRateLimitLogin, defaultRateLimitLogin)
	c.RateLimitIP = e.limit(envRateLimitIP, defaultRateLimitIP)
	c.RateLimitRegister = e.limit(envRateLimitRegister, defaultRateLimitRegister)
	if v := e.string(envTrustedProxies, ""); v != "" {
		proxies, err := clientip.ParseTrustedProxies(v)
		if err != nil {
			e.fail(envTrustedProxies, "must be comma-separated CIDRs or IP addresses, such as 10.0.0.0/8, 192.0.2.7: %v", err)
		}
		c.TrustedProxies = proxies
	}

	c.LockoutThreshold = e.intRange(envLockoutThreshold, defaultLockoutThreshold, 0, 1000, "failures")
	c.LockoutDuration = e.duration(envLockoutDuration, defaultLockoutDuration, time.Second, 24*time.Hour, false)
	c.LockoutMaxDuration = e.duration(envLockoutMaxDuration, defaultLockoutMaxDuration, time.Second, 30*24*time.Hour, false)
	c.LockoutResetAfter = e.duration(envLockoutResetAfter, defaultLockoutResetAfter, time.Minute, 365*24*time.Hour, false)
	if c.LockoutMaxDuration < c.LockoutDuration {
		e.fail(envLockoutMaxDuration, "must be at least %s (%s)", envLockoutDuration, shortDuration(c.LockoutDuration))
	}
	if c.LockoutResetAfter < c.LockoutMaxDuration {
		// Otherwise a count could lapse while its lock still runs, and never grow.
		e.fail(envLockoutResetAfter, "must be at least %s (%s)", envLockoutMaxDuration, shortDuration(c.LockoutMaxDuration))
	}

	c.HashQueue = e.intRange(envHashQueue, defaultHashQueue, 0, 100_000, "waiting callers")
	c.HashMaxWait = e.duration(envHashMaxWait, defaultHashMaxWait, time.Millisecond, time.Minute, false)
	c.RefusalHold = e.duration(envRefusalHold, defaultRefusalHold, time.Millisecond, 10*time.Second, true)
	c.RefusalHoldConcurrent = e.intRange(envRefusalHoldConcurrent, defaultRefusalHoldConcurrent, 0, 100_000, "requests")
	c.MaxBodyBytes = int64(e.intRange(envMaxBodyBytes, defaultMaxBodyBytes, 1024, 16<<20, "bytes"))
	c.CORSAllowedOrigins = e.origins(envCORSOrigins)
}

// limit returns the variable as a rate limit, "N/period" or "0" for off, or def when unset.
func (e *env) limit(name, def string) ratelimit.Limit {
	v := e.string(name, def)
	l, err := ratelimit.ParseLimit(v)
	if err != nil {
		e.fail(name, `must be "N/period" such as %s, or 0 for off (got %q)`, def, v)
		l, _ = ratelimit.ParseLimit(def)
	}
	return l
}

// redisURL returns AUTHLY_REDIS_URL, which the redis store requires and the memory store
// refuses, so that a forgotten AUTHLY_RATE_LIMIT_STORE=redis never silently counts per instance.
func (e *env) redisURL(store string) string {
	v := e.string(envRedisURL, "")
	switch {
	case store == "redis" && v == "":
		e.fail(envRedisURL, "must be set when %s=redis", envRateLimitStore)
	case store != "redis" && v != "":
		e.fail(envRedisURL, "is only read when %s=redis (it is %q)", envRateLimitStore, store)
	case v != "":
		// The URL may hold a password, so neither it nor the parser's message is repeated.
		if _, err := redis.ParseURL(v); err != nil {
			e.fail(envRedisURL, "must be a redis:// or rediss:// URL, such as redis://redis.internal:6379/0")
		}
	}
	return v
}

// origins returns the variable as a list of exact origins ("https://app.example.com"), each
// a scheme, a host and an optional port, normalised to lower case. "*" is refused: CORS here
// is an allow-list, never a wildcard.
func (e *env) origins(name string) []string {
	v := e.string(name, "")
	if v == "" {
		return nil
	}
	var origins []string
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		origin, ok := parseOrigin(entry)
		if !ok {
			e.fail(name, "entry %d (%q) must be an exact origin such as https://app.example.com; "+
				"wildcards, paths and \"null\" are not accepted", i+1, entry)
			continue
		}
		origins = append(origins, origin)
	}
	return origins
}

func parseOrigin(s string) (string, bool) {
	if s == "" || strings.ContainsAny(s, "*") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	host := u.Host
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", false
		}
		// Browsers leave the scheme's default port out of the Origin they send.
		if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
			host = strings.TrimSuffix(host, ":"+port)
		}
	}
	return strings.ToLower(u.Scheme + "://" + host), true
}

// redactRedisURL masks the password of a Redis URL for logs.
func redactRedisURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[redacted]"
	}
	return u.Redacted()
}
