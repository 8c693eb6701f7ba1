package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

func TestListUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	for i := range 5 {
		e.register(fmt.Sprintf("user%d", i))
	}
	list := func(t *testing.T, params *api.ListUsersParams, tok string) *api.ListUsersResponse {
		t.Helper()
		resp, err := e.client.ListUsersWithResponse(context.Background(), params, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("an admin sees every user, newest first", func(t *testing.T) {
		resp := list(t, nil, admin)
		if resp.JSON200 == nil || len(*resp.JSON200) != 6 {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
		}
		got := *resp.JSON200
		for i := 1; i < len(got); i++ {
			if got[i].CreatedAt.After(got[i-1].CreatedAt) {
				t.Fatalf("not newest first: %v before %v", got[i-1].CreatedAt, got[i].CreatedAt)
			}
		}
		if got[0].Username != "user4" {
			t.Fatalf("newest user is %s", got[0].Username)
		}
	})

	t.Run("skip and limit page through the list", func(t *testing.T) {
		first := list(t, &api.ListUsersParams{Limit: ptr(2)}, admin)
		second := list(t, &api.ListUsersParams{Skip: ptr(2), Limit: ptr(2)}, admin)
		if first.JSON200 == nil || second.JSON200 == nil || len(*first.JSON200) != 2 || len(*second.JSON200) != 2 {
			t.Fatalf("pages: %s / %s", first.Body, second.Body)
		}
		if (*first.JSON200)[0].Username != "user4" || (*second.JSON200)[0].Username != "user2" {
			t.Fatalf("pages start at %s and %s", (*first.JSON200)[0].Username, (*second.JSON200)[0].Username)
		}
		beyond := list(t, &api.ListUsersParams{Skip: ptr(100)}, admin)
		if beyond.JSON200 == nil || len(*beyond.JSON200) != 0 {
			t.Fatalf("skip past the end: %s", beyond.Body)
		}
	})

	bounds := []struct {
		name  string
		query string
	}{
		{"a limit of 0 is refused", "limit=0"},
		{"a limit of 101 is refused", "limit=101"},
		{"a negative skip is refused", "skip=-1"},
		{"a non-numeric limit is refused", "limit=ten"},
	}
	for _, tc := range bounds {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.raw("GET", "/api/v1/users?"+tc.query, "", "", "Authorization", "Bearer "+admin)
			if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		})
	}

	t.Run("limits of 1 and 100 are accepted", func(t *testing.T) {
		if r := list(t, &api.ListUsersParams{Limit: ptr(1)}, admin); r.JSON200 == nil || len(*r.JSON200) != 1 {
			t.Fatalf("limit 1: %s", r.Body)
		}
		if r := list(t, &api.ListUsersParams{Limit: ptr(100)}, admin); r.JSON200 == nil || len(*r.JSON200) != 6 {
			t.Fatalf("limit 100: %s", r.Body)
		}
	})

	t.Run("a non-admin gets 403 and no token gets 401", func(t *testing.T) {
		_, tok := e.verifiedUser("plain")
		if r := list(t, nil, tok.AccessToken); r.StatusCode() != http.StatusForbidden {
			t.Fatalf("non-admin: %d", r.StatusCode())
		}
		resp, err := e.client.ListUsersWithResponse(context.Background(), nil)
		if err != nil || resp.StatusCode() != http.StatusUnauthorized {
			t.Fatalf("anonymous: %v %d", err, resp.StatusCode())
		}
	})
}

func TestUsersCannotReachOtherUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mallory, malloryTok := e.verifiedUser("mallory")
	victim, _ := e.verifiedUser("victim")
	tok := malloryTok.AccessToken
	ctx := context.Background()

	t.Run("reading another user answers 404, like an unknown id", func(t *testing.T) {
		other, _ := e.client.GetUserWithResponse(ctx, victim.Id, bearer(tok))
		unknown, _ := e.client.GetUserWithResponse(ctx, uuid.New(), bearer(tok))
		if other.StatusCode() != http.StatusNotFound || unknown.StatusCode() != http.StatusNotFound {
			t.Fatalf("other %d, unknown %d", other.StatusCode(), unknown.StatusCode())
		}
		if string(other.Body) != string(unknown.Body) {
			t.Fatalf("the two 404s differ:\n%s\n%s", other.Body, unknown.Body)
		}
	})
	t.Run("updating another user answers 404 and changes nothing", func(t *testing.T) {
		resp, _ := e.client.UpdateUserWithResponse(ctx, victim.Id, api.UserUpdate{Email: ptr("owned@example.com")}, bearer(tok))
		if resp.StatusCode() != http.StatusNotFound {
			t.Fatalf("status %d", resp.StatusCode())
		}
		var email string
		_ = e.pool.QueryRow(ctx, "SELECT email FROM users WHERE id = $1", victim.Id).Scan(&email)
		if email != "victim@example.com" {
			t.Fatalf("victim's email is now %s", email)
		}
	})
	t.Run("deleting another user answers 404 and deletes nothing", func(t *testing.T) {
		resp, _ := e.client.DeleteUserWithResponse(ctx, victim.Id, bearer(tok))
		if resp.StatusCode() != http.StatusNotFound {
			t.Fatalf("status %d", resp.StatusCode())
		}
		if got, _ := e.client.GetUserWithResponse(ctx, victim.Id, bearer(e.admin())); got.JSON200 == nil {
			t.Fatal("the victim is gone")
		}
	})
	t.Run("a user reads itself by id", func(t *testing.T) {
		resp, _ := e.client.GetUserWithResponse(ctx, mallory.Id, bearer(tok))
		if resp.JSON200 == nil || resp.JSON200.Id != mallory.Id {
			t.Fatalf("self read: %d %s", resp.StatusCode(), resp.Body)
		}
	})
	t.Run("an admin reads anyone", func(t *testing.T) {
		resp, _ := e.client.GetUserWithResponse(ctx, victim.Id, bearer(e.admin()))
		if resp.JSON200 == nil || resp.JSON200.Username != "victim" {
			t.Fatalf("admin read: %d %s", resp.StatusCode(), resp.Body)
		}
	})
	t.Run("a malformed id answers 400", func(t *testing.T) {
		resp, body := e.raw("GET", "/api/v1/users/12345", "", "", "Authorization", "Bearer "+tok)
		if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}

func TestMassAssignmentIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	self, tok := e.verifiedUser("eve")
	ctx := context.Background()
	cases := []struct {
		name   string
		update api.UserUpdate
	}{
		{"self-promotion to admin", api.UserUpdate{IsAdmin: ptr(true)}},
		{"self-reactivation", api.UserUpdate{IsActive: ptr(true)}},
		{"self-verification", api.UserUpdate{IsVerified: ptr(true)}},
		{"a flag smuggled beside an allowed field", api.UserUpdate{Email: ptr("eve2@example.com"), IsAdmin: ptr(true)}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" answers 403 and changes nothing", func(t *testing.T) {
			resp, err := e.client.UpdateUserWithResponse(ctx, self.Id, tc.update, bearer(tok.AccessToken))
			if err != nil || resp.ApplicationproblemJSON403 == nil || resp.ApplicationproblemJSON403.Code != service.CodeForbidden {
				t.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body)
			}
			var admin bool
			var email string
			_ = e.pool.QueryRow(ctx, "SELECT is_admin, email FROM users WHERE id = $1", self.Id).Scan(&admin, &email)
			if admin || email != "eve@example.com" {
				t.Fatalf("after the refused update: admin=%v email=%s", admin, email)
			}
		})
	}
	t.Run("unknown fields such as password_hash are refused", func(t *testing.T) {
		resp, body := e.raw("PUT", "/api/v1/users/"+self.Id.String(), "application/json",
			`{"password_hash":"$2a$04$abcdefghijklmnopqrstuv"}`, "Authorization", "Bearer "+tok.AccessToken)
		if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("an empty update is refused", func(t *testing.T) {
		resp, body := e.raw("PUT", "/api/v1/users/"+self.Id.String(), "application/json", `{}`, "Authorization", "Bearer "+tok.AccessToken)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}

func TestUpdateUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	self, tok := e.verifiedUser("henry")
	e.register("taken")
	ctx := context.Background()
	update := func(t *testing.T, u api.UserUpdate) *api.UpdateUserResponse {
		t.Helper()
		resp, err := e.client.UpdateUserWithResponse(ctx, self.Id, u, bearer(tok.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	invalid := []struct {
		name   string
		update api.UserUpdate
		code   string
		field  string
	}{
		{"a taken username, in another case", api.UserUpdate{Username: ptr("TAKEN")}, service.CodeUsernameTaken, "username"},
		{"a taken email, in another case", api.UserUpdate{Email: ptr("Taken@Example.com"), CurrentPassword: ptr(testPassword)}, service.CodeEmailTaken, "email"},
		{"a username with a space", api.UserUpdate{Username: ptr("hen ry")}, service.CodeInvalidRequest, "username"},
		{"a username with a control character", api.UserUpdate{Username: ptr("hen\u0007ry")}, service.CodeInvalidRequest, "username"},
		{"an email over 254 bytes", api.UserUpdate{Email: ptr(strings.Repeat("a", 250) + "@example.com")}, service.CodeInvalidRequest, "email"},
		{"a password equal to the username", api.UserUpdate{Password: ptr("HENRYHENRY"), Username: ptr("henryhenry")}, service.CodeInvalidRequest, "password"},
		{"a common password", api.UserUpdate{Password: ptr("qwertyuiop")}, service.CodeInvalidRequest, "password"},
		{"a 73-byte password", api.UserUpdate{Password: ptr(strings.Repeat("x", 73))}, service.CodeInvalidRequest, "password"},
	}
	for _, tc := range invalid {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			resp := update(t, tc.update)
			p := resp.ApplicationproblemJSON400
			if p == nil || string(p.Code) != tc.code || p.Errors == nil ||
				!slices.ContainsFunc(*p.Errors, func(f api.FieldError) bool { return f.Field == tc.field }) {
				t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
			}
		})
	}
	t.Run("a username changes at once, an email waits for its link, stored lower-cased", func(t *testing.T) {
		resp := update(t, api.UserUpdate{Username: ptr("henry2"), Email: ptr("Henry2@Example.COM"), CurrentPassword: ptr(testPassword)})
		if resp.JSON202 == nil || resp.JSON202.Username != "henry2" || resp.JSON202.Email != "henry@example.com" {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
		}
		if !resp.JSON202.UpdatedAt.After(self.UpdatedAt) {
			t.Fatal("updated_at did not move")
		}
		if n := e.count(`SELECT count(*) FROM account_tokens WHERE user_id = $1 AND purpose = 'email_change' AND email = 'henry2@example.com'`, self.Id); n != 1 {
			t.Fatalf("%d email change links for the new, lower-cased address, want 1", n)
		}
		// A profile change does not log the user out.
		if me, _ := e.client.GetCurrentUserWithResponse(ctx, bearer(tok.AccessToken)); me.JSON200 == nil {
			t.Fatalf("token dead after a profile change: %d", me.StatusCode())
		}
	})
	t.Run("a new password is re-hashed and works", func(t *testing.T) {
		resp := update(t, api.UserUpdate{Password: ptr("a brand new passphrase"), CurrentPassword: ptr(testPassword)})
		if resp.JSON200 == nil {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
		}
		if r := e.tryLogin("henry2", testPassword); r.StatusCode() != http.StatusUnauthorized {
			t.Fatalf("old password still works: %d", r.StatusCode())
		}
		e.login("henry2", "a brand new passphrase")
	})
}

func TestChangesThatInvalidateTokens(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		byUser bool
		update api.UserUpdate
	}{
		{"a password change by an admin", false, api.UserUpdate{Password: ptr("another good passphrase")}},
		{"deactivation by an admin", false, api.UserUpdate{IsActive: ptr(false)}},
		{"promotion to admin", false, api.UserUpdate{IsAdmin: ptr(true)}},
		{"un-verification by an admin", false, api.UserUpdate{IsVerified: ptr(false)}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" kills every existing token", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			u, first := e.verifiedUser("ivy")
			second := e.login("ivy", testPassword)
			resp, err := e.client.UpdateUserWithResponse(context.Background(), u.Id, tc.update, bearer(e.admin()))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("update: %v %d %s", err, resp.StatusCode(), resp.Body)
			}
			for i, old := range []string{first.AccessToken, second.AccessToken} {
				me, _ := e.client.GetCurrentUserWithResponse(context.Background(), bearer(old))
				if me.StatusCode() != http.StatusUnauthorized {
					t.Fatalf("old access token %d still works: %d", i, me.StatusCode())
				}
			}
			var live int
			_ = e.pool.QueryRow(context.Background(), "SELECT count(*) FROM tokens WHERE user_id = $1 AND invalidated_at IS NULL", u.Id).Scan(&live)
			if live != 0 {
				t.Fatalf("%d tokens, refresh included, are still live", live)
			}
		})
	}
	t.Run("verification alone keeps tokens alive", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		u, tok := e.verifiedUser("jack")
		resp, _ := e.client.UpdateUserWithResponse(context.Background(), u.Id, api.UserUpdate{IsVerified: ptr(true)}, bearer(e.admin()))
		if resp.JSON200 == nil {
			t.Fatalf("update: %d %s", resp.StatusCode(), resp.Body)
		}
		if me, _ := e.client.GetCurrentUserWithResponse(context.Background(), bearer(tok.AccessToken)); me.JSON200 == nil {
			t.Fatalf("token died: %d", me.StatusCode())
		}
	})
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, tok := e.verifiedUser("kim")
	ctx := context.Background()
	resp, err := e.client.DeleteMyAccountWithResponse(ctx, api.AccountDeletion{CurrentPassword: testPassword}, bearer(tok.AccessToken))
	if err != nil || resp.StatusCode() != http.StatusNoContent {
		t.Fatalf("self delete: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	var sessions, tokens int
	_ = e.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM sessions WHERE user_id = $1), (SELECT count(*) FROM tokens WHERE user_id = $1)", u.Id).Scan(&sessions, &tokens)
	if sessions != 0 || tokens != 0 {
		t.Fatalf("left behind: %d sessions, %d tokens", sessions, tokens)
	}
	if me, _ := e.client.GetCurrentUserWithResponse(ctx, bearer(tok.AccessToken)); me.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("deleted user's token: %d", me.StatusCode())
	}
	other := e.register("lee")
	if r, _ := e.client.DeleteUserWithResponse(ctx, other.Id, bearer(e.admin())); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("admin delete: %d", r.StatusCode())
	}
	if r, _ := e.client.DeleteUserWithResponse(ctx, other.Id, bearer(e.admin())); r.StatusCode() != http.StatusNotFound {
		t.Fatalf("second delete: %d", r.StatusCode())
	}
}

