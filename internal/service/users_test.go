package service_test

import (
	"context"
	"testing"

	"github.com/authly/authly/internal/service"
)

func TestBootstrapAdminIsIdempotent(t *testing.T) {
	t.Parallel()
	d := newDomain(t)
	ctx := context.Background()
	in := service.NewUser{Username: "boss", Email: "boss@example.com", Password: testPassword}
	created, err := d.svc.EnsureAdmin(ctx, in, service.AdminFromBootstrap)
	if err != nil || !created {
		t.Fatalf("first EnsureAdmin: %v %v", created, err)
	}
	created, err = d.svc.EnsureAdmin(ctx, in, service.AdminFromBootstrap)
	if err != nil || created {
		t.Fatalf("second EnsureAdmin: %v %v", created, err)
	}
	me, err := d.svc.Authenticate(ctx, d.login("boss").AccessToken)
	if err != nil || !me.User.IsAdmin || !me.User.IsVerified || me.User.Username != "boss" {
		t.Fatalf("bootstrap admin: %+v %v", me.User, err)
	}
	if n := d.count(`SELECT count(*) FROM users WHERE username = 'boss'`); n != 1 {
		t.Fatalf("%d users named boss, want 1", n)
	}
}
