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
)

func TestHealthReportsTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, err := e.client.GetHealthWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if resp.JSON200 == nil || resp.JSON200.Status != api.HealthStatusOk || resp.JSON200.Database != api.HealthDatabaseOk {
		t.Fatalf("health: %d %s", resp.StatusCode(), resp.Body)
	}
	e.pool.Close()
	resp, err = e.client.GetHealthWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if resp.JSON503 == nil || resp.JSON503.Database != api.HealthDatabaseUnreachable {
		t.Fatalf("health with the pool closed: %d %s", resp.StatusCode(), resp.Body)
	}
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.register("Alice")
	if u.Username != "Alice" || u.Email != "alice@example.com" || u.IsVerified || u.IsAdmin || !u.IsActive || u.LastLogin != nil {
		t.Fatalf("new user: %+v", u)
	}

	cases := []struct {
		name, username, email, password string
		code, field                     string
	}{
		{"a username differing only in case is taken", "ALICE", "other@example.com", testPassword, service.CodeUsernameTaken, "username"},
		{"an email differing only in case is taken", "alice2", "ALICE@example.com", testPassword, service.CodeEmailTaken, "email"},
		{"a short username is refused", "al", "al@example.com", testPassword, service.CodeInvalidRequest, "username"},
		{"a username with @ is refused", "al@ice", "al2@example.com", testPassword, service.CodeInvalidRequest, "username"},
		{"a malformed email is refused", "bob", "not-an-email", testPassword, service.CodeInvalidRequest, "email"},
		{"an email with a display name is refused", "bob", "Bob <bob@example.com>", testPassword, service.CodeInvalidRequest, "email"},
		{"a short password is refused", "bob", "bob@example.com", "short", service.CodeInvalidRequest, "password"},
		{"a password over 72 bytes is refused, not truncated", "bob", "bob@example.com", strings.Repeat("é", 37), service.CodeInvalidRequest, "password"},
		{"a password equal to the username is refused", "bobbobbob", "bob@example.com", "BOBBOBBOB", service.CodeInvalidRequest, "password"},
		{"a password equal to the email is refused", "bob", "bob@example.com", "bob@example.com", service.CodeInvalidRequest, "password"},
		{"a very common password is refused", "bob", "bob@example.com", "Password123", service.CodeInvalidRequest, "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.client.CreateUserWithResponse(context.Background(), api.UserCreate{Username: tc.username, Email: tc.email, Password: tc.password})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != http.StatusBadRequest || resp.ApplicationproblemJSON400 == nil {
				t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
			}
			p := resp.ApplicationproblemJSON400
			if string(p.Code) != tc.code {
				t.Fatalf("code %q, want %q", p.Code, tc.code)
			}
			if p.Errors == nil || !slices.ContainsFunc(*p.Errors, func(f api.FieldError) bool { return f.Field == tc.field }) {
				t.Fatalf("no field error for %s: %s", tc.field, resp.Body)
			}
			if strings.Contains(string(resp.Body), tc.password) {
				t.Fatal("the response echoes the password")
			}
		})
	}
}

