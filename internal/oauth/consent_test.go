package oauth

import (
	"slices"
	"testing"
	"time"
)

func TestConsentCoversSubsets(t *testing.T) {
	t.Parallel()
	c := Consent{Scopes: []string{"email", "openid", "profile"}}
	tests := []struct {
		name      string
		requested []string
		covered   bool
		missing   []string
	}{
		{"the same scopes are covered", []string{"openid", "profile", "email"}, true, nil},
		{"a subset is covered", []string{"profile"}, true, nil},
		{"no scope is covered", nil, true, nil},
		{"one more scope is not", []string{"openid", "offline_access"}, false, []string{"offline_access"}},
		{"a disjoint set is not", []string{"calendar", "files"}, false, []string{"calendar", "files"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c.Covers(tc.requested) != tc.covered || !slices.Equal(c.Missing(tc.requested), tc.missing) {
				t.Fatalf("Covers = %v, Missing = %v; want %v, %v", c.Covers(tc.requested), c.Missing(tc.requested), tc.covered, tc.missing)
			}
		})
	}
}

func TestConsents(t *testing.T) {
	t.Parallel()

	t.Run("a new grant adds to what the user allowed before", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		first, err := e.svc.GrantConsent(ctx, alice, c.ID, []string{"profile", "openid"})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour)
		second, err := e.svc.GrantConsent(ctx, alice, c.ID, []string{"email", "openid"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(second.Scopes, []string{"email", "openid", "profile"}) || !second.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("consent %+v, want the union, created at the first grant", second)
		}
	})

	t.Run("a grant of scopes the client may not have is invalid_scope", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(nativeApp())
		_, err := e.svc.GrantConsent(ctx, e.user("alice"), c.ID, []string{"openid", "email"})
		wantCode(t, err, CodeInvalidScope)
		_, err = e.svc.GrantConsent(ctx, e.user("bob"), "no-such-client", []string{"openid"})
		wantCode(t, err, CodeNotFound)
	})

	t.Run("a user lists their grants, newest first, with the clients' names", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		web, _ := e.client(webApp())
		native, _ := e.client(nativeApp())
		alice, bob := e.user("alice"), e.user("bob")
		if _, err := e.svc.GrantConsent(ctx, alice, web.ID, []string{"openid"}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute)
		if _, err := e.svc.GrantConsent(ctx, alice, native.ID, []string{"profile"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.GrantConsent(ctx, bob, web.ID, []string{"email"}); err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.ListConsents(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ClientID != native.ID || got[0].ClientName != "Native app" ||
			got[1].ClientID != web.ID || !slices.Equal(got[1].Scopes, []string{"openid"}) {
			t.Fatalf("alice's consents %+v", got)
		}
	})

	t.Run("revoking a grant ends the client's sessions and tokens for that user only, and asks again next time", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice, bob := e.user("alice"), e.user("bob")
		_, resp := e.authorize(c, alice, "openid")
		g, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession)
		if err != nil {
			t.Fatal(err)
		}
		_, bobResp := e.authorize(c, bob, "openid")
		bobGrant, err := e.svc.RedeemCode(ctx, c, exchange(c, bobResp.Code), Actor{}, openSession)
		if err != nil {
			t.Fatal(err)
		}

		got, err := e.svc.RevokeConsent(ctx, Actor{UserID: alice}, alice, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.RevokedSessions != 1 || got.InvalidatedTokens != 2 {
			t.Fatalf("revoked %+v, want alice's one session and its two tokens", got)
		}
		if live, revoked := e.sessionState(g.SessionID); live != 0 || !revoked {
			t.Fatalf("alice's session: %d live tokens, revoked %v", live, revoked)
		}
		if live, revoked := e.sessionState(bobGrant.SessionID); live != 2 || revoked {
			t.Fatalf("bob's session was touched: %d live tokens, revoked %v", live, revoked)
		}
		_, err = e.svc.GetConsent(ctx, alice, c.ID)
		wantCode(t, err, CodeNotFound)
		if list, _ := e.svc.ListConsents(ctx, alice); len(list) != 0 {
			t.Fatalf("a revoked consent is listed: %+v", list)
		}
		sess, _ := e.browserSession(alice)
		req, _ := e.svc.ValidateAuthorizationRequest(ctx, authParams(c, "openid"))
		if d, err := e.svc.Decide(ctx, req, &sess, false); err != nil || d.Step != StepConsent {
			t.Fatalf("after revocation: %+v, %v; want the consent page", d, err)
		}
		events := e.auditEvents(AuditConsentRevoked)
		if len(events) != 1 || *events[0].UserID != alice || events[0].Details["client_id"] != c.ID {
			t.Fatalf("audit %+v", events)
		}
		_, err = e.svc.RevokeConsent(ctx, Actor{UserID: alice}, alice, c.ID)
		wantCode(t, err, CodeNotFound)

		e.clock.Advance(time.Hour)
		again, err := e.svc.GrantConsent(ctx, alice, c.ID, []string{"email"})
		if err != nil || !slices.Equal(again.Scopes, []string{"email"}) || !again.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("a grant after revocation: %+v, %v; want only the new scopes, created now", again, err)
		}
	})
}
