package oauth

import (
	"bytes"
	"crypto/sha256"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAuthorizationRequestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web, _ := e.client(webApp())
	machine, _ := e.client(NewClient{Type: ClientConfidential, ClientMetadata: ClientMetadata{
		Name: "Machine", RedirectURIs: []string{"https://machine.example.com/cb"},
		GrantTypes: []GrantType{GrantClientCredentials},
	}})
	const state = "xyz-state"

	tests := []struct {
		name   string
		client Client
		edit   func(*AuthorizationParams)
		code   ErrorCode
		// redirected: the error goes back to the client; otherwise it is shown to the user.
		redirected bool
		// stateKept: the redirect carries the request's state.
		stateKept bool
	}{
		{"a missing client_id is shown to the user", web, func(p *AuthorizationParams) { p.ClientID = "" }, CodeInvalidRequest, false, false},
		{"a repeated client_id is shown to the user", web, func(p *AuthorizationParams) { p.Repeated = []string{"client_id"} }, CodeInvalidRequest, false, false},
		{"an unknown client is shown to the user", web, func(p *AuthorizationParams) { p.ClientID = "no-such-client" }, CodeInvalidClient, false, false},
		{"an overlong client_id is shown to the user as unknown", web, func(p *AuthorizationParams) { p.ClientID = strings.Repeat("c", 4096) }, CodeInvalidClient, false, false},
		{"a missing redirect_uri is shown to the user", web, func(p *AuthorizationParams) { p.RedirectURI = "" }, CodeInvalidRequest, false, false},
		{"a repeated redirect_uri is shown to the user", web, func(p *AuthorizationParams) { p.Repeated = []string{"redirect_uri", "scope"} }, CodeInvalidRequest, false, false},
		{"an unregistered redirect_uri is shown to the user", web, func(p *AuthorizationParams) { p.RedirectURI = "https://evil.example.com/callback" }, CodeInvalidRequest, false, false},
		{"a registered redirect_uri with a suffix is shown to the user", web, func(p *AuthorizationParams) { p.RedirectURI += "/../../evil" }, CodeInvalidRequest, false, false},
		{"an unregistered redirect_uri is shown even when everything else is wrong too", web, func(p *AuthorizationParams) {
			p.RedirectURI, p.ResponseType, p.CodeChallenge = "https://evil.example.com/", "token", ""
		}, CodeInvalidRequest, false, false},
		{"a missing response_type goes back to the client", web, func(p *AuthorizationParams) { p.ResponseType = "" }, CodeInvalidRequest, true, true},
		{"response_type=token goes back as unsupported_response_type", web, func(p *AuthorizationParams) { p.ResponseType = "token" }, CodeUnsupportedResponseType, true, true},
		{"response_type=code id_token goes back as unsupported_response_type", web, func(p *AuthorizationParams) { p.ResponseType = "code id_token" }, CodeUnsupportedResponseType, true, true},
		{"response_mode=fragment goes back as invalid_request", web, func(p *AuthorizationParams) { p.ResponseMode = "fragment" }, CodeInvalidRequest, true, true},
		{"a client without the authorization_code grant goes back as unauthorized_client", machine, nil, CodeUnauthorizedClient, true, true},
		{"a missing code_challenge goes back as invalid_request", web, func(p *AuthorizationParams) { p.CodeChallenge = "" }, CodeInvalidRequest, true, true},
		{"code_challenge_method=plain goes back as invalid_request", web, func(p *AuthorizationParams) { p.CodeChallengeMethod = "plain" }, CodeInvalidRequest, true, true},
		{"a missing code_challenge_method, which means plain, goes back as invalid_request", web, func(p *AuthorizationParams) { p.CodeChallengeMethod = "" }, CodeInvalidRequest, true, true},
		{"a malformed code_challenge goes back as invalid_request", web, func(p *AuthorizationParams) { p.CodeChallenge = rfcVerifier + "=" }, CodeInvalidRequest, true, true},
		{"a scope the client may not request goes back as invalid_scope", web, func(p *AuthorizationParams) { p.Scope = "openid admin" }, CodeInvalidScope, true, true},
		{"a malformed scope goes back as invalid_scope", web, func(p *AuthorizationParams) { p.Scope = "openid\x7f" }, CodeInvalidScope, true, true},
		{"prompt=none with login goes back as invalid_request", web, func(p *AuthorizationParams) { p.Prompt = "none login" }, CodeInvalidRequest, true, true},
		{"an unknown prompt goes back as invalid_request", web, func(p *AuthorizationParams) { p.Prompt = "create" }, CodeInvalidRequest, true, true},
		{"a negative max_age goes back as invalid_request", web, func(p *AuthorizationParams) { p.MaxAge = "-1" }, CodeInvalidRequest, true, true},
		{"a max_age that is not a number goes back as invalid_request", web, func(p *AuthorizationParams) { p.MaxAge = "1h" }, CodeInvalidRequest, true, true},
		{"a max_age with a leading zero goes back as invalid_request", web, func(p *AuthorizationParams) { p.MaxAge = "060" }, CodeInvalidRequest, true, true},
		{"a nonce of 513 bytes goes back as invalid_request", web, func(p *AuthorizationParams) { p.Nonce = strings.Repeat("n", 513) }, CodeInvalidRequest, true, true},
		{"a relative resource goes back as invalid_target", web, func(p *AuthorizationParams) { p.Resources = []string{"/api"} }, CodeInvalidTarget, true, true},
		{"a resource with a fragment goes back as invalid_target", web, func(p *AuthorizationParams) { p.Resources = []string{"https://api.example.com/#x"} }, CodeInvalidTarget, true, true},
		{"eleven resources go back as invalid_target", web, func(p *AuthorizationParams) {
			for i := range 11 {
				p.Resources = append(p.Resources, "https://api"+strings.Repeat("x", i)+".example.com/")
			}
		}, CodeInvalidTarget, true, true},
		{"a request object goes back as request_not_supported", web, func(p *AuthorizationParams) { p.Request = "eyJhbGciOiJub25lIn0.e30." }, CodeRequestNotSupported, true, true},
		{"a request_uri goes back as request_uri_not_supported", web, func(p *AuthorizationParams) { p.RequestURI = "urn:example:request" }, CodeRequestURINotSupported, true, true},
		{"a repeated scope goes back as invalid_request", web, func(p *AuthorizationParams) { p.Repeated = []string{"scope"} }, CodeInvalidRequest, true, true},
		{"a repeated state goes back without the state", web, func(p *AuthorizationParams) { p.Repeated = []string{"state"} }, CodeInvalidRequest, true, false},
		{"a state of 2049 bytes goes back without the state", web, func(p *AuthorizationParams) { p.State = strings.Repeat("s", 2049) }, CodeInvalidRequest, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := authParams(tc.client, "openid")
			p.State = state
			if tc.edit != nil {
				tc.edit(&p)
			}
			_, err := e.svc.ValidateAuthorizationRequest(ctx, p)
			got := wantCode(t, err, tc.code)
			if got.Redirectable() != tc.redirected {
				t.Fatalf("redirectable = %v, want %v", got.Redirectable(), tc.redirected)
			}
			if !tc.redirected {
				if got.RedirectURL() != "" {
					t.Fatalf("an error shown to the user has a redirect: %s", got.RedirectURL())
				}
				return
			}
			loc := got.RedirectURL()
			if !strings.HasPrefix(loc, tc.client.RedirectURIs[0]+"?") {
				t.Fatalf("redirect %s, want the client's registered URI", loc)
			}
			q := query(t, loc)
			if q.Get("error") != string(tc.code) || q.Get("error_description") != got.Description || q.Get("iss") != testIssuer {
				t.Errorf("redirect query %v, want error, error_description and iss", q)
			}
			if wantState := map[bool]string{true: state, false: ""}[tc.stateKept]; q.Get("state") != wantState {
				t.Errorf("state %q, want %q", q.Get("state"), wantState)
			}
		})
	}
}

func TestAuthorizationRequestAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web, _ := e.client(webApp())
	native, _ := e.client(nativeApp())

	t.Run("every parameter is read into the request", func(t *testing.T) {
		p := authParams(web, "openid  email openid")
		p.Prompt, p.MaxAge, p.ResponseMode = "login consent", "300", "query"
		p.Resources = []string{"https://api.example.com/", "https://api.example.com/", "urn:example:billing"}
		req, err := e.svc.ValidateAuthorizationRequest(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if req.Client.ID != web.ID || req.RedirectURI != web.RedirectURIs[0] || !slices.Equal(req.Scopes, []string{"openid", "email"}) ||
			req.State != p.State || req.Nonce != p.Nonce || req.CodeChallenge != rfcChallenge ||
			!req.Prompt.Login || !req.Prompt.Consent || req.Prompt.None || req.MaxAge == nil || *req.MaxAge != 5*time.Minute ||
			!slices.Equal(req.Resources, []string{"https://api.example.com/", "urn:example:billing"}) {
			t.Fatalf("request %+v", req)
		}
	})

	t.Run("a native app's loopback redirect binds the code to the port it chose", func(t *testing.T) {
		p := authParams(native, "openid")
		p.RedirectURI = "http://127.0.0.1:51004/callback"
		req, err := e.svc.ValidateAuthorizationRequest(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if req.RedirectURI != p.RedirectURI {
			t.Fatalf("bound to %s, want %s", req.RedirectURI, p.RedirectURI)
		}
	})

	t.Run("parameters are read from a query, with repeats noted and unknown ones ignored", func(t *testing.T) {
		v := url.Values{
			"response_type": {"code"}, "client_id": {web.ID}, "redirect_uri": {web.RedirectURIs[0]},
			"scope": {"openid", "email"}, "resource": {"https://a.example.com/", "https://b.example.com/"},
			"code_challenge": {rfcChallenge}, "code_challenge_method": {"S256"}, "utm_source": {"x", "y"},
		}
		p := ParamsFromQuery(v)
		if !slices.Equal(p.Repeated, []string{"scope"}) || len(p.Resources) != 2 || p.ClientID != web.ID || p.Scope != "openid" {
			t.Fatalf("params %+v", p)
		}
		_, err := e.svc.ValidateAuthorizationRequest(ctx, p)
		wantCode(t, err, CodeInvalidRequest)
		v.Del("scope")
		if _, err := e.svc.ValidateAuthorizationRequest(ctx, ParamsFromQuery(v)); err != nil {
			t.Fatalf("an unknown repeated parameter was not ignored: %v", err)
		}
	})
}

func TestDecide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web, _ := e.client(webApp())
	trusted, _ := e.client(NewClient{Type: ClientConfidential, ClientMetadata: ClientMetadata{
		Name: "First party", RedirectURIs: []string{"https://first.example.com/cb"},
		GrantTypes: []GrantType{GrantAuthorizationCode}, Scopes: []string{"openid"}, SkipConsent: true,
	}})
	alice := e.user("alice")
	sess, _ := e.browserSession(alice)
	bob := e.user("bob")
	bobSess, _ := e.browserSession(bob)
	if _, err := e.svc.GrantConsent(ctx, alice, web.ID, []string{"openid", "profile", "email"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)

	tests := []struct {
		name         string
		client       Client
		scope        string
		edit         func(*AuthorizationParams)
		sess         *BrowserSession
		justSignedIn bool
		step         Step
		consent      []string
		code         ErrorCode // a redirected error instead
	}{
		{"a browser without a session goes to the login page", web, "openid", nil, nil, false, StepLogin, nil, ""},
		{"a browser without a session and prompt=none gets login_required", web, "openid", func(p *AuthorizationParams) { p.Prompt = "none" }, nil, false, 0, nil, CodeLoginRequired},
		{"a request within what the user allowed is issued at once", web, "openid email", nil, &sess, false, StepIssue, nil, ""},
		{"a request for a subset of what the user allowed needs no new consent", web, "profile", nil, &sess, false, StepIssue, nil, ""},
		{"a request within what the user allowed and prompt=none is issued", web, "openid", func(p *AuthorizationParams) { p.Prompt = "none" }, &sess, false, StepIssue, nil, ""},
		{"a request for more asks for only the scopes not yet allowed", web, "openid offline_access", nil, &sess, false, StepConsent, []string{"offline_access"}, ""},
		{"a request for more with prompt=none gets consent_required", web, "openid offline_access", func(p *AuthorizationParams) { p.Prompt = "none" }, &sess, false, 0, nil, CodeConsentRequired},
		{"prompt=consent asks for every scope again", web, "openid email", func(p *AuthorizationParams) { p.Prompt = "consent" }, &sess, false, StepConsent, []string{"openid", "email"}, ""},
		{"a user who never allowed the client is asked for everything", web, "openid email", nil, &bobSess, false, StepConsent, []string{"openid", "email"}, ""},
		{"a user who never allowed the client is asked even for no scope", web, "", nil, &bobSess, false, StepConsent, []string{}, ""},
		{"a client that skips consent is issued at once", trusted, "openid", nil, &bobSess, false, StepIssue, nil, ""},
		{"prompt=consent shows the page even for a client that skips consent", trusted, "openid", func(p *AuthorizationParams) { p.Prompt = "consent" }, &bobSess, false, StepConsent, []string{"openid"}, ""},
		{"prompt=login sends a signed-in user to the login page", web, "openid", func(p *AuthorizationParams) { p.Prompt = "login" }, &sess, false, StepLogin, nil, ""},
		{"prompt=login is satisfied by the login it asked for", web, "openid", func(p *AuthorizationParams) { p.Prompt = "login" }, &sess, true, StepIssue, nil, ""},
		{"prompt=select_account goes to the login page", web, "openid", func(p *AuthorizationParams) { p.Prompt = "select_account" }, &sess, false, StepLogin, nil, ""},
		{"a login older than max_age goes to the login page", web, "openid", func(p *AuthorizationParams) { p.MaxAge = "599" }, &sess, false, StepLogin, nil, ""},
		{"a login older than max_age with prompt=none gets login_required", web, "openid", func(p *AuthorizationParams) { p.MaxAge = "599"; p.Prompt = "none" }, &sess, false, 0, nil, CodeLoginRequired},
		{"a login within max_age is enough", web, "openid", func(p *AuthorizationParams) { p.MaxAge = "600" }, &sess, false, StepIssue, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := authParams(tc.client, tc.scope)
			if tc.edit != nil {
				tc.edit(&p)
			}
			req, err := e.svc.ValidateAuthorizationRequest(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.svc.Decide(ctx, req, tc.sess, tc.justSignedIn)
			if tc.code != "" {
				got := wantCode(t, err, tc.code)
				if q := query(t, got.RedirectURL()); q.Get("error") != string(tc.code) || q.Get("state") != p.State {
					t.Fatalf("redirect %s, want the error and the state", got.RedirectURL())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Step != tc.step || (tc.step == StepConsent && !slices.Equal(d.ConsentScopes, tc.consent)) {
				t.Fatalf("decision %+v, want step %d asking for %v", d, tc.step, tc.consent)
			}
		})
	}
}

func TestApprove(t *testing.T) {
	t.Parallel()

	t.Run("with consent given, the code is issued, stored only as a digest, and the consent remembered", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		req, resp := e.authorize(c, alice, "openid email")
		if len(resp.Code) != 43 || !resp.ExpiresAt.Equal(e.clock.Now().Add(time.Minute)) {
			t.Fatalf("code %q expiring %v, want 256 bits for 60 s", resp.Code, resp.ExpiresAt)
		}
		q := query(t, resp.RedirectURL)
		if !strings.HasPrefix(resp.RedirectURL, c.RedirectURIs[0]+"?") || q.Get("code") != resp.Code ||
			q.Get("state") != req.State || q.Get("iss") != testIssuer {
			t.Fatalf("redirect %s, want code, state and iss on the redirect URI", resp.RedirectURL)
		}
		var stored []byte
		var leaked bool
		if err := e.pool.QueryRow(ctx, `SELECT code_hash, to_jsonb(c)::text LIKE '%' || $1 || '%'
			FROM oauth_authorization_codes c`, resp.Code).Scan(&stored, &leaked); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(resp.Code))
		if !bytes.Equal(stored, sum[:]) || leaked {
			t.Fatalf("stored %x (code in the row: %v), want only the SHA-256 of the code", stored, leaked)
		}
		consent, err := e.svc.GetConsent(ctx, alice, c.ID)
		if err != nil || !slices.Equal(consent.Scopes, []string{"email", "openid"}) {
			t.Fatalf("consent %+v, %v", consent, err)
		}
		events := e.auditEvents(AuditAuthorizationGranted)
		if len(events) != 1 || events[0].Details["consent"] != "given" || events[0].Details["scope"] != "openid email" ||
			*events[0].UserID != alice {
			t.Fatalf("audit %+v", events)
		}
		e.noSecretIn(resp.Code)
	})

	t.Run("a registered redirect URI's own query is kept", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		in := webApp()
		in.RedirectURIs = []string{"https://app.example.com/cb?tenant=acme"}
		c, _ := e.client(in)
		_, resp := e.authorize(c, e.user("alice"), "openid")
		if !strings.HasPrefix(resp.RedirectURL, "https://app.example.com/cb?tenant=acme&") || query(t, resp.RedirectURL).Get("tenant") != "acme" {
			t.Fatalf("redirect %s", resp.RedirectURL)
		}
	})

	t.Run("without consent given or remembered, no code is issued", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		sess, _ := e.browserSession(alice)
		req, err := e.svc.ValidateAuthorizationRequest(ctx, authParams(c, "openid"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Approve(ctx, req, sess, false, Actor{UserID: alice})
		if got := wantCode(t, err, CodeConsentRequired); !got.Redirectable() {
			t.Fatal("consent_required is not redirected")
		}
		if _, err := e.svc.GrantConsent(ctx, alice, c.ID, []string{"profile"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Approve(ctx, req, sess, false, Actor{UserID: alice})
		wantCode(t, err, CodeConsentRequired)
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM oauth_authorization_codes`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d codes stored", n)
		}

		if _, err := e.svc.GrantConsent(ctx, alice, c.ID, []string{"openid"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Approve(ctx, req, sess, false, Actor{UserID: alice}); err != nil {
			t.Fatalf("with the consent remembered: %v", err)
		}
		if got := e.auditEvents(AuditAuthorizationGranted); len(got) != 1 || got[0].Details["consent"] != "remembered" {
			t.Fatalf("audit %+v", got)
		}
	})

	t.Run("a client that skips consent leaves no consent behind", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		in := webApp()
		in.SkipConsent = true
		c, _ := e.client(in)
		alice := e.user("alice")
		sess, _ := e.browserSession(alice)
		req, _ := e.svc.ValidateAuthorizationRequest(ctx, authParams(c, "openid"))
		if _, err := e.svc.Approve(ctx, req, sess, false, Actor{UserID: alice}); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.GetConsent(ctx, alice, c.ID)
		wantCode(t, err, CodeNotFound)
		if got := e.auditEvents(AuditAuthorizationGranted); len(got) != 1 || got[0].Details["consent"] != "not_required" {
			t.Fatalf("audit %+v", got)
		}
	})

	t.Run("a denial goes back as access_denied and is audited", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := e.client(webApp())
		alice := e.user("alice")
		req, _ := e.svc.ValidateAuthorizationRequest(ctx, authParams(c, "openid email"))
		got := e.svc.Deny(ctx, req, alice, Actor{UserID: alice, IP: "203.0.113.9"})
		wantCode(t, got, CodeAccessDenied)
		if q := query(t, got.RedirectURL()); q.Get("error") != "access_denied" || q.Get("state") != req.State || q.Get("iss") != testIssuer {
			t.Fatalf("redirect %s", got.RedirectURL())
		}
		events := e.auditEvents(AuditAuthorizationDenied)
		if len(events) != 1 || *events[0].UserID != alice || events[0].Details["client_id"] != c.ID || *events[0].IP != "203.0.113.9" {
			t.Fatalf("audit %+v", events)
		}
	})
}