func TestRegistrationRefusesAdminFlags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.raw("POST", "/api/v1/users", "application/json",
		`{"username":"mallory","email":"m@example.com","password":"`+testPassword+`","is_admin":true}`)
	if resp.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest || !strings.Contains(string(body), "is_admin") {
		t.Fatalf("is_admin at registration: %d %s", resp.StatusCode, body)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Fatalf("users after refused registration: %d %v", n, err)
	}
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, _ := e.verifiedUser("carol")

	t.Run("a JSON login returns a no-store token pair and records the login", func(t *testing.T) {
		resp := e.tryLogin("carol", testPassword)
		if resp.JSON200 == nil {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
		}
		if resp.HTTPResponse.Header.Get("Cache-Control") != "no-store" {
			t.Fatal("token response is cacheable")
		}
		tr := resp.JSON200
		if tr.TokenType != api.Bearer || tr.ExpiresIn != 1800 || tr.AccessToken == "" || tr.RefreshToken == "" {
			t.Fatalf("token response: %+v", tr)
		}
		me, err := e.client.GetCurrentUserWithResponse(context.Background(), bearer(tr.AccessToken))
		if err != nil || me.JSON200 == nil {
			t.Fatalf("me: %v %s", err, me.Body)
		}
		if me.JSON200.Id != u.Id || me.JSON200.LastLogin == nil {
			t.Fatalf("me after login: %+v", me.JSON200)
		}
	})

	t.Run("the email works as the username, in any case", func(t *testing.T) {
		if resp := e.tryLogin("CAROL@example.com", testPassword); resp.JSON200 == nil {
			t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
		}
	})

	t.Run("a form-urlencoded login works", func(t *testing.T) {
		resp, err := e.client.CreateTokenWithFormdataBodyWithResponse(context.Background(), api.TokenRequest{
			GrantType: api.TokenRequestGrantTypePassword, Username: ptr("carol"), Password: ptr(testPassword),
		})
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("form login: %v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})

	t.Run("every login opens its own session with two stored tokens", func(t *testing.T) {
		var sessions, tokens int
		err := e.pool.QueryRow(context.Background(),
			`SELECT (SELECT count(*) FROM sessions WHERE user_id = $1), (SELECT count(*) FROM tokens WHERE user_id = $1)`, u.Id).Scan(&sessions, &tokens)
		if err != nil {
			t.Fatal(err)
		}
		if sessions < 3 || tokens != 2*sessions {
			t.Fatalf("sessions %d tokens %d", sessions, tokens)
		}
	})

	failures := []struct{ name, username, password string }{
		{"an unknown user gets invalid_credentials", "nobody", testPassword},
		{"a wrong password gets invalid_credentials", "carol", "wrong password here"},
		{"an unknown email gets invalid_credentials", "nobody@example.com", testPassword},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.tryLogin(tc.username, tc.password)
			if resp.ApplicationproblemJSON401 == nil || resp.ApplicationproblemJSON401.Code != service.CodeInvalidCredentials {
				t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body)
			}
		})
	}
}

func TestLoginChecksThePasswordBeforeTheAccountState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("dave")
	resp := e.tryLogin("dave", "wrong password here")
	if resp.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("unverified with a wrong password: %d", resp.StatusCode())
	}
	resp = e.tryLogin("dave", testPassword)
	if resp.ApplicationproblemJSON403 == nil || resp.ApplicationproblemJSON403.Code != service.CodeAccountUnverified {
		t.Fatalf("unverified with the right password: %d %s", resp.StatusCode(), resp.Body)
	}
	if _, err := e.pool.Exec(context.Background(), "UPDATE users SET is_verified = true, is_active = false WHERE username = 'dave'"); err != nil {
		t.Fatal(err)
	}
	if resp := e.tryLogin("dave", "wrong password here"); resp.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("inactive with a wrong password: %d", resp.StatusCode())
	}
	resp = e.tryLogin("dave", testPassword)
	if resp.ApplicationproblemJSON403 == nil || resp.ApplicationproblemJSON403.Code != service.CodeAccountInactive {
		t.Fatalf("inactive with the right password: %d %s", resp.StatusCode(), resp.Body)
	}
}

func TestTokenRequestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"an unknown grant type is refused", "application/json", `{"grant_type":"client_credentials"}`, 400, service.CodeInvalidRequest},
		{"a password grant without a password is refused", "application/json", `{"grant_type":"password","username":"x"}`, 400, service.CodeInvalidRequest},
		{"malformed JSON is refused without echoing the parser", "application/json", `{"grant_type":`, 400, service.CodeInvalidRequest},
		{"trailing data after the JSON value is refused", "application/json", `{"grant_type":"password","username":"a","password":"b"} {}`, 400, service.CodeInvalidRequest},
		{"an unknown field is refused", "application/json", `{"grant_type":"password","username":"a","password":"b","scope":"admin"}`, 400, service.CodeInvalidRequest},
		{"a wrong type is refused", "application/json", `{"grant_type":"password","username":1,"password":"b"}`, 400, service.CodeInvalidRequest},
		{"a NUL in a string is refused", "application/json", `{"grant_type":"password","username":"a\u0000b","password":"b"}`, 400, service.CodeInvalidRequest},
		{"text/plain is an unsupported media type", "text/plain", `grant_type=password`, 415, service.CodeUnsupportedMedia},
		{"a body over the cap is too large", "application/json", `{"grant_type":"password","username":"` + strings.Repeat("a", 70_000) + `"}`, 413, service.CodePayloadTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.raw("POST", "/api/v1/auth/token", tc.contentType, tc.body)
			if resp.StatusCode != tc.status || problemCode(t, body) != tc.code {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if strings.Contains(string(body), "unexpected") || strings.Contains(string(body), "json:") {
				t.Fatalf("the problem leaks decoder text: %s", body)
			}
		})
	}
}

func TestBearerAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, tokens := e.verifiedUser("erin")
	cases := []struct {
		name   string
		header string
	}{
		{"no Authorization header", ""},
		{"a non-bearer scheme", "Basic ZXJpbjpwYXNz"},
		{"a garbage token", "Bearer not.a.token"},
		{"the refresh token as a bearer", "Bearer " + tokens.RefreshToken},
	}
	for _, tc := range cases {
		t.Run(tc.name+" gets 401 with WWW-Authenticate", func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			resp, body := e.raw("GET", "/api/v1/users/me", "", "", hdr...)
			if resp.StatusCode != http.StatusUnauthorized || problemCode(t, body) != service.CodeInvalidToken {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatal("no WWW-Authenticate: Bearer")
			}
		})
	}
	t.Run("a token whose jti was invalidated gets 401", func(t *testing.T) {
		if _, err := e.pool.Exec(context.Background(), "UPDATE tokens SET invalidated_at = now()"); err != nil {
			t.Fatal(err)
		}
		resp, err := e.client.GetCurrentUserWithResponse(context.Background(), bearer(tokens.AccessToken))
		if err != nil || resp.StatusCode() != http.StatusUnauthorized {
			t.Fatalf("revoked token: %v %d", err, resp.StatusCode())
		}
	})
}

func TestVerifyUserIsForAdminsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, tokens := e.verifiedUser("frank")
	target := e.register("grace")
	resp, err := e.client.VerifyUserWithResponse(context.Background(), target.Id, bearer(tokens.AccessToken))
	if err != nil || resp.ApplicationproblemJSON403 == nil || resp.ApplicationproblemJSON403.Code != service.CodeForbidden {
		t.Fatalf("non-admin verify: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	resp, err = e.client.VerifyUserWithResponse(context.Background(), uuid.New(), bearer(e.admin()))
	if err != nil || resp.ApplicationproblemJSON404 == nil {
		t.Fatalf("verify of an unknown id: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	raw, body := e.raw("PUT", "/api/v1/users/not-a-uuid/verify", "", "", "Authorization", "Bearer "+e.admin())
	if raw.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
		t.Fatalf("malformed id: %d %s", raw.StatusCode, body)
	}
}

func TestUnroutedRequestsAreProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.raw("GET", "/api/v1/nothing-here", "", "")
	if resp.StatusCode != http.StatusNotFound || problemCode(t, body) != service.CodeNotFound {
		t.Fatalf("unknown route: %d %s", resp.StatusCode, body)
	}
	resp, body = e.raw("DELETE", "/api/v1/auth/token", "", "")
	if resp.StatusCode != http.StatusMethodNotAllowed || problemCode(t, body) != service.CodeMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("wrong method: %d %s allow=%q", resp.StatusCode, body, resp.Header.Get("Allow"))
	}
	resp, _ = e.raw("TRACE", "/api/v1/users/me", "", "")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("TRACE: %d", resp.StatusCode)
	}
}

func TestEveryErrorCodeIsInTheContract(t *testing.T) {
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, v := range spec.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	slices.Sort(enum)
	codes := slices.Clone(service.Codes)
	slices.Sort(codes)
	if !slices.Equal(enum, codes) {
		t.Fatalf("openapi.yaml ErrorCode %v != service codes %v", enum, codes)
	}
}

func ptr[T any](v T) *T { return &v }
