package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/ratelimit"
)

func TestLoadParsesEveryProtectionVariable(t *testing.T) {
	got, err := Load(t.Context(), withSecrets(
		envRateLimitStore, "Redis",
		envRedisURL, "redis://:hunter2@redis.internal:6380/2",
		envRateLimitLogin, "3/30s",
		envRateLimitIP, "0",
		envRateLimitRegister, "100/24h",
		envTrustedProxies, "10.0.0.0/8, 192.0.2.7",
		envLockoutThreshold, "10",
		envLockoutDuration, "30s",
		envLockoutMaxDuration, "2h",
		envLockoutResetAfter, "48h",
		envHashQueue, "0",
		envHashMaxWait, "500ms",
		envRefusalHold, "250ms",
		envRefusalHoldConcurrent, "1000",
		envMaxBodyBytes, "1048576",
		envCORSOrigins, "https://app.example.com, http://localhost:3000,HTTPS://Admin.Example.com:443",
	))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := map[string]any{
		"RateLimitStore":        "redis",
		"RedisURL":              "redis://:hunter2@redis.internal:6380/2",
		"RateLimitLogin":        ratelimit.Limit{N: 3, Period: 30 * time.Second},
		"RateLimitIP":           ratelimit.Limit{},
		"RateLimitRegister":     ratelimit.Limit{N: 100, Period: 24 * time.Hour},
		"TrustedProxies":        []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")},
		"LockoutThreshold":      10,
		"LockoutDuration":       30 * time.Second,
		"LockoutMaxDuration":    2 * time.Hour,
		"LockoutResetAfter":     48 * time.Hour,
		"HashQueue":             0,
		"HashMaxWait":           500 * time.Millisecond,
		"RefusalHold":           250 * time.Millisecond,
		"RefusalHoldConcurrent": 1000,
		"MaxBodyBytes":          int64(1 << 20),
		"CORSAllowedOrigins":    []string{"https://app.example.com", "http://localhost:3000", "https://admin.example.com"},
	}
	v := reflect.ValueOf(got)
	for field, w := range want {
		if g := v.FieldByName(field).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v, want %#v", field, g, w)
		}
	}
}

func TestLoadAcceptsProtectionEdgeValues(t *testing.T) {
	tests := []struct {
		name  string
		kv    []string
		field func(Config) any
		want  any
	}{
		{"a lockout threshold of 0 turns lockout off", []string{envLockoutThreshold, "0"}, func(c Config) any { return c.LockoutThreshold }, 0},
		{"every rate limit can be turned off", []string{envRateLimitLogin, "0", envRateLimitIP, "0", envRateLimitRegister, "0"},
			func(c Config) any { return c.RateLimitLogin.Off() && c.RateLimitIP.Off() && c.RateLimitRegister.Off() }, true},
		{"the lock may be as long as its cap", []string{envLockoutDuration, "1h", envLockoutMaxDuration, "1h"}, func(c Config) any { return c.LockoutMaxDuration }, time.Hour},
		{"a bare trusted proxy address is a one-address prefix", []string{envTrustedProxies, "fd00::1"},
			func(c Config) any { return c.TrustedProxies[0] }, netip.MustParsePrefix("fd00::1/128")},
		{"a refusal hold of 0 turns holding off", []string{envRefusalHold, "0"}, func(c Config) any { return c.RefusalHold }, time.Duration(0)},
		{"holding can be turned off by its bound too", []string{envRefusalHoldConcurrent, "0"}, func(c Config) any { return c.RefusalHoldConcurrent }, 0},
		{"1 KiB is the smallest body cap", []string{envMaxBodyBytes, "1024"}, func(c Config) any { return c.MaxBodyBytes }, int64(1024)},
		{"an origin's default port is dropped, as browsers send it", []string{envCORSOrigins, "http://example.com:80"},
			func(c Config) any { return c.CORSAllowedOrigins[0] }, "http://example.com"},
		{"a rediss URL is accepted", []string{envRateLimitStore, "redis", envRedisURL, "rediss://redis.internal:6379"}, func(c Config) any { return c.RedisURL }, "rediss://redis.internal:6379"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(t.Context(), withSecrets(tt.kv...))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.field(c); got != tt.want {
				t.Errorf("%v gives %v, want %v", tt.kv, got, tt.want)
			}
		})
	}
}

