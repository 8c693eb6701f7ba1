package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

// liveSessions counts the user's sessions that are not revoked.
func (e *env) liveSessions(userID uuid.UUID) int {
	e.t.Helper()
	return e.count(`SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL`, userID)
}

// revokedReasons lists the reasons the user's sessions were revoked with.
func (e *env) revokedReasons(userID uuid.UUID) []string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(),
		`SELECT revoked_reason FROM sessions WHERE user_id = $1 AND revoked_at IS NOT NULL ORDER BY revoked_reason`, userID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var reasons []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			e.t.Fatal(err)
		}
		reasons = append(reasons, r)
	}
	return reasons
}

func (e *env) update(id uuid.UUID, tok string, u api.UserUpdate) *api.UpdateUserResponse {
	e.t.Helper()
	resp, err := e.client.UpdateUserWithResponse(context.Background(), id, u, bearer(tok))
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// An admin who un-verifies a user ends the user's sessions: the access token and the refresh
// token stop working at once.
func TestUnverifyingAUserEndsItsSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, pair := e.verifiedUser("una")
	if r := e.update(u.Id, e.admin(), api.UserUpdate{IsVerified: ptr(false)}); r.JSON200 == nil || r.JSON200.IsVerified {
		t.Fatalf("un-verify: %d %s", r.StatusCode(), r.Body)
	}
	if status := e.meStatus(pair.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("the access token answers %d after the account was un-verified, want 401", status)
	}
	e.refreshRefused(pair.RefreshToken, service.CodeInvalidGrant)
	if n := e.liveSessions(u.Id); n != 0 {
		t.Errorf("%d sessions still live", n)
	}
	if got := e.revokedReasons(u.Id); !slices.Equal(got, []string{"account_unverified"}) {
		t.Errorf("revoked reasons %v", got)
	}
}

// A password change, a deactivation or a demotion revokes the user's sessions, not only their
// tokens: they leave the list of sessions and stop counting against the cap.
func TestAccountChangesRevokeSessionsNotOnlyTokens(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		admin  bool // the user is an admin beforehand
		update api.UserUpdate
		reason string
	}{
		{"a password change by an admin", false, api.UserUpdate{Password: ptr("a replacement passphrase")}, "password_changed"},
		{"a deactivation", false, api.UserUpdate{IsActive: ptr(false)}, "account_deactivated"},
		{"a demotion", true, api.UserUpdate{IsAdmin: ptr(false)}, "role_changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(_ *token.Config, d *service.Deps) { d.Sessions.MaxPerUser = 2 })
			admin := e.admin()
			u, first := e.verifiedUser("sam")
			second := e.login("sam", testPassword)
			if tc.admin {
				if r := e.update(u.Id, admin, api.UserUpdate{IsAdmin: ptr(true)}); r.JSON200 == nil {
					t.Fatalf("promote: %s", r.Body)
				}
				first, second = e.login("sam", testPassword), e.login("sam", testPassword)
			}
			if r := e.update(u.Id, admin, tc.update); r.JSON200 == nil {
				t.Fatalf("update: %d %s", r.StatusCode(), r.Body)
			}
			if n := e.liveSessions(u.Id); n != 0 {
				t.Fatalf("%d sessions are still live", n)
			}
			if got := e.revokedReasons(u.Id); len(got) < 2 || got[len(got)-1] != tc.reason && got[0] != tc.reason {
				t.Errorf("revoked reasons %v, want %s", got, tc.reason)
			}
			for _, old := range []api.TokenResponse{first, second} {
				if status := e.meStatus(old.AccessToken); status != http.StatusUnauthorized {
					t.Errorf("an old access token answers %d", status)
				}
			}
			if tc.update.IsActive != nil {
				return // an inactive account cannot log in to look at its sessions
			}
			// A new login finds no dead session in its list or against its cap.
			password := testPassword
			if tc.update.Password != nil {
				password = *tc.update.Password
			}
			fresh := e.login("sam", password)
			sessions := e.listSessions(fresh.AccessToken)
			if len(sessions) != 1 || !sessions[0].Current {
				t.Fatalf("sessions after the change and one login: %+v, want only the new one", sessions)
			}
			e.login("sam", password)
			if n := e.liveSessions(u.Id); n != 2 {
				t.Errorf("%d live sessions after two logins under a cap of 2, want 2", n)
			}
			if r := e.meStatus(fresh.AccessToken); r != http.StatusOK {
				t.Errorf("the first new session was evicted by dead ones: %d", r)
			}
		})
	}
}

