package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// listSessions calls GET /api/v1/users/me/sessions and fails the test on anything but 200.
func (e *env) listSessions(accessToken string) []api.Session {
	e.t.Helper()
	resp, err := e.client.ListMySessionsWithResponse(context.Background(), bearer(accessToken))
	if err != nil || resp.JSON200 == nil {
		e.t.Fatalf("list sessions: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200
}

func (e *env) revokeSession(accessToken string, id uuid.UUID) *api.RevokeMySessionResponse {
	e.t.Helper()
	resp, err := e.client.RevokeMySessionWithResponse(context.Background(), id, bearer(accessToken))
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func TestSessionList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.verifiedUser("sara")
	e.clock.Advance(time.Minute)
	laptop := e.loginWith("sara", userAgent("Firefox/140.0"))
	e.clock.Advance(time.Minute)
	phone := e.loginWith("sara", userAgent("AuthlyPhone/1.2"))
	_, stranger := e.verifiedUser("stan")

	sessions := e.listSessions(phone.AccessToken)
	if len(sessions) != 3 {
		t.Fatalf("%d sessions, want 3 (the first login, the laptop, the phone): %+v", len(sessions), sessions)
	}
	newest, older := sessions[0], sessions[1]
	if newest.Id != sessionOf(t, phone.AccessToken) || !newest.Current || newest.UserAgent != "AuthlyPhone/1.2" {
		t.Errorf("newest session %+v is not the phone's current session", newest)
	}
	if older.Id != sessionOf(t, laptop.AccessToken) || older.Current || older.UserAgent != "Firefox/140.0" {
		t.Errorf("second session %+v is not the laptop's", older)
	}
	now := e.clock.Now()
	if newest.Ip != "127.0.0.1" || !newest.CreatedAt.Equal(now.Truncate(time.Microsecond)) || !newest.LastUsedAt.Equal(newest.CreatedAt) {
		t.Errorf("session fields: %+v", newest)
	}
	if want := now.Add(7 * 24 * time.Hour); newest.ExpiresAt.After(want) || newest.ExpiresAt.Before(want.Add(-time.Second)) {
		t.Errorf("session expires at %v, want the refresh token's expiry %v", newest.ExpiresAt, want)
	}
	for _, s := range e.listSessions(stranger.AccessToken) {
		if s.Id == newest.Id || s.Id == older.Id {
			t.Fatal("another user sees sara's sessions")
		}
	}

	t.Run("a refresh moves last_used_at and expires_at forward", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		laptop = e.mustRefresh(laptop.RefreshToken)
		for _, s := range e.listSessions(laptop.AccessToken) {
			if s.Id == older.Id && (!s.LastUsedAt.After(older.LastUsedAt) || !s.ExpiresAt.After(older.ExpiresAt) || !s.Current) {
				t.Fatalf("after a refresh: %+v, before: %+v", s, older)
			}
		}
	})
	t.Run("revoked and expired sessions are not listed", func(t *testing.T) {
		if resp := e.revokeSession(laptop.AccessToken, newest.Id); resp.StatusCode() != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", resp.StatusCode(), resp.Body)
		}
		for _, s := range e.listSessions(laptop.AccessToken) {
			if s.Id == newest.Id {
				t.Fatal("a revoked session is listed")
			}
		}
		e.clock.Advance(7*24*time.Hour - 30*time.Minute) // only the laptop's refreshed session is left
		fresh := e.login("sara", testPassword)
		var ids []uuid.UUID
		for _, s := range e.listSessions(fresh.AccessToken) {
			ids = append(ids, s.Id)
		}
		if len(ids) != 2 || ids[0] != sessionOf(t, fresh.AccessToken) || ids[1] != older.Id {
			t.Fatalf("sessions %v, want the new one and the laptop's", ids)
		}
	})
}

func TestRevokeOneSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, laptop := e.verifiedUser("rosa")
	phone := e.login("rosa", testPassword)
	_, stranger := e.verifiedUser("rick")
	laptopSession := sessionOf(t, laptop.AccessToken)

	if resp := e.revokeSession(phone.AccessToken, laptopSession); resp.StatusCode() != http.StatusNoContent {
		t.Fatalf("revoke the laptop from the phone: %d %s", resp.StatusCode(), resp.Body)
	}
	if code := e.meStatus(laptop.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("laptop access token after revocation: %d", code)
	}
	e.refreshRefused(laptop.RefreshToken, service.CodeInvalidGrant)
	if code := e.meStatus(phone.AccessToken); code != http.StatusOK {
		t.Fatalf("phone access token: %d", code)
	}
	var details string
	e.scalar(`SELECT details::text FROM audit_events WHERE event_type = 'session_revoked' AND user_id = $1`, []any{u.Id}, &details)
	if !strings.Contains(details, laptopSession.String()) || !strings.Contains(details, `"revoked_by_user"`) {
		t.Fatalf("audit details: %s", details)
	}

	notFound := []struct {
		name string
		id   uuid.UUID
	}{
		{"an already revoked session", laptopSession},
		{"someone else's session", sessionOf(t, stranger.AccessToken)},
		{"an unknown id", uuid.New()},
	}
	for _, tc := range notFound {
		t.Run(tc.name+" reads as not found", func(t *testing.T) {
			resp := e.revokeSession(phone.AccessToken, tc.id)
			if resp.ApplicationproblemJSON404 == nil || resp.ApplicationproblemJSON404.Code != service.CodeNotFound {
				t.Fatalf("%d %s", resp.StatusCode(), resp.Body)
			}
		})
	}
	if code := e.meStatus(stranger.AccessToken); code != http.StatusOK {
		t.Fatalf("the stranger's session after an attempt to revoke it: %d", code)
	}
	t.Run("a malformed id is a bad request", func(t *testing.T) {
		raw, body := e.raw("DELETE", "/api/v1/users/me/sessions/not-a-uuid", "", "", "Authorization", "Bearer "+phone.AccessToken)
		if raw.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
			t.Fatalf("%d %s", raw.StatusCode, body)
		}
	})
	t.Run("revoking the current session logs this client out", func(t *testing.T) {
		if resp := e.revokeSession(phone.AccessToken, sessionOf(t, phone.AccessToken)); resp.StatusCode() != http.StatusNoContent {
			t.Fatalf("%d %s", resp.StatusCode(), resp.Body)
		}
		if code := e.meStatus(phone.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("phone access token: %d", code)
		}
	})
}

func TestAdminForcesALogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, first := e.verifiedUser("fred")
	second := e.login("fred", testPassword)
	admin := e.admin()

	t.Run("a user may not force anyone out, not even himself", func(t *testing.T) {
		resp, err := e.client.RevokeUserSessionsWithResponse(context.Background(), u.Id, bearer(first.AccessToken))
		if err != nil || resp.ApplicationproblemJSON403 == nil || resp.ApplicationproblemJSON403.Code != service.CodeForbidden {
			t.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})

	resp, err := e.client.RevokeUserSessionsWithResponse(context.Background(), u.Id, bearer(admin))
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("forced logout: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	if got := *resp.JSON200; got.InvalidatedTokens != 4 || got.RevokedSessions != 2 {
		t.Fatalf("forced logout: %+v, want 4 tokens in 2 sessions", got)
	}
	for _, pair := range []api.TokenResponse{first, second} {
		if code := e.meStatus(pair.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("access token after a forced logout: %d", code)
		}
		e.refreshRefused(pair.RefreshToken, service.CodeInvalidGrant)
	}
	if code := e.meStatus(admin); code != http.StatusOK {
		t.Fatalf("the admin's own token: %d", code)
	}
	var details string
	e.scalar(`SELECT details::text FROM audit_events WHERE event_type = 'user_sessions_revoked' AND user_id = $1`, []any{u.Id}, &details)
	if !strings.Contains(details, `"actor_id"`) || !strings.Contains(details, `"invalidated_tokens": 4`) {
		t.Fatalf("audit details: %s", details)
	}

	t.Run("a second forced logout finds nothing left", func(t *testing.T) {
		resp, err := e.client.RevokeUserSessionsWithResponse(context.Background(), u.Id, bearer(admin))
		if err != nil || resp.JSON200 == nil || resp.JSON200.InvalidatedTokens != 0 || resp.JSON200.RevokedSessions != 0 {
			t.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})
	t.Run("an unknown user is not found", func(t *testing.T) {
		resp, err := e.client.RevokeUserSessionsWithResponse(context.Background(), uuid.New(), bearer(admin))
		if err != nil || resp.ApplicationproblemJSON404 == nil {
			t.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})
	t.Run("the user can log in again", func(t *testing.T) {
		if code := e.meStatus(e.login("fred", testPassword).AccessToken); code != http.StatusOK {
			t.Fatalf("%d", code)
		}
	})
}

func TestALoginBeyondTheCapRevokesTheOldestSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSessions(service.SessionPolicy{MaxPerUser: 3}))
	u, oldest := e.verifiedUser("carl")
	var newer []api.TokenResponse
	for range 3 {
		e.clock.Advance(time.Second)
		newer = append(newer, e.login("carl", testPassword))
	}

	if code := e.meStatus(oldest.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("the oldest session's access token: %d", code)
	}
	e.refreshRefused(oldest.RefreshToken, service.CodeInvalidGrant)
	for i, pair := range newer {
		if code := e.meStatus(pair.AccessToken); code != http.StatusOK {
			t.Fatalf("session %d: %d", i+1, code)
		}
	}
	if n := len(e.listSessions(newer[2].AccessToken)); n != 3 {
		t.Fatalf("%d live sessions, want 3", n)
	}
	var reason string
	e.scalar(`SELECT revoked_reason FROM sessions WHERE id = $1`, []any{sessionOf(t, oldest.AccessToken)}, &reason)
	if reason != "session_limit" {
		t.Fatalf("revoked_reason %q", reason)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE event_type = 'session_revoked' AND user_id = $1 AND details->>'reason' = 'session_limit'`, u.Id); n != 1 {
		t.Fatalf("%d session_limit audit events, want 1", n)
	}
}

func TestConcurrentLoginsRespectTheCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSessions(service.SessionPolicy{MaxPerUser: 3}))
	u, _ := e.verifiedUser("cora")
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			resp, err := e.client.CreateTokenWithResponse(context.Background(), api.TokenRequest{
				GrantType: api.TokenRequestGrantTypePassword, Username: ptr("cora"), Password: ptr(testPassword),
			})
			if err != nil || resp.JSON200 == nil {
				t.Errorf("login: %v %d", err, resp.StatusCode())
			}
		})
	}
	wg.Wait()
	live := e.count(`SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL`, u.Id)
	liveTokens := e.count(`SELECT count(*) FROM tokens WHERE user_id = $1 AND invalidated_at IS NULL`, u.Id)
	if live != 3 || liveTokens != 6 {
		t.Fatalf("%d live sessions with %d live tokens after 13 logins, want 3 and 6", live, liveTokens)
	}
}

func TestAuditTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, pair := e.verifiedUser("audra")
	wrong := "wrong password for audra"
	if resp := e.tryLogin("audra", wrong); resp.StatusCode() != http.StatusUnauthorized {
		t.Fatal(resp.StatusCode())
	}
	if resp := e.tryLogin("nobody-here", testPassword); resp.StatusCode() != http.StatusUnauthorized {
		t.Fatal(resp.StatusCode())
	}
	e.register("uma")
	if resp := e.tryLogin("uma", testPassword); resp.StatusCode() != http.StatusForbidden {
		t.Fatal(resp.StatusCode())
	}
	next := e.mustRefresh(pair.RefreshToken)
	e.refreshRefused(pair.RefreshToken, service.CodeRefreshTokenReused)
	again := e.login("audra", testPassword)
	if resp, err := e.client.LogoutWithResponse(context.Background(), bearer(again.AccessToken)); err != nil || resp.JSON200 == nil {
		t.Fatalf("logout: %v", err)
	}

	type event struct{ typ, reason string }
	var got []event
	rows, err := e.pool.Query(context.Background(),
		`SELECT event_type, coalesce(details->>'reason', '') FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ev event
		if err := rows.Scan(&ev.typ, &ev.reason); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	want := []event{
		{service.AuditUserRegistered, ""}, // audra
		{service.AuditMailQueued, ""},     // her verification link
		{service.AuditAdminCreated, ""},   // root, bootstrapped to verify audra
		{service.AuditLoginSucceeded, ""}, // root
		{service.AuditUserChanged, ""},    // root verifies audra
		{service.AuditLoginSucceeded, ""}, // audra
		{service.AuditLoginFailed, "wrong_password"},
		{service.AuditLoginFailed, "unknown_user"},
		{service.AuditUserRegistered, ""}, // uma
		{service.AuditMailQueued, ""},
		{service.AuditLoginFailed, "account_unverified"},
		{service.AuditRefreshTokenReused, ""},
		{service.AuditLoginSucceeded, ""},
		{service.AuditLogout, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("audit events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit events %v, want %v", got, want)
		}
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE user_id = $1`, u.Id); n != 8 {
		t.Fatalf("%d events about audra, want 8", n)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE event_type = 'login_failed' AND user_id IS NULL`); n != 1 {
		t.Fatalf("%d failed logins without a user, want the unknown name's", n)
	}

	t.Run("every row has its client and time, and no secret", func(t *testing.T) {
		rows, err := e.pool.Query(context.Background(), `SELECT event_type, coalesce(ip, ''), coalesce(user_agent, ''), created_at, details::text FROM audit_events`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		secrets := []string{testPassword, wrong, pair.AccessToken, pair.RefreshToken, next.AccessToken, next.RefreshToken}
		for _, tok := range []string{pair.AccessToken, pair.RefreshToken, next.RefreshToken} {
			_, claims := jwtClaims(t, tok)
			secrets = append(secrets, claims["jti"].(string))
		}
		for rows.Next() {
			var typ, ip, agent, details string
			var at time.Time
			if err := rows.Scan(&typ, &ip, &agent, &at, &details); err != nil {
				t.Fatal(err)
			}
			// The bootstrap admin is made at start, by no request.
			requested := typ != service.AuditAdminCreated
			if requested && (ip != "127.0.0.1" || agent == "") || at.IsZero() {
				t.Errorf("%s audit row without its client or time: %q %q %v", typ, ip, agent, at)
			}
			for _, s := range secrets {
				if strings.Contains(details, s) {
					t.Fatalf("audit details hold a secret: %s", details)
				}
			}
			if strings.Contains(details, "nobody-here") {
				t.Fatalf("audit details hold the login name of a failed login: %s", details)
			}
		}
	})
}

// waitUntilBlocked returns once another connection to this test's database waits for a
// lock, which shows a request queued behind a transaction the test holds open.
func (e *env) waitUntilBlocked() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.t.Fatal("no request waited for the lock")
}

func TestARefreshWaitsForAnotherChangeToTheUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u, pair := e.verifiedUser("lena")

	// A change to lena's account is in flight, such as a password change: it holds her row
	// and invalidates her tokens, but has not committed yet.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE users SET updated_at = now() WHERE id = $1`, u.Id); err != nil {
		t.Fatal(err)
	}
	done := make(chan *api.RefreshTokenResponse, 1)
	go func() {
		resp, err := e.client.RefreshTokenWithResponse(ctx, api.RefreshRequest{
			GrantType: api.RefreshRequestGrantTypeRefreshToken, RefreshToken: pair.RefreshToken,
		})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	e.waitUntilBlocked()
	if _, err := tx.Exec(ctx, `UPDATE tokens SET invalidated_at = now() WHERE user_id = $1 AND invalidated_at IS NULL`, u.Id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// The refresh ran after the change and saw it: no new pair slipped past the change.
	resp := <-done
	if resp == nil || resp.ApplicationproblemJSON401 == nil || resp.ApplicationproblemJSON401.Code != service.CodeInvalidGrant {
		t.Fatalf("refresh queued behind the change: %+v", resp)
	}
	if n := e.count(`SELECT count(*) FROM tokens WHERE user_id = $1 AND invalidated_at IS NULL`, u.Id); n != 0 {
		t.Fatalf("%d live tokens after the change", n)
	}
}

func TestARevocationWaitsForARotationInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u, pair := e.verifiedUser("mona")
	other := e.login("mona", testPassword)
	sid := sessionOf(t, pair.AccessToken)

	// A rotation of the session is in flight, as Refresh runs it: the user's row is locked,
	// and the new pair is written but not committed.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, stmt := range []string{
		`SELECT 1 FROM users WHERE id = $1 AND $2::uuid IS NOT NULL FOR NO KEY UPDATE`,
		`UPDATE tokens SET invalidated_at = now() WHERE user_id = $1 AND session_id = $2 AND invalidated_at IS NULL`,
		`INSERT INTO tokens (token_jti, token_type, user_id, session_id, expires_at)
		 VALUES (gen_random_uuid()::text, 'access', $1, $2, now() + interval '30 minutes'),
		        (gen_random_uuid()::text, 'refresh', $1, $2, now() + interval '7 days')`,
		`UPDATE sessions SET last_used_at = last_used_at WHERE id = $2 AND user_id = $1`,
	} {
		if _, err := tx.Exec(ctx, stmt, u.Id, sid); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	done := make(chan int, 1)
	go func() {
		resp, err := e.client.RevokeMySessionWithResponse(ctx, sid, bearer(other.AccessToken))
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		done <- resp.StatusCode()
	}()
	e.waitUntilBlocked()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// The revocation ran after the rotation and killed the pair it issued.
	if code := <-done; code != http.StatusNoContent {
		t.Fatalf("revocation: %d", code)
	}
	if n := e.count(`SELECT count(*) FROM tokens WHERE session_id = $1 AND invalidated_at IS NULL`, sid); n != 0 {
		t.Fatalf("%d live tokens in the revoked session", n)
	}
}
