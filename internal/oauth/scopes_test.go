package oauth

import (
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want []string // nil: invalid_scope
	}{
		{"an empty scope is no scope", "", []string{}},
		{"tokens keep their order", "profile openid", []string{"profile", "openid"}},
		{"repeats are dropped", "openid openid email", []string{"openid", "email"}},
		{"extra spaces are tolerated", "  openid   email ", []string{"openid", "email"}},
		{"every allowed character is a token", "a!#[]~z", []string{"a!#[]~z"}},
		{"a tab is not a separator", "openid\temail", nil},
		{"a double quote is refused", `open"id`, nil},
		{"a backslash is refused", `open\id`, nil},
		{"a non-ASCII character is refused", "prófile", nil},
		{"a token of 65 characters is refused", strings.Repeat("s", 65), nil},
		{"51 scopes are too many", manyScopes(51), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScope(tc.raw)
			if tc.want == nil {
				wantCode(t, err, CodeInvalidScope)
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseScope(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
		})
	}
}

func manyScopes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("s")
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(" ")
	}
	return b.String()
}

func TestClientScopeRequests(t *testing.T) {
	t.Parallel()
	c := Client{Scopes: []string{"email", "openid", "profile"}}
	tests := []struct {
		name string
		raw  string
		want []string // nil: invalid_scope
	}{
		{"a client may request its allowed scopes", "openid email", []string{"openid", "email"}},
		{"a client may request none", "", []string{}},
		{"a scope not allowed to the client is invalid_scope", "openid offline_access", nil},
		{"an unknown scope is invalid_scope", "openid calendar", nil},
		{"a malformed scope is invalid_scope", "openid\x00", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.CheckScopes(tc.raw)
			if tc.want == nil {
				e := wantCode(t, err, CodeInvalidScope)
				if strings.Contains(e.Description, "calendar") || strings.Contains(e.Description, "offline") {
					t.Errorf("description %q echoes the request", e.Description)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("CheckScopes(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
		})
	}

	t.Run("a refresh may narrow the granted scopes but not widen them", func(t *testing.T) {
		granted := []string{"openid", "profile"}
		if got, err := NarrowScopes(granted, ""); err != nil || !slices.Equal(got, granted) {
			t.Errorf("no scope: %v, %v; want the grant", got, err)
		}
		if got, err := NarrowScopes(granted, "profile"); err != nil || !slices.Equal(got, []string{"profile"}) {
			t.Errorf("a subset: %v, %v", got, err)
		}
		_, err := NarrowScopes(granted, "profile email")
		wantCode(t, err, CodeInvalidScope)
	})
}

func TestScopeRegistry(t *testing.T) {
	t.Parallel()

	t.Run("the built-in scopes are there from the migration", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		scopes, err := e.svc.ListScopes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range scopes {
			if !s.BuiltIn || s.Description == "" {
				t.Errorf("scope %+v, want built in and described", s)
			}
			names = append(names, s.Name)
		}
		if want := []string{"email", "offline_access", "openid", "profile"}; !slices.Equal(names, want) {
			t.Fatalf("scopes %v, want %v", names, want)
		}
	})

	t.Run("an admin creates a scope, clients may then be allowed it, and it is listed after the built-in ones", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		sc, err := e.svc.CreateScope(ctx, e.admin, "calendar:read", "Read your calendar")
		if err != nil {
			t.Fatal(err)
		}
		if sc.BuiltIn || !sc.CreatedAt.Equal(e.clock.Now()) {
			t.Errorf("created %+v", sc)
		}
		scopes, _ := e.svc.ListScopes(ctx)
		if len(scopes) != 5 || scopes[4].Name != "calendar:read" {
			t.Errorf("listed %+v, want the new scope last", scopes)
		}
		in := webApp()
		in.Scopes = []string{"calendar:read"}
		if _, _, err := e.svc.CreateClient(ctx, e.admin, in); err != nil {
			t.Fatalf("allowing the new scope: %v", err)
		}
		_, err = e.svc.CreateScope(ctx, e.admin, "calendar:read", "again")
		wantCode(t, err, CodeScopeExists)
		if got := e.auditEvents(AuditScopeCreated); len(got) != 1 || got[0].Details["scope"] != "calendar:read" {
			t.Errorf("audit %+v", got)
		}
	})

	t.Run("a malformed scope name or description is refused", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		for _, name := range []string{"", "two words", `quo"te`, strings.Repeat("x", 65), "é"} {
			_, err := e.svc.CreateScope(ctx, e.admin, name, "")
			wantCode(t, err, CodeInvalidRequest)
		}
		_, err := e.svc.CreateScope(ctx, e.admin, "ok", "line\nbreak")
		wantCode(t, err, CodeInvalidRequest)
		_, err = e.svc.CreateScope(ctx, e.admin, "ok", strings.Repeat("d", 201))
		wantCode(t, err, CodeInvalidRequest)
	})

	t.Run("a built-in scope cannot be deleted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		wantCode(t, e.svc.DeleteScope(ctx, e.admin, "openid"), CodeScopeBuiltIn)
		wantCode(t, e.svc.DeleteScope(ctx, e.admin, "nope"), CodeNotFound)
	})

	t.Run("a scope allowed to a client cannot be deleted until the client lets it go", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		if _, err := e.svc.CreateScope(ctx, e.admin, "files", "Your files"); err != nil {
			t.Fatal(err)
		}
		in := webApp()
		in.Scopes = append(in.Scopes, "files")
		c, _ := e.client(in)
		wantCode(t, e.svc.DeleteScope(ctx, e.admin, "files"), CodeScopeInUse)

		user := e.user("alice")
		if _, err := e.svc.GrantConsent(ctx, user, c.ID, []string{"openid", "files"}); err != nil {
			t.Fatal(err)
		}
		fewer := []string{"openid"}
		if _, err := e.svc.UpdateClient(ctx, e.admin, c.ID, ClientUpdate{Scopes: &fewer}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteScope(ctx, e.admin, "files"); err != nil {
			t.Fatalf("deleting an unused scope: %v", err)
		}
		consent, err := e.svc.GetConsent(ctx, user, c.ID)
		if err != nil || !slices.Equal(consent.Scopes, []string{"openid"}) {
			t.Fatalf("consent %v, %v; the deleted scope must leave it", consent.Scopes, err)
		}
		if got := e.auditEvents(AuditScopeDeleted); len(got) != 1 || got[0].Details["scope"] != "files" {
			t.Errorf("audit %+v", got)
		}
	})
}
