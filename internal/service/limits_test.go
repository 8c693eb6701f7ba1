package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
)

func TestQuotaKeepsTheTighterLimit(t *testing.T) {
	counted := func(allowed bool, remaining int) service.Quota {
		return service.Quota{Result: ratelimit.Result{Allowed: allowed, Limit: 10, Remaining: remaining}, Counted: true}
	}
	for _, tc := range []struct {
		name       string
		q, o, want service.Quota
	}{
		{"nothing counted stays nothing", service.Quota{}, service.Quota{}, service.Quota{}},
		{"a counted limit beats none", service.Quota{}, counted(true, 5), counted(true, 5)},
		{"none leaves a counted limit as it is", counted(true, 5), service.Quota{}, counted(true, 5)},
		{"fewer remaining is tighter", counted(true, 5), counted(true, 2), counted(true, 2)},
		{"more remaining is not", counted(true, 2), counted(true, 5), counted(true, 2)},
		{"a refusal beats an allowance", counted(true, 0), counted(false, 3), counted(false, 3)},
		{"an allowance never beats a refusal", counted(false, 3), counted(true, 0), counted(false, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.q.Tighter(tc.o); got != tc.want {
				t.Fatalf("%+v.Tighter(%+v) = %+v, want %+v", tc.q, tc.o, got, tc.want)
			}
		})
	}
}

func TestLimitClientReturnsTheTightestQuota(t *testing.T) {
	t.Parallel()
	d := newDomain(t, withLimits(service.RateLimits{
		IP:       ratelimit.Limit{N: 5, Period: time.Hour},
		Register: ratelimit.Limit{N: 2, Period: time.Hour},
	}))
	ctx := context.Background()
	steps := []struct {
		registration bool
		answer       string
		allowed      bool
		limit        int
		remaining    int
	}{
		{false, "ok", true, 5, 4},                     // the IP limit alone
		{true, "ok", true, 2, 1},                      // registration's limit is tighter
		{true, "ok", true, 2, 0},                      // and now spent
		{true, service.CodeRateLimited, false, 2, 0},  // so a registration is refused
		{false, "ok", true, 5, 0},                     // while the IP limit still allows the rest
		{false, service.CodeRateLimited, false, 5, 0}, // until it is spent too
	}
	for i, step := range steps {
		quota, err := d.svc.LimitClient(ctx, testClient, step.registration)
		got := "ok"
		if err != nil {
			got = service.AsError(err).Code
		}
		if got != step.answer || !quota.Counted || quota.Allowed != step.allowed || quota.Limit != step.limit || quota.Remaining != step.remaining {
			t.Fatalf("step %d: %s %+v, want %s allowed=%v limit=%d remaining=%d", i+1, got, quota, step.answer, step.allowed, step.limit, step.remaining)
		}
	}
	// Another client counts apart.
	quota, err := d.svc.LimitClient(ctx, service.Client{IP: "192.0.2.99"}, false)
	if err != nil || quota.Remaining != 4 {
		t.Fatalf("another client: %+v %v", quota, err)
	}
}

func TestLoginsReturnTheLoginNamesQuota(t *testing.T) {
	t.Parallel()
	d := newDomain(t, withLimits(service.RateLimits{Login: ratelimit.Limit{N: 2, Period: time.Minute}}))
	ctx := context.Background()
	d.verifiedUser("quinn") // one login of quinn's is already counted
	_, quota, err := d.svc.PasswordLogin(ctx, "QUINN", "wrong password", testClient)
	if answer(err) != service.CodeInvalidCredentials || !quota.Counted || !quota.Allowed || quota.Limit != 2 || quota.Remaining != 0 {
		t.Fatalf("a failed login, names compared without case: %s %+v", answer(err), quota)
	}
	_, quota, err = d.svc.PasswordLogin(ctx, "quinn", testPassword, testClient)
	if e := service.AsError(err); e.Code != service.CodeRateLimited || e.RetryAfter <= 0 || !quota.Counted || quota.Allowed || quota.Remaining != 0 {
		t.Fatalf("a login over the limit: %v %+v", err, quota)
	}

	off := newDomain(t)
	off.verifiedUser("rae")
	if _, quota, err := off.svc.PasswordLogin(ctx, "rae", testPassword, testClient); err != nil || quota.Counted {
		t.Fatalf("with the limit off: %+v %v", quota, err)
	}
}
