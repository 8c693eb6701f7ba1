package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
)

func TestEveryAuditEventTypeIsInTheContract(t *testing.T) {
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, v := range spec.Components.Schemas["AuditEventType"].Value.Enum {
		enum = append(enum, v.(string))
	}
	if !slices.Equal(enum, service.AuditEventTypes) {
		t.Fatalf("openapi.yaml AuditEventType %v != service.AuditEventTypes %v", enum, service.AuditEventTypes)
	}
}

func TestAdminsReadTheAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout), withLimits(service.RateLimits{Login: ratelimit.Limit{N: 4, Period: time.Hour}}))
	admin := e.seedAdmin()
	e.seedUser("kim")
	_, user := e.verifiedUser("lou")
	ctx := context.Background()
	// kim is locked, then unlocked by the admin; a name with no account trips the login limit.
	for range 3 {
		e.clock.Advance(time.Second)
		e.loginSeen("kim", "wrong password")
	}
	var kim api.User
	if err := e.pool.QueryRow(ctx, "SELECT id FROM users WHERE username = 'kim'").Scan(&kim.Id); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if resp, err := e.client.UnlockUserWithResponse(ctx, kim.Id, bearer(admin)); err != nil || resp.JSON200 == nil {
		t.Fatalf("unlock: %v", err)
	}
	for range 5 {
		e.clock.Advance(time.Second)
		e.loginSeen("ghost", "wrong password")
	}

	list := func(params api.ListAuditEventsParams, token string) *api.ListAuditEventsResponse {
		t.Helper()
		resp, err := e.client.ListAuditEventsWithResponse(ctx, &params, bearer(token))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("events about one user, newest first", func(t *testing.T) {
		resp := list(api.ListAuditEventsParams{UserId: &kim.Id}, admin)
		if resp.JSON200 == nil {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
		}
		var types []string
		for _, ev := range resp.JSON200.Events {
			types = append(types, string(ev.EventType))
			if ev.UserId == nil || *ev.UserId != kim.Id {
				t.Errorf("an event about someone else: %+v", ev)
			}
		}
		want := []string{"account_unlocked", "account_locked", "login_failed", "login_failed", "login_failed", "mail_queued", "user_registered"}
		if !slices.Equal(types, want) {
			t.Fatalf("kim's events %v, want %v", types, want)
		}
		locked := resp.JSON200.Events[1]
		if locked.Details["failed_attempts"] != float64(3) || locked.Details["locked_seconds"] != float64(60) || locked.Ip == nil || *locked.Ip != "127.0.0.1" {
			t.Errorf("account_locked event %+v", locked)
		}
		if resp.JSON200.NextCursor != nil {
			t.Errorf("a next page after everything: %q", *resp.JSON200.NextCursor)
		}
	})

	t.Run("events of one type", func(t *testing.T) {
		typ := api.AuditEventType(service.AuditRateLimited)
		resp := list(api.ListAuditEventsParams{EventType: &typ}, admin)
		if resp.JSON200 == nil || len(resp.JSON200.Events) != 1 {
			t.Fatalf("rate_limited events: %d %s", resp.StatusCode(), resp.Body)
		}
		ev := resp.JSON200.Events[0]
		if ev.UserId != nil || ev.Details["limit"] != "login" || strings.Contains(string(resp.Body), "ghost") {
			t.Errorf("rate_limited event %+v", ev)
		}
	})

	t.Run("pages follow one another without gaps or repeats", func(t *testing.T) {
		all := list(api.ListAuditEventsParams{Limit: ptr(100)}, admin).JSON200.Events
		var paged []int64
		var cursor *string
		for pages := 0; ; pages++ {
			resp := list(api.ListAuditEventsParams{Limit: ptr(3), Cursor: cursor}, admin)
			if resp.JSON200 == nil || pages > len(all) {
				t.Fatalf("page %d: %d %s", pages, resp.StatusCode(), resp.Body)
			}
			for _, ev := range resp.JSON200.Events {
				paged = append(paged, ev.Id)
			}
			if cursor = resp.JSON200.NextCursor; cursor == nil {
				break
			}
		}
		var ids []int64
		for i, ev := range all {
			ids = append(ids, ev.Id)
			if i > 0 && ev.CreatedAt.After(all[i-1].CreatedAt) {
				t.Errorf("event %d is newer than the one before it", ev.Id)
			}
		}
		if len(ids) < 10 || !slices.Equal(paged, ids) {
			t.Fatalf("pages of 3 gave %v, one page %v", paged, ids)
		}
	})

	t.Run("only admins may read it", func(t *testing.T) {
		if resp := list(api.ListAuditEventsParams{}, user.AccessToken); resp.StatusCode() != http.StatusForbidden {
			t.Errorf("a user reading the audit log: %d", resp.StatusCode())
		}
		if resp, _ := e.raw("GET", "/api/v1/audit-events", "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("no token: %d", resp.StatusCode)
		}
	})

	t.Run("bad parameters are refused", func(t *testing.T) {
		for _, query := range []string{"limit=0", "limit=101", "event_type=password_seen", "user_id=nope", "cursor=!!", "cursor=AAAA"} {
			resp, body := e.raw("GET", "/api/v1/audit-events?"+query, "", "", "Authorization", "Bearer "+admin)
			if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
				t.Errorf("%s: %d %s", query, resp.StatusCode, body)
			}
		}
	})
}