// A user changing its own password keeps the session it changed it from, and only that one.
func TestAPasswordChangeKeepsOnlyTheCurrentSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, here := e.verifiedUser("cara")
	elsewhere := e.login("cara", testPassword)
	r := e.update(u.Id, here.AccessToken, api.UserUpdate{Password: ptr("cara's new passphrase"), CurrentPassword: ptr(testPassword)})
	if r.JSON200 == nil {
		t.Fatalf("change: %d %s", r.StatusCode(), r.Body)
	}
	if status := e.meStatus(here.AccessToken); status != http.StatusOK {
		t.Errorf("the session the change came from answers %d", status)
	}
	if status := e.meStatus(elsewhere.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("another session answers %d", status)
	}
	e.refreshRefused(elsewhere.RefreshToken, service.CodeInvalidGrant)
	next := e.mustRefresh(here.RefreshToken)
	sessions := e.listSessions(next.AccessToken)
	if len(sessions) != 1 || !sessions[0].Current {
		t.Fatalf("sessions %+v, want only the current one", sessions)
	}
	if got := e.revokedReasons(u.Id); !slices.Equal(got, []string{"password_changed"}) {
		t.Errorf("revoked reasons %v", got)
	}
}

// A stolen access token alone cannot change the account's password or email, nor delete it.
func TestSensitiveChangesNeedTheCurrentPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, stolen := e.verifiedUser("vic")
	ctx := context.Background()
	attempts := []struct {
		name string
		do   func(current *string) (int, []byte)
	}{
		{"changing the password", func(current *string) (int, []byte) {
			r := e.update(u.Id, stolen.AccessToken, api.UserUpdate{Password: ptr("the thief's passphrase"), CurrentPassword: current})
			return r.StatusCode(), r.Body
		}},
		{"changing the email", func(current *string) (int, []byte) {
			r := e.update(u.Id, stolen.AccessToken, api.UserUpdate{Email: ptr("thief@example.net"), CurrentPassword: current})
			return r.StatusCode(), r.Body
		}},
		{"deleting the account", func(current *string) (int, []byte) {
			r, err := e.client.DeleteMyAccountWithResponse(ctx, api.AccountDeletion{CurrentPassword: deref(current)}, bearer(stolen.AccessToken))
			if err != nil {
				t.Fatal(err)
			}
			return r.StatusCode(), r.Body
		}},
	}
	for _, a := range attempts {
		for _, current := range []*string{nil, ptr("a guess at the password")} {
			if a.name == "deleting the account" && current == nil {
				continue // the body requires the field; an empty one is below
			}
			label := "without the current password"
			if current != nil {
				label = "with a wrong current password"
			}
			t.Run(a.name+" "+label, func(t *testing.T) {
				status, body := a.do(current)
				if status != http.StatusForbidden || problemCode(t, body) != service.CodeReauthenticationRequired {
					t.Fatalf("status %d: %s", status, body)
				}
			})
		}
	}
	t.Run("deleting the account through DELETE", func(t *testing.T) {
		r, err := e.client.DeleteUserWithResponse(ctx, u.Id, bearer(stolen.AccessToken))
		if err != nil || r.StatusCode() != http.StatusForbidden || problemCode(t, r.Body) != service.CodeReauthenticationRequired {
			t.Fatalf("status %d: %s", r.StatusCode(), r.Body)
		}
	})
	t.Run("deleting the account with an empty password", func(t *testing.T) {
		resp, body := e.raw("POST", "/api/v1/users/me/deletion", "application/json", `{"current_password":""}`, "Authorization", "Bearer "+stolen.AccessToken)
		if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	// Nothing changed: the owner still logs in with the old password, at the old address.
	me, _ := e.client.GetCurrentUserWithResponse(ctx, bearer(e.login("vic", testPassword).AccessToken))
	if me.JSON200 == nil || me.JSON200.Email != "vic@example.com" {
		t.Fatalf("the account after the attempts: %s", me.Body)
	}
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE user_id = $1 AND purpose = 'email_change'`, u.Id); n != 0 {
		t.Errorf("%d email change links were sent", n)
	}
	t.Run("with the right password, the owner changes the password", func(t *testing.T) {
		r := e.update(u.Id, stolen.AccessToken, api.UserUpdate{Password: ptr("vic's new passphrase"), CurrentPassword: ptr(testPassword)})
		if r.JSON200 == nil {
			t.Fatalf("status %d: %s", r.StatusCode(), r.Body)
		}
		e.login("vic", "vic's new passphrase")
	})
}

// Admins acting on other accounts need no password of theirs, and the change is audited.
func TestAdminsChangeOthersWithoutReauthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, _ := e.verifiedUser("wes")
	admin := e.admin()
	if r := e.update(u.Id, admin, api.UserUpdate{Password: ptr("set by the admin"), Email: ptr("wes@example.org")}); r.JSON200 == nil || r.JSON200.Email != "wes@example.org" {
		t.Fatalf("update: %d %s", r.StatusCode(), r.Body)
	}
	e.login("wes", "set by the admin")
	if n := e.auditCount(service.AuditUserChanged, "reauthenticated", "false"); n != 1 {
		t.Errorf("%d user_changed events noting no re-authentication, want 1", n)
	}
	other := e.register("xan")
	if r, _ := e.client.DeleteUserWithResponse(context.Background(), other.Id, bearer(admin)); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("admin delete: %d %s", r.StatusCode(), r.Body)
	}
}

// Wrong current passwords count towards the lockout, exactly as failed logins do.
func TestReauthenticationFailuresCountTowardsTheLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLockout(testLockout)) // locks after 3 failures
	u, pair := e.verifiedUser("lia")
	for i := range testLockout.Threshold {
		r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Password: ptr("lia's new passphrase"), CurrentPassword: ptr("not it")})
		if r.StatusCode() != http.StatusForbidden || problemCode(t, r.Body) != service.CodeReauthenticationRequired {
			t.Fatalf("wrong password %d: %d %s", i+1, r.StatusCode(), r.Body)
		}
	}
	// The account is locked now, for logins and re-authentication alike, even with the right
	// password.
	if got := e.loginSeen("lia", testPassword); got.Status != http.StatusTooManyRequests || got.Code != service.CodeAccountLocked {
		t.Fatalf("login after three wrong current passwords: %+v, want account_locked", got)
	}
	r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Password: ptr("lia's new passphrase"), CurrentPassword: ptr(testPassword)})
	if r.StatusCode() != http.StatusTooManyRequests || problemCode(t, r.Body) != service.CodeAccountLocked || r.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Fatalf("re-authentication while locked: %d %s", r.StatusCode(), r.Body)
	}
	if n := e.auditCount(service.AuditLoginFailed, "reason", "reauthentication_failed"); n != testLockout.Threshold {
		t.Errorf("%d failed re-authentications audited, want %d", n, testLockout.Threshold)
	}
	if n := e.auditCount(service.AuditAccountLocked); n != 1 {
		t.Errorf("%d account_locked events, want 1", n)
	}
}

// Registration, one's own email and password changes and self-deletion are audited, as
// admins' changes are.
func TestSelfServiceChangesAreAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, pair := e.verifiedUser("oli")
	if r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Email: ptr("oli@example.org"), CurrentPassword: ptr(testPassword)}); r.JSON202 == nil {
		t.Fatalf("email change: %d %s", r.StatusCode(), r.Body)
	}
	if r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Password: ptr("oli's new passphrase"), CurrentPassword: ptr(testPassword)}); r.JSON200 == nil {
		t.Fatalf("password change: %d %s", r.StatusCode(), r.Body)
	}
	r, err := e.client.DeleteMyAccountWithResponse(context.Background(), api.AccountDeletion{CurrentPassword: "oli's new passphrase"}, bearer(pair.AccessToken))
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("self-deletion: %v %d %s", err, r.StatusCode(), r.Body)
	}
	for _, want := range []struct{ event, key, value string }{
		{service.AuditUserRegistered, "username", "oli"},
		{service.AuditEmailChangeRequested, "new_email", "oli@example.org"},
		{service.AuditPasswordChanged, "", ""},
		{service.AuditUserDeleted, "deleted_user_id", u.Id.String()},
		{service.AuditMailQueued, "kind", "email_change_confirm"},
		{service.AuditMailQueued, "kind", "password_changed_notice"},
	} {
		var detail []string
		if want.key != "" {
			detail = []string{want.key, want.value}
		}
		if n := e.auditCount(want.event, detail...); n != 1 {
			t.Errorf("%d %s events with %s=%s, want 1", n, want.event, want.key, want.value)
		}
	}
	// No event holds a password or a link's token.
	if n := e.count(`SELECT count(*) FROM audit_events WHERE details::text ILIKE '%passphrase%' OR details::text ILIKE '%token=%'`); n != 0 {
		t.Errorf("%d audit events hold a password or a link", n)
	}
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// withVerification sets the service's verification mode.
func withVerification(v service.Verification) envOption {
	return func(_ *token.Config, d *service.Deps) { d.Verification = v }
}

// The verification modes decide who may log in unverified.
func TestVerificationModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode   service.Verification
		status int
		mails  int
	}{
		{service.VerifyByEmail, http.StatusForbidden, 1},
		{service.VerifyByAdmin, http.StatusForbidden, 0},
		{service.VerifyOff, http.StatusOK, 0},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withVerification(tc.mode))
			e.register("moe")
			if r := e.tryLogin("moe", testPassword); r.StatusCode() != tc.status {
				t.Errorf("an unverified login answers %d, want %d", r.StatusCode(), tc.status)
			}
			if n := e.count(`SELECT count(*) FROM mail_outbox WHERE kind = 'verify_email'`); n != tc.mails {
				t.Errorf("%d verification mails queued, want %d", n, tc.mails)
			}
		})
	}
}

func TestAuditDetailsNeverHoldALink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("pat")
	var text string
	if err := e.pool.QueryRow(context.Background(), `SELECT text_body FROM mail_outbox WHERE recipient = 'pat@example.com'`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	_, tok, _ := strings.Cut(text, "token=")
	tok, _, _ = strings.Cut(tok, "\n")
	if len(tok) < 43 {
		t.Fatalf("the link's token %q is shorter than 256 bits in base64", tok)
	}
	if n := e.count(`SELECT count(*) FROM audit_events WHERE strpos(details::text, $1) > 0`, tok); n != 0 {
		t.Errorf("%d audit events hold the link's token", n)
	}
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, tok); n != 1 {
		t.Errorf("the token is not stored as its SHA-256 (%d rows)", n)
	}
}