func TestLoadRejectsInvalidProtectionValues(t *testing.T) {
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"an unknown rate limit store is refused", []string{envRateLimitStore, "memcached"}, `AUTHLY_RATE_LIMIT_STORE: must be one of memory, redis (got "memcached")`},
		{"the redis store needs a URL", []string{envRateLimitStore, "redis"}, "AUTHLY_REDIS_URL: must be set when AUTHLY_RATE_LIMIT_STORE=redis"},
		{"a Redis URL without the redis store is refused", []string{envRedisURL, "redis://localhost:6379"}, `AUTHLY_REDIS_URL: is only read when AUTHLY_RATE_LIMIT_STORE=redis (it is "memory")`},
		{"a Redis URL of another scheme is refused", []string{envRateLimitStore, "redis", envRedisURL, "http://localhost:6379"}, "AUTHLY_REDIS_URL: must be a redis:// or rediss:// URL"},
		{"a limit without a period is refused", []string{envRateLimitLogin, "5"}, `AUTHLY_RATE_LIMIT_LOGIN: must be "N/period" such as 5/1m, or 0 for off (got "5")`},
		{"a limit with a bad period is refused", []string{envRateLimitIP, "60/minute"}, `AUTHLY_RATE_LIMIT_IP: must be "N/period" such as 60/1m`},
		{"a negative limit is refused", []string{envRateLimitRegister, "-1/1h"}, "AUTHLY_RATE_LIMIT_REGISTER: must be"},
		{"a trusted proxy that is no address is refused", []string{envTrustedProxies, "10.0.0.0/8, proxy.internal"}, `AUTHLY_TRUSTED_PROXIES: must be comma-separated CIDRs or IP addresses`},
		{"a negative lockout threshold is refused", []string{envLockoutThreshold, "-1"}, "AUTHLY_LOCKOUT_THRESHOLD: must be a whole number from 0 to 1000 failures"},
		{"a lock under a second is refused", []string{envLockoutDuration, "500ms"}, "AUTHLY_LOCKOUT_DURATION: must be a duration from 1s to 24h"},
		{"a cap below the first lock is refused", []string{envLockoutDuration, "10m", envLockoutMaxDuration, "5m"}, "AUTHLY_LOCKOUT_MAX_DURATION: must be at least AUTHLY_LOCKOUT_DURATION (10m)"},
		{"failures may not lapse before the longest lock ends", []string{envLockoutMaxDuration, "48h"}, "AUTHLY_LOCKOUT_RESET_AFTER: must be at least AUTHLY_LOCKOUT_MAX_DURATION (48h)"},
		{"a negative hash queue is refused", []string{envHashQueue, "-1"}, "AUTHLY_HASH_QUEUE: must be a whole number from 0 to 100000 waiting callers"},
		{"a hash wait of 0 is refused", []string{envHashMaxWait, "0"}, "AUTHLY_HASH_MAX_WAIT: must be a duration from 1ms to 1m"},
		{"a refusal hold over 10s is refused", []string{envRefusalHold, "1m"}, "AUTHLY_REFUSAL_HOLD: must be a duration from 1ms to 10s, or 0 for off"},
		{"a negative bound on held refusals is refused", []string{envRefusalHoldConcurrent, "-1"}, "AUTHLY_REFUSAL_HOLD_CONCURRENT: must be a whole number from 0 to 100000 requests"},
		{"a body cap under 1 KiB is refused", []string{envMaxBodyBytes, "512"}, "AUTHLY_MAX_BODY_BYTES: must be a whole number from 1024 to 16777216 bytes"},
		{"a CORS wildcard is refused", []string{envCORSOrigins, "*"}, `AUTHLY_CORS_ALLOWED_ORIGINS: entry 1 ("*") must be an exact origin`},
		{"a CORS subdomain wildcard is refused", []string{envCORSOrigins, "https://app.example.com,https://*.example.com"}, `AUTHLY_CORS_ALLOWED_ORIGINS: entry 2 ("https://*.example.com") must be an exact origin`},
		{"a CORS origin with a path is refused", []string{envCORSOrigins, "https://app.example.com/login"}, "AUTHLY_CORS_ALLOWED_ORIGINS: entry 1"},
		{"the null origin is refused", []string{envCORSOrigins, "null"}, `AUTHLY_CORS_ALLOWED_ORIGINS: entry 1 ("null")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(t.Context(), withSecrets(tt.kv...))
			assertProblems(t, err, tt.want)
		})
	}
}

func TestRedisURLIsRedacted(t *testing.T) {
	c, err := Load(t.Context(), withSecrets(envRateLimitStore, "redis", envRedisURL, "redis://user:hunter2@redis.internal:6379/0"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, rendered := range []string{c.String(), c.GoString()} {
		if strings.Contains(rendered, "hunter2") {
			t.Fatalf("the Redis password is shown: %s", rendered)
		}
		if !strings.Contains(rendered, "redis.internal:6379") {
			t.Fatalf("the Redis address is hidden too: %s", rendered)
		}
	}
	_, err = Load(t.Context(), withSecrets(envRateLimitStore, "redis", envRedisURL, "http://user:hunter2@redis.internal"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a bad Redis URL is not refused, or its password is repeated: %v", err)
	}
}