func TestTheLastAdminIsProtected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rootTok := e.admin()
	var rootID uuid.UUID
	_ = e.pool.QueryRow(ctx, "SELECT id FROM users WHERE username = 'root'").Scan(&rootID)

	refusals := []struct {
		name string
		do   func() (int, []byte)
	}{
		{"demoting the last admin", func() (int, []byte) {
			r, _ := e.client.UpdateUserWithResponse(ctx, rootID, api.UserUpdate{IsAdmin: ptr(false)}, bearer(rootTok))
			return r.StatusCode(), r.Body
		}},
		{"deactivating the last admin", func() (int, []byte) {
			r, _ := e.client.UpdateUserWithResponse(ctx, rootID, api.UserUpdate{IsActive: ptr(false)}, bearer(rootTok))
			return r.StatusCode(), r.Body
		}},
		{"deleting the last admin", func() (int, []byte) {
			r, _ := e.client.DeleteMyAccountWithResponse(ctx, api.AccountDeletion{CurrentPassword: testPassword}, bearer(rootTok))
			return r.StatusCode(), r.Body
		}},
	}
	for _, tc := range refusals {
		t.Run(tc.name+" answers last_admin", func(t *testing.T) {
			status, body := tc.do()
			if status != http.StatusBadRequest || problemCode(t, body) != service.CodeLastAdmin {
				t.Fatalf("status %d: %s", status, body)
			}
		})
	}

	// With a second admin, each of two admins demoting the other at the same time must
	// leave one admin: the admin rows are locked while the guard counts them.
	second, _ := e.verifiedUser("deputy")
	if r, _ := e.client.UpdateUserWithResponse(ctx, second.Id, api.UserUpdate{IsAdmin: ptr(true)}, bearer(rootTok)); r.JSON200 == nil {
		t.Fatalf("promote deputy: %s", r.Body)
	}
	rootTok = e.login("root", testPassword).AccessToken
	deputyTok := e.login("deputy", testPassword).AccessToken
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, pair := range [][2]any{{rootTok, second.Id}, {deputyTok, rootID}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.client.UpdateUserWithResponse(ctx, pair[1].(uuid.UUID), api.UserUpdate{IsAdmin: ptr(false)}, bearer(pair[0].(string)))
			if err == nil {
				statuses[i] = r.StatusCode()
			}
		}()
	}
	wg.Wait()
	var admins int
	_ = e.pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE is_admin AND is_active").Scan(&admins)
	slices.Sort(statuses)
	// The loser sees last_admin, or 401 when the winner's demotion already killed its token.
	if admins != 1 || statuses[0] != http.StatusOK || (statuses[1] != http.StatusBadRequest && statuses[1] != http.StatusUnauthorized) {
		t.Fatalf("after concurrent demotions (statuses %v) %d admins remain", statuses, admins)
	}
}

