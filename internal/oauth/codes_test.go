package oauth

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

func exchange(c Client, code string) CodeExchange {
	return CodeExchange{Code: code, RedirectURI: c.RedirectURIs[0], CodeVerifier: rfcVerifier}
}

func TestRedeemCode(t *testing.T) {
	t.Parallel()

	t.Run("a code is redeemed by its client, for its redirect URI, with its verifier, into a recorded session", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		p := authParams(c, "openid profile")
		p.Resources = []string{"https://api.example.com/"}
		req, err := e.svc.ValidateAuthorizationRequest(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		sess, _ := e.browserSession(alice)
		e.clock.Advance(5 * time.Second)
		resp, err := e.svc.Approve(ctx, req, sess, true, Actor{UserID: alice})
		if err != nil {
			t.Fatal(err)
		}
		g, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession)
		if err != nil {
			t.Fatal(err)
		}
		if g.ClientID != c.ID || g.UserID != alice || !slices.Equal(g.Scopes, []string{"openid", "profile"}) ||
			g.Nonce != p.Nonce || !g.AuthTime.Equal(sess.AuthTime) || !slices.Equal(g.AMR, []string{"pwd"}) ||
			g.BrowserSessionID == nil || *g.BrowserSessionID != sess.ID || !slices.Equal(g.Resources, p.Resources) ||
			g.RedirectURI != c.RedirectURIs[0] || g.SessionID == uuid.Nil {
			t.Fatalf("grant %+v", g)
		}
		var recorded uuid.UUID
		var used bool
		if err := e.pool.QueryRow(ctx, `SELECT session_id, used_at IS NOT NULL FROM oauth_authorization_codes`).Scan(&recorded, &used); err != nil {
			t.Fatal(err)
		}
		if recorded != g.SessionID || !used {
			t.Fatalf("code row: session %s used %v; want %s and used", recorded, used, g.SessionID)
		}
		var clientID, scope string
		if err := e.pool.QueryRow(ctx, `SELECT client_id, scope FROM sessions WHERE id = $1`, g.SessionID).Scan(&clientID, &scope); err != nil ||
			clientID != c.ID || scope != "openid profile" {
			t.Fatalf("session client %q scope %q (%v)", clientID, scope, err)
		}
	})

	t.Run("a failed check leaves the code to its own client", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		other, _ := e.client(webApp())
		machine, _ := e.client(NewClient{Type: ClientConfidential, ClientMetadata: ClientMetadata{
			Name: "Machine", GrantTypes: []GrantType{GrantClientCredentials},
		}})
		_, resp := e.authorize(c, e.user("alice"), "openid")
		good := exchange(c, resp.Code)
		tests := []struct {
			name   string
			client Client
			edit   func(*CodeExchange)
			code   ErrorCode
		}{
			{"another client", other, nil, CodeInvalidGrant},
			{"a client without the grant", machine, nil, CodeUnauthorizedClient},
			{"another redirect URI", c, func(x *CodeExchange) { x.RedirectURI = "https://app.example.com/other" }, CodeInvalidGrant},
			{"the wrong verifier", c, func(x *CodeExchange) { x.CodeVerifier = rfcVerifier[:42] + "Y" }, CodeInvalidGrant},
			{"the challenge sent as a plain verifier", c, func(x *CodeExchange) { x.CodeVerifier = rfcChallenge }, CodeInvalidGrant},
			{"a malformed verifier", c, func(x *CodeExchange) { x.CodeVerifier = "short" }, CodeInvalidRequest},
			{"no verifier", c, func(x *CodeExchange) { x.CodeVerifier = "" }, CodeInvalidRequest},
			{"no redirect URI", c, func(x *CodeExchange) { x.RedirectURI = "" }, CodeInvalidRequest},
			{"no code", c, func(x *CodeExchange) { x.Code = "" }, CodeInvalidRequest},
			{"a malformed code", c, func(x *CodeExchange) { x.Code = "not a code" }, CodeInvalidGrant},
			{"an unknown code", c, func(x *CodeExchange) { x.Code = resp.Code[:42] + "A" }, CodeInvalidGrant},
		}
		for _, tc := range tests {
			x := good
			if tc.edit != nil {
				tc.edit(&x)
			}
			_, err := e.svc.RedeemCode(ctx, tc.client, x, Actor{}, openSession)
			got := wantCode(t, err, tc.code)
			if tc.code == CodeInvalidGrant && got.Description != errInvalidGrant("").Description {
				t.Errorf("%s: description %q tells more than every other invalid_grant", tc.name, got.Description)
			}
		}
		if _, err := e.svc.RedeemCode(ctx, c, good, Actor{}, openSession); err != nil {
			t.Fatalf("after the failures, the right request: %v", err)
		}
		if got := e.auditEvents(AuditCodeReused); len(got) != 0 {
			t.Fatalf("failed checks were taken for reuse: %+v", got)
		}
	})

	t.Run("a second presentation is refused and revokes the tokens issued from the first", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		other, _ := e.client(webApp())
		alice := e.user("alice")
		_, resp := e.authorize(c, alice, "openid")
		g, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession)
		if err != nil {
			t.Fatal(err)
		}
		if live, revoked := e.sessionState(g.SessionID); live != 2 || revoked {
			t.Fatalf("before the replay: %d live tokens, revoked %v", live, revoked)
		}

		_, err = e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{IP: "203.0.113.66"}, openSession)
		wantCode(t, err, CodeInvalidGrant)
		var reuse *CodeReuse
		if !errors.As(err, &reuse) {
			t.Fatalf("error %v does not report the reuse", err)
		}
		if reuse.SessionID == nil || *reuse.SessionID != g.SessionID || reuse.RevokedSessions != 1 || reuse.InvalidatedTokens != 2 ||
			reuse.UserID != alice || reuse.ClientID != c.ID {
			t.Fatalf("reuse %+v, want the first session revoked with its two tokens", reuse)
		}
		if live, revoked := e.sessionState(g.SessionID); live != 0 || !revoked {
			t.Fatalf("after the replay: %d live tokens, revoked %v", live, revoked)
		}
		events := e.auditEvents(AuditCodeReused)
		if len(events) != 1 || *events[0].UserID != alice || events[0].Details["session_id"] != g.SessionID.String() ||
			*events[0].IP != "203.0.113.66" || events[0].Details["invalidated_tokens"] != float64(2) {
			t.Fatalf("audit %+v", events)
		}
		e.noSecretIn(resp.Code)

		// Whoever presents it again, even another client, it is still a replay.
		_, err = e.svc.RedeemCode(ctx, other, exchange(c, resp.Code), Actor{}, openSession)
		if !errors.As(err, &reuse) || reuse.RevokedSessions != 0 {
			t.Fatalf("a third presentation: %v", err)
		}
		if got := e.auditEvents(AuditCodeReused); len(got) != 2 {
			t.Fatalf("%d reuse events, want 2", len(got))
		}
	})

	t.Run("a code expires 60 seconds after it is issued", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		_, fresh := e.authorize(c, alice, "openid")
		_, stale := e.authorize(c, alice, "openid")
		e.clock.Advance(59 * time.Second)
		if _, err := e.svc.RedeemCode(ctx, c, exchange(c, fresh.Code), Actor{}, nil); err != nil {
			t.Fatalf("at 59 s: %v", err)
		}
		e.clock.Advance(time.Second)
		_, err := e.svc.RedeemCode(ctx, c, exchange(c, stale.Code), Actor{}, nil)
		wantCode(t, err, CodeInvalidGrant)
		var reuse *CodeReuse
		if errors.As(err, &reuse) {
			t.Fatal("an expired code was taken for a replay")
		}
	})

	t.Run("a code of a user who has since been deactivated is refused", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		_, resp := e.authorize(c, alice, "openid")
		e.deactivate(alice)
		_, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession)
		wantCode(t, err, CodeInvalidGrant)
	})

	t.Run("when issuing fails, everything rolls back and the code stays redeemable", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		_, resp := e.authorize(c, e.user("alice"), "openid")
		failing := func(ctx context.Context, tx pgx.Tx, g Grant) (uuid.UUID, error) {
			if _, err := openSession(ctx, tx, g); err != nil {
				return uuid.Nil, err
			}
			return uuid.Nil, errorf(CodeServerError, "", "The signing key is unavailable.")
		}
		_, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, failing)
		wantCode(t, err, CodeServerError)
		var sessions int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&sessions); err != nil || sessions != 0 {
			t.Fatalf("%d sessions left by a failed issue", sessions)
		}
		if _, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession); err != nil {
			t.Fatalf("redeeming again: %v", err)
		}
	})

	t.Run("of requests racing with one code, exactly one gets tokens, and the race counts as a replay", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		_, resp := e.authorize(c, e.user("alice"), "openid")
		const racers = 6
		var wg sync.WaitGroup
		results := make(chan error, racers)
		sessions := make(chan uuid.UUID, racers)
		for range racers {
			wg.Go(func() {
				g, err := e.svc.RedeemCode(ctx, c, exchange(c, resp.Code), Actor{}, openSession)
				if err == nil {
					sessions <- g.SessionID
				}
				results <- err
			})
		}
		wg.Wait()
		close(results)
		close(sessions)
		var won, reused int
		for err := range results {
			var reuse *CodeReuse
			switch {
			case err == nil:
				won++
			case errors.As(err, &reuse):
				reused++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 || reused != racers-1 {
			t.Fatalf("%d won and %d were refused as replays, want 1 and %d", won, reused, racers-1)
		}
		if live, revoked := e.sessionState(<-sessions); live != 0 || !revoked {
			t.Fatalf("the winner's session: %d live tokens, revoked %v; want it revoked by the replays", live, revoked)
		}
	})
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.client(webApp())
	alice := e.user("alice")
	_, old := e.authorize(c, alice, "openid") // each authorize signs alice in anew
	e.clock.Advance(DefaultCodeRetention)
	_, recent := e.authorize(c, alice, "openid")
	e.clock.Advance(2 * time.Minute)
	got, err := e.svc.DeleteExpired(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Codes != 1 || got.BrowserSessions != 0 {
		t.Fatalf("deleted %+v, want the one code expired more than a day ago", got)
	}
	_, err = e.svc.RedeemCode(ctx, c, exchange(c, old.Code), Actor{}, nil)
	wantCode(t, err, CodeInvalidGrant)
	var left int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM oauth_authorization_codes WHERE code_hash = $1`, hashValue(recent.Code)).Scan(&left); err != nil || left != 1 {
		t.Fatalf("the recent code is gone (%d, %v)", left, err)
	}
	e.clock.Advance(DefaultBrowserSessionMaxLifetime)
	got, err = e.svc.DeleteExpired(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Codes != 1 || got.BrowserSessions != 2 {
		t.Fatalf("deleted %+v, want the other code and both browser sessions", got)
	}
	_, err = e.svc.DeleteExpired(ctx, 0)
	wantCode(t, err, CodeInvalidRequest)
}
