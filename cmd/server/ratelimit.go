package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authly/authly/internal/config"
	"github.com/authly/authly/internal/ratelimit"
)

// redisKeyPrefix keeps Authly's rate limit keys apart from anything else in the same Redis.
const redisKeyPrefix = "authly:ratelimit:"

// redisPingTimeout bounds the start-up check that Redis answers.
const redisPingTimeout = 5 * time.Second

// newRateLimiter builds the store AUTHLY_RATE_LIMIT_STORE names, and a function that
// releases it. The memory store counts in this process, for a single instance. The redis
// store is shared by every instance using AUTHLY_REDIS_URL; it must answer at start, so that
// a wrong URL stops the server with a clear message instead of leaving every limit open.
func newRateLimiter(ctx context.Context, cfg config.Config) (ratelimit.Limiter, func(), error) {
	if cfg.RateLimitStore != "redis" {
		return ratelimit.NewMemory(nil), func() {}, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		// Validated by config.Load already; the URL may hold a password, so it is not repeated.
		return nil, nil, fmt.Errorf("AUTHLY_REDIS_URL: not a valid Redis URL")
	}
	client := redis.NewClient(opts)
	pingCtx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		_ = client.Close() // the connection error is the one to report
		return nil, nil, fmt.Errorf("AUTHLY_REDIS_URL: Redis at %s does not answer: %w "+
			"(start it or fix the URL; a single instance can use AUTHLY_RATE_LIMIT_STORE=memory instead)", opts.Addr, err)
	}
	closeClient := func() { _ = client.Close() }
	return ratelimit.NewRedis(client, redisKeyPrefix), closeClient, nil
}