func TestRegistrationBodiesAreStrict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := `"email":"x@example.com","password":"` + testPassword + `"`
	cases := []struct{ name, body string }{
		{"invalid UTF-8 is refused", "{\"username\":\"bad\xff\xfe\"," + valid + "}"},
		{"a NUL character is refused", `{"username":"nul\u0000name",` + valid + `}`},
		{"an escape character is refused", `{"username":"esc\u001bname",` + valid + `}`},
		{"a control character in the password is refused", `{"username":"ctrl","email":"x@example.com","password":"pass\u0008word-long"}`},
		{"an unknown field is refused", `{"username":"extra",` + valid + `,"role":"admin"}`},
		{"a wrong type is refused", `{"username":42,` + valid + `}`},
		{"trailing data is refused", `{"username":"trail",` + valid + `}{"username":"second"}`},
		{"a missing field is refused", `{"username":"missing","email":"x@example.com"}`},
		{"an array instead of an object is refused", `[{"username":"arr",` + valid + `}]`},
		{"a field name in another case is refused", `{"Username":"case",` + valid + `}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.raw("POST", "/api/v1/users", "application/json", tc.body)
			if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		})
	}
	var n int
	_ = e.pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n)
	if n != 0 {
		t.Fatalf("%d users were created from refused bodies", n)
	}
}

func TestAdminChangesAreAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u := e.register("nina")
	admin := e.admin()
	if r, _ := e.client.UpdateUserWithResponse(ctx, u.Id, api.UserUpdate{IsAdmin: ptr(true), Password: ptr("nina's new passphrase")}, bearer(admin)); r.JSON200 == nil {
		t.Fatalf("update: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := e.client.DeleteUserWithResponse(ctx, u.Id, bearer(admin)); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode())
	}
	rows, err := e.pool.Query(ctx, "SELECT details::text FROM audit_events WHERE event_type = 'user_changed' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for rows.Next() {
		var d string
		_ = rows.Scan(&d)
		details = append(details, d)
	}
	if len(details) != 2 {
		t.Fatalf("audit events: %v", details)
	}
	if !strings.Contains(details[0], `"is_admin": true`) || !strings.Contains(details[0], `"password": "changed"`) || strings.Contains(details[0], "passphrase") {
		t.Fatalf("update event: %s", details[0])
	}
	if !strings.Contains(details[1], u.Id.String()) {
		t.Fatalf("delete event: %s", details[1])
	}
}
