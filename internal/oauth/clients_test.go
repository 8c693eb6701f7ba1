package oauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCreateClient(t *testing.T) {
	t.Parallel()

	t.Run("a confidential client gets a 256-bit secret, stored only as its SHA-256 digest", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, secret := e.client(webApp())
		if len(secret) != 43 {
			t.Fatalf("secret %d characters, want 43 (256 bits of base64url)", len(secret))
		}
		if len(c.ID) != 22 {
			t.Errorf("client id %q, want 22 characters (128 random bits)", c.ID)
		}
		var stored []byte
		if err := e.pool.QueryRow(ctx, `SELECT secret_hash FROM oauth_clients WHERE client_id = $1`, c.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(secret))
		if !bytes.Equal(stored, sum[:]) {
			t.Errorf("stored %x, want SHA-256 of the secret", stored)
		}
		if c.TokenEndpointAuthMethod != AuthClientSecretBasic {
			t.Errorf("auth method %s, want the confidential default client_secret_basic", c.TokenEndpointAuthMethod)
		}
		if want := []string{"email", "offline_access", "openid", "profile"}; !slices.Equal(c.Scopes, want) {
			t.Errorf("scopes %v, want %v", c.Scopes, want)
		}
		if !c.CreatedAt.Equal(e.clock.Now()) || c.SecretRotatedAt != nil {
			t.Errorf("created %v rotated %v, want the clock's time and never rotated", c.CreatedAt, c.SecretRotatedAt)
		}
		got, err := e.svc.GetClient(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Web app" || got.Type != ClientConfidential || !slices.Equal(got.Scopes, c.Scopes) ||
			!slices.Equal(got.RedirectURIs, c.RedirectURIs) || !slices.Equal(got.GrantTypes, c.GrantTypes) {
			t.Errorf("GetClient = %+v, want what CreateClient returned, %+v", got, c)
		}
		events := e.auditEvents(AuditClientCreated)
		if len(events) != 1 || events[0].Details["client_id"] != c.ID || events[0].Details["actor_id"] != e.admin.UserID.String() ||
			events[0].UserID != nil || *events[0].IP != e.admin.IP {
			t.Errorf("audit events %+v, want one naming the client and the admin", events)
		}
		e.noSecretIn(secret)
	})

	t.Run("a public client has no secret and authenticates with none", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, secret := e.client(nativeApp())
		if secret != "" || c.TokenEndpointAuthMethod != AuthNone {
			t.Fatalf("secret %q, method %s; want none", secret, c.TokenEndpointAuthMethod)
		}
		var isNull bool
		if err := e.pool.QueryRow(ctx, `SELECT secret_hash IS NULL FROM oauth_clients WHERE client_id = $1`, c.ID).Scan(&isNull); err != nil || !isNull {
			t.Fatalf("secret_hash stored for a public client (null %v, err %v)", isNull, err)
		}
	})

	t.Run("with a pepper the digest is HMAC-SHA-256, and the secret works only with that pepper", func(t *testing.T) {
		t.Parallel()
		pepper := []byte("a pepper of the server, kept outside the database")
		e := newEnv(t, func(o *Options) { o.SecretPepper = pepper })
		c, secret := e.client(webApp())
		var stored []byte
		if err := e.pool.QueryRow(ctx, `SELECT secret_hash FROM oauth_clients WHERE client_id = $1`, c.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, pepper)
		m.Write([]byte(secret))
		if !bytes.Equal(stored, m.Sum(nil)) {
			t.Errorf("stored %x, want HMAC-SHA-256 of the secret under the pepper", stored)
		}
		cred := ClientCredentials{HasBasic: true, BasicUser: c.ID, BasicPassword: secret}
		if _, err := e.svc.AuthenticateClient(ctx, cred); err != nil {
			t.Fatalf("authenticating with the pepper: %v", err)
		}
		unpeppered, err := New(Options{DB: e.pool})
		if err != nil {
			t.Fatal(err)
		}
		_, err = unpeppered.AuthenticateClient(ctx, cred)
		wantCode(t, err, CodeInvalidClient)
	})
}

func TestClientRegistrationRefusesBadMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name  string
		edit  func(*NewClient)
		code  ErrorCode
		field string
	}{
		{"an empty name", func(c *NewClient) { c.Name = "" }, CodeInvalidClientMetadata, "name"},
		{"a blank name", func(c *NewClient) { c.Name = "   " }, CodeInvalidClientMetadata, "name"},
		{"a name with a control character", func(c *NewClient) { c.Name = "Web\x00app" }, CodeInvalidClientMetadata, "name"},
		{"a name that is not UTF-8", func(c *NewClient) { c.Name = "Web \xff app" }, CodeInvalidClientMetadata, "name"},
		{"a name of 101 characters", func(c *NewClient) { c.Name = strings.Repeat("é", 101) }, CodeInvalidClientMetadata, "name"},
		{"an unknown client type", func(c *NewClient) { c.Type = "spa" }, CodeInvalidClientMetadata, "type"},
		{"a public client with client_secret_basic", func(c *NewClient) {
			*c = nativeApp()
			c.TokenEndpointAuthMethod = AuthClientSecretBasic
		}, CodeInvalidClientMetadata, "token_endpoint_auth_method"},
		{"a confidential client with auth method none", func(c *NewClient) { c.TokenEndpointAuthMethod = AuthNone }, CodeInvalidClientMetadata, "token_endpoint_auth_method"},
		{"an auth method Authly does not support", func(c *NewClient) { c.TokenEndpointAuthMethod = "private_key_jwt" }, CodeInvalidClientMetadata, "token_endpoint_auth_method"},
		{"no grant type", func(c *NewClient) { c.GrantTypes = nil }, CodeInvalidClientMetadata, "grant_types"},
		{"the implicit grant", func(c *NewClient) { c.GrantTypes = []GrantType{"implicit"} }, CodeInvalidClientMetadata, "grant_types"},
		{"a public client with client_credentials", func(c *NewClient) {
			*c = nativeApp()
			c.GrantTypes = append(c.GrantTypes, GrantClientCredentials)
		}, CodeInvalidClientMetadata, "grant_types"},
		{"a public client with the password grant", func(c *NewClient) {
			*c = nativeApp()
			c.GrantTypes = append(c.GrantTypes, GrantPassword)
		}, CodeInvalidClientMetadata, "grant_types"},
		{"refresh_token without a grant that issues refresh tokens", func(c *NewClient) {
			c.GrantTypes = []GrantType{GrantClientCredentials, GrantRefreshToken}
			c.Scopes = []string{"openid"}
		}, CodeInvalidClientMetadata, "grant_types"},
		{"authorization_code without a redirect URI", func(c *NewClient) { c.RedirectURIs = nil }, CodeInvalidRedirectURI, "redirect_uris"},
		{"a redirect URI with a fragment", func(c *NewClient) { c.RedirectURIs = []string{"https://app.example.com/cb#x"} }, CodeInvalidRedirectURI, "redirect_uris"},
		{"a redirect URI over http to another host", func(c *NewClient) { c.RedirectURIs = []string{"http://app.example.com/cb"} }, CodeInvalidRedirectURI, "redirect_uris"},
		{"a relative redirect URI", func(c *NewClient) { c.RedirectURIs = []string{"/callback"} }, CodeInvalidRedirectURI, "redirect_uris"},
		{"a private-use scheme for a confidential client", func(c *NewClient) { c.RedirectURIs = []string{"com.example.app:/cb"} }, CodeInvalidRedirectURI, "redirect_uris"},
		{"a post-logout redirect URI with a fragment", func(c *NewClient) {
			c.PostLogoutRedirectURIs = []string{"https://app.example.com/bye#now"}
		}, CodeInvalidRedirectURI, "post_logout_redirect_uris"},
		{"21 redirect URIs", func(c *NewClient) {
			c.RedirectURIs = nil
			for i := range 21 {
				c.RedirectURIs = append(c.RedirectURIs, "https://app.example.com/cb"+strings.Repeat("x", i))
			}
		}, CodeInvalidRedirectURI, "redirect_uris"},
		{"a scope that is not registered", func(c *NewClient) { c.Scopes = []string{"openid", "calendar"} }, CodeInvalidClientMetadata, "scopes"},
		{"a malformed scope", func(c *NewClient) { c.Scopes = []string{`say"hi`} }, CodeInvalidClientMetadata, "scopes"},
		{"offline_access without the refresh_token grant", func(c *NewClient) { c.GrantTypes = []GrantType{GrantAuthorizationCode} }, CodeInvalidClientMetadata, "scopes"},
		{"skip_consent for a public client with a loopback redirect URI", func(c *NewClient) {
			*c = nativeApp()
			c.SkipConsent = true
		}, CodeInvalidClientMetadata, "skip_consent"},
		{"an ID token algorithm Authly does not sign with", func(c *NewClient) { c.IDTokenSignedResponseAlg = "HS256" }, CodeInvalidClientMetadata, "id_token_signed_response_alg"},
	}
	for _, tc := range tests {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			in := webApp()
			tc.edit(&in)
			_, _, err := e.svc.CreateClient(ctx, e.admin, in)
			if got := wantCode(t, err, tc.code); got.Field != tc.field {
				t.Errorf("field %q, want %q", got.Field, tc.field)
			}
		})
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM oauth_clients`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d clients stored after refusals (err %v), want 0: nothing is left half-written", n, err)
	}
	if got := e.auditEvents(AuditClientCreated); len(got) != 0 {
		t.Fatalf("refused registrations were audited as created: %+v", got)
	}
}

func TestClientRegistrationAcceptsAndCleansUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("a public single-page app with only https redirect URIs may skip consent", func(t *testing.T) {
		c, _ := e.client(NewClient{Type: ClientPublic, ClientMetadata: ClientMetadata{
			Name: "SPA", RedirectURIs: []string{"https://spa.example.com/cb"},
			GrantTypes: []GrantType{GrantAuthorizationCode}, SkipConsent: true,
		}})
		if !c.SkipConsent {
			t.Fatal("skip_consent was not kept")
		}
	})

	t.Run("repeats are dropped, the name trimmed, the scopes sorted", func(t *testing.T) {
		c, _ := e.client(NewClient{Type: ClientConfidential, ClientMetadata: ClientMetadata{
			Name:         "  Service  ",
			RedirectURIs: []string{"https://a.example.com/cb", "https://a.example.com/cb", "http://localhost:3000/cb"},
			GrantTypes:   []GrantType{GrantAuthorizationCode, GrantClientCredentials, GrantAuthorizationCode},
			Scopes:       []string{"profile", "openid", "profile"},

			TokenEndpointAuthMethod:  AuthClientSecretPost,
			IDTokenSignedResponseAlg: "ES256",
		}})
		if c.Name != "Service" || len(c.RedirectURIs) != 2 || len(c.GrantTypes) != 2 ||
			!slices.Equal(c.Scopes, []string{"openid", "profile"}) || c.IDTokenSignedResponseAlg != "ES256" {
			t.Fatalf("client %+v, want a trimmed name and no repeats", c)
		}
	})
}

func TestListClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for range 3 {
		c, _ := e.client(webApp())
		ids = append(ids, c.ID)
		e.clock.Advance(time.Second)
	}
	page, err := e.svc.ListClients(ctx, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	next, err := e.svc.ListClients(ctx, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || len(next) != 1 || page[0].ID != ids[2] || page[1].ID != ids[1] || next[0].ID != ids[0] {
		t.Fatalf("pages %v / %v, want newest first: %v reversed", page, next, ids)
	}
	if len(page[0].Scopes) != 4 {
		t.Errorf("a listed client's scopes %v, want its four", page[0].Scopes)
	}
	for _, tc := range []struct{ skip, limit int }{{-1, 10}, {0, 0}, {0, 101}} {
		_, err := e.svc.ListClients(ctx, tc.skip, tc.limit)
		wantCode(t, err, CodeInvalidRequest)
	}
}

func TestUpdateClient(t *testing.T) {
	t.Parallel()

	t.Run("changes only the fields given and audits what changed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		name := "Renamed"
		scopes := []string{"openid"}
		got, err := e.svc.UpdateClient(ctx, e.admin, c.ID, ClientUpdate{Name: &name, Scopes: &scopes})
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != name || !slices.Equal(got.Scopes, scopes) || !slices.Equal(got.RedirectURIs, c.RedirectURIs) ||
			got.TokenEndpointAuthMethod != c.TokenEndpointAuthMethod {
			t.Fatalf("updated %+v, want the name and scopes changed and the rest kept", got)
		}
		reread, _ := e.svc.GetClient(ctx, c.ID)
		if !slices.Equal(reread.Scopes, scopes) {
			t.Errorf("stored scopes %v, want %v", reread.Scopes, scopes)
		}
		events := e.auditEvents(AuditClientUpdated)
		changes, _ := events[0].Details["changes"].(map[string]any)
		if len(events) != 1 || len(changes) != 2 || changes["name"] != name {
			t.Errorf("audit %+v, want one event naming the two changed fields", events)
		}
	})

	t.Run("checks the result as registration does", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		none := AuthNone
		_, err := e.svc.UpdateClient(ctx, e.admin, c.ID, ClientUpdate{TokenEndpointAuthMethod: &none})
		wantCode(t, err, CodeInvalidClientMetadata)
		grants := []GrantType{GrantAuthorizationCode}
		_, err = e.svc.UpdateClient(ctx, e.admin, c.ID, ClientUpdate{GrantTypes: &grants})
		wantCode(t, err, CodeInvalidClientMetadata) // offline_access is still allowed
		unknown := []string{"calendar"}
		_, err = e.svc.UpdateClient(ctx, e.admin, c.ID, ClientUpdate{Scopes: &unknown})
		wantCode(t, err, CodeInvalidClientMetadata)
		reread, _ := e.svc.GetClient(ctx, c.ID)
		if len(reread.Scopes) != 4 || reread.TokenEndpointAuthMethod != AuthClientSecretBasic {
			t.Fatalf("a refused update changed the client: %+v", reread)
		}
	})

	t.Run("an unknown client is not found", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		name := "x"
		_, err := e.svc.UpdateClient(ctx, e.admin, "no-such-client", ClientUpdate{Name: &name})
		wantCode(t, err, CodeNotFound)
	})
}

func TestDeleteClientTakesItsTokensWithIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.client(webApp())
	user := e.user("alice")
	_, resp := e.authorize(c, user, "openid")
	g, err := e.svc.RedeemCode(ctx, c, CodeExchange{Code: resp.Code, RedirectURI: c.RedirectURIs[0], CodeVerifier: rfcVerifier}, Actor{}, openSession)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteClient(ctx, e.admin, c.ID); err != nil {
		t.Fatal(err)
	}
	var sessions, tokens, consents, codes int
	if err := e.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM sessions WHERE id = $1), (SELECT count(*) FROM tokens WHERE session_id = $1),
		(SELECT count(*) FROM oauth_consents), (SELECT count(*) FROM oauth_authorization_codes)`, g.SessionID).
		Scan(&sessions, &tokens, &consents, &codes); err != nil {
		t.Fatal(err)
	}
	if sessions+tokens+consents+codes != 0 {
		t.Fatalf("left behind: %d sessions, %d tokens, %d consents, %d codes", sessions, tokens, consents, codes)
	}
	if _, err := e.svc.GetClient(ctx, c.ID); err == nil {
		t.Fatal("the client is still there")
	}
	wantCode(t, e.svc.DeleteClient(ctx, e.admin, c.ID), CodeNotFound)
	if got := e.auditEvents(AuditClientDeleted); len(got) != 1 || got[0].Details["client_id"] != c.ID {
		t.Fatalf("audit %+v, want one deletion", got)
	}
}

func TestRotateClientSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, oldSecret := e.client(webApp())
	e.clock.Advance(time.Hour)
	rotated, newSecret, err := e.svc.RotateClientSecret(ctx, e.admin, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if newSecret == oldSecret || len(newSecret) != 43 {
		t.Fatalf("new secret %q, want a fresh 43-character one", newSecret)
	}
	if rotated.SecretRotatedAt == nil || !rotated.SecretRotatedAt.Equal(e.clock.Now()) {
		t.Errorf("secret_rotated_at %v, want now", rotated.SecretRotatedAt)
	}
	_, err = e.svc.AuthenticateClient(ctx, ClientCredentials{HasBasic: true, BasicUser: c.ID, BasicPassword: oldSecret})
	wantCode(t, err, CodeInvalidClient)
	if _, err := e.svc.AuthenticateClient(ctx, ClientCredentials{HasBasic: true, BasicUser: c.ID, BasicPassword: newSecret}); err != nil {
		t.Fatalf("the new secret does not authenticate: %v", err)
	}
	if got := e.auditEvents(AuditClientSecretRotated); len(got) != 1 || got[0].Details["client_id"] != c.ID {
		t.Fatalf("audit %+v, want one rotation", got)
	}
	e.noSecretIn(oldSecret, newSecret)

	public, _ := e.client(nativeApp())
	_, _, err = e.svc.RotateClientSecret(ctx, e.admin, public.ID)
	wantCode(t, err, CodeInvalidRequest)
	_, _, err = e.svc.RotateClientSecret(ctx, e.admin, "no-such-client")
	wantCode(t, err, CodeNotFound)
}

func TestAuthenticateClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	basic, basicSecret := e.client(webApp())
	postIn := webApp()
	postIn.TokenEndpointAuthMethod = AuthClientSecretPost
	post, postSecret := e.client(postIn)
	public, _ := e.client(nativeApp())

	tests := []struct {
		name string
		cred ClientCredentials
		want string    // the client authenticated
		code ErrorCode // or the error
	}{
		{"client_secret_basic with the right secret", ClientCredentials{HasBasic: true, BasicUser: basic.ID, BasicPassword: basicSecret}, basic.ID, ""},
		{"client_secret_basic with form-urlencoded credentials", ClientCredentials{HasBasic: true, BasicUser: url.QueryEscape(basic.ID), BasicPassword: url.QueryEscape(basicSecret), ClientID: basic.ID}, basic.ID, ""},
		{"client_secret_basic with a wrong secret", ClientCredentials{HasBasic: true, BasicUser: basic.ID, BasicPassword: postSecret}, "", CodeInvalidClient},
		{"client_secret_basic with an empty secret", ClientCredentials{HasBasic: true, BasicUser: basic.ID}, "", CodeInvalidClient},
		{"client_secret_basic with malformed encoding", ClientCredentials{HasBasic: true, BasicUser: basic.ID, BasicPassword: "%zz"}, "", CodeInvalidClient},
		{"client_secret_basic for a client registered for client_secret_post", ClientCredentials{HasBasic: true, BasicUser: post.ID, BasicPassword: postSecret}, "", CodeInvalidClient},
		{"client_secret_post with the right secret", ClientCredentials{ClientID: post.ID, ClientSecret: postSecret}, post.ID, ""},
		{"client_secret_post with a wrong secret", ClientCredentials{ClientID: post.ID, ClientSecret: basicSecret}, "", CodeInvalidClient},
		{"client_secret_post for a client registered for client_secret_basic", ClientCredentials{ClientID: basic.ID, ClientSecret: basicSecret}, "", CodeInvalidClient},
		{"a confidential client that sends no secret", ClientCredentials{ClientID: basic.ID}, "", CodeInvalidClient},
		{"a public client by its client_id alone", ClientCredentials{ClientID: public.ID}, public.ID, ""},
		{"a public client that sends a secret", ClientCredentials{ClientID: public.ID, ClientSecret: basicSecret}, "", CodeInvalidClient},
		{"a public client over basic", ClientCredentials{HasBasic: true, BasicUser: public.ID}, "", CodeInvalidClient},
		{"an unknown client with a secret", ClientCredentials{HasBasic: true, BasicUser: "no-such-client", BasicPassword: basicSecret}, "", CodeInvalidClient},
		{"an unknown client without a secret", ClientCredentials{ClientID: "no-such-client"}, "", CodeInvalidClient},
		{"a client id far longer than any Authly makes", ClientCredentials{ClientID: strings.Repeat("c", 129)}, "", CodeInvalidClient},
		{"two methods at once", ClientCredentials{HasBasic: true, BasicUser: basic.ID, BasicPassword: basicSecret, ClientID: basic.ID, ClientSecret: basicSecret}, "", CodeInvalidRequest},
		{"basic credentials of one client and the client_id of another", ClientCredentials{HasBasic: true, BasicUser: basic.ID, BasicPassword: basicSecret, ClientID: post.ID}, "", CodeInvalidRequest},
		{"a secret without a client_id", ClientCredentials{ClientSecret: postSecret}, "", CodeInvalidRequest},
		{"no client at all", ClientCredentials{}, "", CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run("authenticates "+tc.name+" correctly", func(t *testing.T) {
			c, err := e.svc.AuthenticateClient(ctx, tc.cred)
			if tc.code != "" {
				got := wantCode(t, err, tc.code)
				if tc.code == CodeInvalidClient && got.Description != "Client authentication failed." {
					t.Errorf("description %q, want the one shared by every failure", got.Description)
				}
				return
			}
			if err != nil || c.ID != tc.want {
				t.Fatalf("got %q, %v; want client %q", c.ID, err, tc.want)
			}
		})
	}
}

func TestClientGrantChecks(t *testing.T) {
	t.Parallel()
	c := Client{GrantTypes: []GrantType{GrantAuthorizationCode}}
	if err := c.CheckGrant("authorization_code"); err != nil {
		t.Errorf("an allowed grant: %v", err)
	}
	wantCode(t, c.CheckGrant("client_credentials"), CodeUnauthorizedClient)
	wantCode(t, c.CheckGrant("implicit"), CodeUnsupportedGrantType)
	wantCode(t, c.CheckGrant("urn:ietf:params:oauth:grant-type:device_code"), CodeUnsupportedGrantType)
}
