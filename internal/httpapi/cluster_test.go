package httpapi_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/testredis"
)

// TestLimitsAndLockoutHoldAcrossInstances runs two Authly instances on one database and one
// Redis, each with its own Redis client, service and handler, and alternates requests
// between them: every limit and the lockout must count once across both, not once per
// instance.
func TestLimitsAndLockoutHoldAcrossInstances(t *testing.T) {
	t.Parallel()
	cluster := func(t *testing.T, limits service.RateLimits, lockout service.LockoutPolicy) [2]*env {
		prefix := testredis.Prefix(t)
		a := newEnv(t, withLimiter(redisLimiter(t, prefix)), withLimits(limits), withLockout(lockout))
		b := a.sibling(withLimiter(redisLimiter(t, prefix)), withLimits(limits), withLockout(lockout))
		return [2]*env{a, b}
	}

	t.Run("the per-name limit", func(t *testing.T) {
		t.Parallel()
		nodes := cluster(t, service.RateLimits{Login: ratelimit.Limit{N: 4, Period: time.Hour}}, service.LockoutPolicy{})
		nodes[0].seedUser("ivy")
		for _, name := range []string{"ivy", "no-such-name"} {
			var statuses []int
			for i := range 6 {
				statuses = append(statuses, nodes[i%2].loginSeen(name, "wrong password").Status)
			}
			want := []int{401, 401, 401, 401, 429, 429}
			if !slices.Equal(statuses, want) {
				t.Errorf("%s alternating between instances: %v, want %v", name, statuses, want)
			}
		}
	})

	t.Run("the per-IP limit", func(t *testing.T) {
		t.Parallel()
		nodes := cluster(t, service.RateLimits{IP: ratelimit.Limit{N: 3, Period: time.Hour}}, service.LockoutPolicy{})
		var statuses []int
		for i := range 5 {
			resp, _ := nodes[i%2].raw("POST", "/api/v1/auth/refresh", "application/json", `{"grant_type":"refresh_token","refresh_token":"x"}`)
			statuses = append(statuses, resp.StatusCode)
		}
		if want := []int{401, 401, 401, 429, 429}; !slices.Equal(statuses, want) {
			t.Errorf("alternating between instances: %v, want %v", statuses, want)
		}
	})

	t.Run("the registration limit", func(t *testing.T) {
		t.Parallel()
		nodes := cluster(t, service.RateLimits{Register: ratelimit.Limit{N: 1, Period: time.Hour}}, service.LockoutPolicy{})
		var statuses []int
		for i, name := range []string{"reg-a", "reg-b"} {
			resp, _ := nodes[i%2].raw("POST", "/api/v1/users", "application/json",
				`{"username":"`+name+`","email":"`+name+`@example.com","password":"`+testPassword+`"}`)
			statuses = append(statuses, resp.StatusCode)
		}
		if want := []int{201, 429}; !slices.Equal(statuses, want) {
			t.Errorf("alternating between instances: %v, want %v", statuses, want)
		}
	})

	t.Run("the lockout", func(t *testing.T) {
		t.Parallel()
		nodes := cluster(t, service.RateLimits{}, testLockout)
		nodes[0].seedUser("jade")
		for _, name := range []string{"jade", "no-such-name"} {
			var got []seen
			for i := range 4 {
				got = append(got, nodes[i%2].loginSeen(name, "wrong password"))
			}
			// The right password on either instance is refused while the lock lasts.
			for _, node := range nodes {
				got = append(got, node.loginSeen(name, testPassword))
			}
			want := []seen{wrong, wrong, wrong, locked("60"), locked("60"), locked("60")}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s, attempt %d alternating between instances: %+v, want %+v", name, i+1, got[i], want[i])
				}
			}
		}
		nodes[1].clock.Advance(time.Minute)
		if got := nodes[1].loginSeen("jade", testPassword); got.Status != http.StatusOK {
			t.Errorf("jade after the lock, on the other instance: %+v", got)
		}
	})
}
