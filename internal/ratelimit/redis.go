package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter whose counts live in Redis, shared by every Authly
// instance pointed at the same server. Each hit is one script run, which
// Redis executes atomically, so instances never admit more than N between
// them. It needs Redis 5 or later, which replicates a script's writes rather
// than re-running it, as a script that reads the clock requires.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a Limiter keeping one Redis string per active key, which
// expires once the key's bucket is full again. It is named prefix + "k:" +
// key, or prefix + "h:" + the key's SHA-256 in hex when the key is longer
// than 128 bytes.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// gcraScript records a hit and answers {allowed, remaining, retry_after_us,
// reset_after_us}. It runs on Redis's clock, so instances whose clocks
// disagree still agree on every key. All numbers are whole microseconds, far
// below 2^53, where Lua's doubles are exact: fractional seconds would round
// Remaining down by one for periods N does not divide, such as 7/1m.
//
// KEYS[1] holds the key's TAT in microseconds since 1970.
// ARGV[1] is the interval Period/N and ARGV[2] is N.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call("TIME")
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end

local reset_after = new_tat - now
redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", math.ceil(reset_after / 1000))
return {1, math.floor((now - allow_at) / interval), 0, reset_after}
`)

// Allow records one hit for key under limit l and reports whether it is
// allowed. It returns ErrInvalidLimit, or the Redis error when the server
// cannot be reached; the caller chooses whether that fails open or closed.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if err := check(l); err != nil {
		return Result{}, err
	}
	if l.Off() {
		return offResult, nil
	}
	interval := l.interval()
	reply, err := gcraScript.Run(ctx, r.client, []string{r.prefix + storageKey(key)},
		interval.Microseconds(), l.N).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(reply) != 4 {
		return Result{}, fmt.Errorf("ratelimit: redis: the script answered %d numbers, want 4", len(reply))
	}
	return Result{
		Allowed:    reply[0] == 1,
		Limit:      l.N,
		Remaining:  int(reply[1]),
		RetryAfter: time.Duration(reply[2]) * time.Microsecond,
		ResetAfter: time.Duration(reply[3]) * time.Microsecond,
	}, nil
}
