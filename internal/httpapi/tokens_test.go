package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

// withSessions sets the session policy of a test's service.
func withSessions(p service.SessionPolicy) envOption {
	return func(_ *token.Config, d *service.Deps) { d.Sessions = p }
}

// withAlgorithm sets JWT_ALGORITHM for a test's token issuer.
func withAlgorithm(alg string) envOption {
	return func(c *token.Config, _ *service.Deps) { c.Algorithm = alg }
}

// userAgent sets the User-Agent of a generated client call.
func userAgent(ua string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("User-Agent", ua)
		return nil
	}
}

// loginWith logs a user in with extra request editors, such as a User-Agent.
func (e *env) loginWith(username string, editors ...api.RequestEditorFn) api.TokenResponse {
	e.t.Helper()
	password := testPassword
	resp, err := e.client.CreateTokenWithResponse(context.Background(), api.TokenRequest{
		GrantType: api.TokenRequestGrantTypePassword, Username: &username, Password: &password,
	}, editors...)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.JSON200 == nil {
		e.t.Fatalf("login %s: status %d: %s", username, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200
}

// refresh presents a refresh token to POST /api/v1/auth/refresh.
func (e *env) refresh(refreshToken string, editors ...api.RequestEditorFn) *api.RefreshTokenResponse {
	e.t.Helper()
	resp, err := e.client.RefreshTokenWithResponse(context.Background(), api.RefreshRequest{
		GrantType: api.RefreshRequestGrantTypeRefreshToken, RefreshToken: refreshToken,
	}, editors...)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) mustRefresh(refreshToken string, editors ...api.RequestEditorFn) api.TokenResponse {
	e.t.Helper()
	resp := e.refresh(refreshToken, editors...)
	if resp.JSON200 == nil {
		e.t.Fatalf("refresh: status %d: %s", resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200
}

// refreshRefused asserts that a refresh is answered 401 with the given code.
func (e *env) refreshRefused(refreshToken, code string) {
	e.t.Helper()
	resp := e.refresh(refreshToken)
	if resp.ApplicationproblemJSON401 == nil || string(resp.ApplicationproblemJSON401.Code) != code {
		e.t.Fatalf("refresh: want 401 %s, got %d: %s", code, resp.StatusCode(), resp.Body)
	}
}

// meStatus is the status of GET /api/v1/users/me with an access token.
func (e *env) meStatus(accessToken string) int {
	e.t.Helper()
	resp, err := e.client.GetCurrentUserWithResponse(context.Background(), bearer(accessToken))
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode()
}

// scalar runs a query that returns one row and scans it into dest.
func (e *env) scalar(query string, args []any, dest ...any) {
	e.t.Helper()
	if err := e.pool.QueryRow(context.Background(), query, args...).Scan(dest...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

// count runs a count(*) query.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	e.scalar(query, args, &n)
	return n
}

// jwtClaims decodes a JWT's header and claims without verifying them.
func jwtClaims(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact token: %d segments", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func claimTime(t *testing.T, claims map[string]any, name string) time.Time {
	t.Helper()
	v, ok := claims[name].(float64)
	if !ok {
		t.Fatalf("claim %s missing", name)
	}
	return time.Unix(int64(v), 0)
}

func TestTokensAreTypedAndCarryRandomIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("tina")
	seen := map[string]bool{}
	for name, tc := range map[string]struct{ tok, typ string }{
		"access":  {pair.AccessToken, "at+jwt"},
		"refresh": {pair.RefreshToken, "rt+jwt"},
	} {
		header, claims := jwtClaims(t, tc.tok)
		if header["typ"] != tc.typ || header["alg"] != "HS256" {
			t.Errorf("%s token header %v, want typ %s", name, header, tc.typ)
		}
		jti, _ := claims["jti"].(string)
		raw, err := base64.RawURLEncoding.DecodeString(jti)
		if err != nil || len(raw) < 16 {
			t.Errorf("%s jti %q holds %d bytes, want at least 16 random bytes", name, jti, len(raw))
		}
		if seen[jti] {
			t.Errorf("jti %q reused", jti)
		}
		seen[jti] = true
		for _, c := range []string{"iss", "sub", "sid", "iat", "nbf", "exp"} {
			if _, ok := claims[c]; !ok {
				t.Errorf("%s token lacks %s", name, c)
			}
		}
	}
}

func TestRefreshRotatesThePair(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, first := e.verifiedUser("rita")
	e.clock.Advance(time.Minute)

	resp := e.refresh(first.RefreshToken)
	if resp.JSON200 == nil {
		t.Fatalf("refresh: %d %s", resp.StatusCode(), resp.Body)
	}
	if resp.HTTPResponse.Header.Get("Cache-Control") != "no-store" {
		t.Error("the refreshed pair is cacheable")
	}
	second := *resp.JSON200
	if second.TokenType != api.Bearer || second.ExpiresIn != 1800 {
		t.Errorf("refresh response: %+v", second)
	}
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh returned an old token")
	}

	t.Run("the old access token is dead", func(t *testing.T) {
		if code := e.meStatus(first.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("old access token: %d", code)
		}
	})
	t.Run("the old refresh token is invalidated", func(t *testing.T) {
		_, claims := jwtClaims(t, first.RefreshToken)
		if n := e.count(`SELECT count(*) FROM tokens WHERE token_jti = $1 AND invalidated_at IS NOT NULL`, claims["jti"]); n != 1 {
			t.Fatal("the presented refresh token is still live")
		}
	})
	t.Run("the new pair works and stays in the same session", func(t *testing.T) {
		if code := e.meStatus(second.AccessToken); code != http.StatusOK {
			t.Fatalf("new access token: %d", code)
		}
		_, before := jwtClaims(t, first.RefreshToken)
		_, after := jwtClaims(t, second.RefreshToken)
		if before["sid"] != after["sid"] {
			t.Fatalf("session changed from %v to %v", before["sid"], after["sid"])
		}
		if n := e.count(`SELECT count(*) FROM sessions WHERE user_id = $1`, u.Id); n != 1 {
			t.Fatalf("%d sessions after a rotation", n)
		}
		third := e.mustRefresh(second.RefreshToken)
		if code := e.meStatus(third.AccessToken); code != http.StatusOK {
			t.Fatalf("third access token: %d", code)
		}
		if code := e.meStatus(second.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("second access token after the next rotation: %d", code)
		}
	})
	t.Run("the session records the refresh", func(t *testing.T) {
		_, claims := jwtClaims(t, first.RefreshToken)
		var lastUsed time.Time
		var ip, agent string
		e.scalar(`SELECT last_used_at, ip, user_agent FROM sessions WHERE id = $1`, []any{claims["sid"]}, &lastUsed, &ip, &agent)
		if !lastUsed.Equal(e.clock.Now().Truncate(time.Microsecond)) || ip != "127.0.0.1" {
			t.Errorf("session last used %v from %q, want %v from 127.0.0.1", lastUsed, ip, e.clock.Now())
		}
		if agent != "Go-http-client/1.1" {
			t.Errorf("user agent %q, want the latest refresh's", agent)
		}
	})
}

func TestRefreshRecordsTheClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("ursula")
	e.mustRefresh(pair.RefreshToken, userAgent("ursula-laptop/3.1"))
	_, claims := jwtClaims(t, pair.RefreshToken)
	var agent string
	e.scalar(`SELECT user_agent FROM sessions WHERE id = $1`, []any{claims["sid"]}, &agent)
	if agent != "ursula-laptop/3.1" {
		t.Fatalf("user agent %q after refresh", agent)
	}
}

func TestRefreshTokenReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, first := e.verifiedUser("victor")
	other := e.login("victor", testPassword) // a second session, which must survive
	second := e.mustRefresh(first.RefreshToken)
	third := e.mustRefresh(second.RefreshToken)

	// An attacker replays the first refresh token, long since rotated away.
	e.refreshRefused(first.RefreshToken, service.CodeRefreshTokenReused)

	_, claims := jwtClaims(t, first.RefreshToken)
	sid := claims["sid"]
	t.Run("the newest access token is dead", func(t *testing.T) {
		if code := e.meStatus(third.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("newest access token: %d", code)
		}
	})
	t.Run("the newest refresh token is dead", func(t *testing.T) {
		e.refreshRefused(third.RefreshToken, service.CodeInvalidGrant)
	})
	t.Run("the revocation committed although the request failed", func(t *testing.T) {
		var reason string
		e.scalar(`SELECT revoked_reason FROM sessions WHERE id = $1 AND revoked_at IS NOT NULL`, []any{sid}, &reason)
		if reason != "refresh_token_reused" {
			t.Fatalf("revoked_reason %q", reason)
		}
		if n := e.count(`SELECT count(*) FROM tokens WHERE session_id = $1 AND invalidated_at IS NULL`, sid); n != 0 {
			t.Fatalf("%d live tokens left in the family", n)
		}
	})
	t.Run("an audit event names the user, the client and the session", func(t *testing.T) {
		var ip, details string
		e.scalar(`SELECT ip, details::text FROM audit_events WHERE event_type = 'refresh_token_reused' AND user_id = $1`, []any{u.Id}, &ip, &details)
		if ip != "127.0.0.1" || !strings.Contains(details, sid.(string)) || !strings.Contains(details, `"invalidated_tokens": 2`) {
			t.Fatalf("audit event from %q: %s", ip, details)
		}
	})
	t.Run("another session of the same user is untouched", func(t *testing.T) {
		if code := e.meStatus(other.AccessToken); code != http.StatusOK {
			t.Fatalf("other session: %d", code)
		}
		e.mustRefresh(other.RefreshToken)
	})
	t.Run("every later replay is reuse too", func(t *testing.T) {
		e.refreshRefused(second.RefreshToken, service.CodeRefreshTokenReused)
		e.refreshRefused(first.RefreshToken, service.CodeRefreshTokenReused)
		if n := e.count(`SELECT count(*) FROM audit_events WHERE event_type = 'refresh_token_reused'`); n != 3 {
			t.Fatalf("%d reuse events, want 3", n)
		}
	})
}

func TestConcurrentRefreshesOfOneTokenHaveOneWinner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("wanda")
	const racers = 20
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []api.TokenResponse
		codes   = map[string]int{}
	)
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := e.client.RefreshTokenWithResponse(context.Background(), api.RefreshRequest{
				GrantType: api.RefreshRequestGrantTypeRefreshToken, RefreshToken: pair.RefreshToken,
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.JSON200 != nil:
				winners = append(winners, *resp.JSON200)
			case resp.ApplicationproblemJSON401 != nil:
				codes[string(resp.ApplicationproblemJSON401.Code)]++
			default:
				t.Errorf("status %d: %s", resp.StatusCode(), resp.Body)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || codes[service.CodeRefreshTokenReused] != racers-1 {
		t.Fatalf("%d successes and 401s %v; want exactly 1 success and %d refresh_token_reused", len(winners), codes, racers-1)
	}

	_, claims := jwtClaims(t, pair.RefreshToken)
	sid := claims["sid"]
	// Exactly one new pair was issued: the login's two tokens and the winner's two.
	if n := e.count(`SELECT count(*) FROM tokens WHERE session_id = $1`, sid); n != 4 {
		t.Fatalf("%d tokens in the session, want 4", n)
	}
	// The losers presented a token that had been rotated away: the family is revoked, the
	// winner's pair included.
	if n := e.count(`SELECT count(*) FROM tokens WHERE session_id = $1 AND invalidated_at IS NULL`, sid); n != 0 {
		t.Fatalf("%d live tokens after the race", n)
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE id = $1 AND revoked_reason = 'refresh_token_reused'`, sid); n != 1 {
		t.Fatal("the session is not revoked for reuse")
	}
	if code := e.meStatus(winners[0].AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("the winner's access token after the race: %d", code)
	}
}

func TestTokenEndpointAcceptsTheRefreshGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("xena")

	resp, err := e.client.CreateTokenWithResponse(context.Background(), api.TokenRequest{
		GrantType: api.TokenRequestGrantTypeRefreshToken, RefreshToken: &pair.RefreshToken,
	})
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("JSON refresh grant: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	if code := e.meStatus(pair.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("the access token beside the rotated refresh token: %d", code)
	}
	next := resp.JSON200

	form, err := e.client.CreateTokenWithFormdataBodyWithResponse(context.Background(), api.TokenRequest{
		GrantType: api.TokenRequestGrantTypeRefreshToken, RefreshToken: &next.RefreshToken,
	})
	if err != nil || form.JSON200 == nil {
		t.Fatalf("form refresh grant: %v %d %s", err, form.StatusCode(), form.Body)
	}
	if code := e.meStatus(form.JSON200.AccessToken); code != http.StatusOK {
		t.Fatalf("access token from the form grant: %d", code)
	}

	t.Run("reuse through the token endpoint revokes the family too", func(t *testing.T) {
		raw, body := e.raw("POST", "/api/v1/auth/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pair.RefreshToken}}.Encode())
		if raw.StatusCode != http.StatusUnauthorized || problemCode(t, body) != service.CodeRefreshTokenReused {
			t.Fatalf("reuse: %d %s", raw.StatusCode, body)
		}
		if code := e.meStatus(form.JSON200.AccessToken); code != http.StatusUnauthorized {
			t.Fatalf("newest access token after reuse: %d", code)
		}
	})

	cases := []struct{ name, body string }{
		{"a refresh grant without a refresh token", `{"grant_type":"refresh_token"}`},
		{"a refresh grant with a password", `{"grant_type":"refresh_token","refresh_token":"x.y.z","password":"p"}`},
		{"a password grant with a refresh token", `{"grant_type":"password","username":"xena","password":"p","refresh_token":"x.y.z"}`},
		{"a refresh token over 4096 characters", `{"grant_type":"refresh_token","refresh_token":"` + strings.Repeat("a", 4097) + `"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is a bad request", func(t *testing.T) {
			raw, body := e.raw("POST", "/api/v1/auth/token", "application/json", tc.body)
			if raw.StatusCode != http.StatusBadRequest || problemCode(t, body) != service.CodeInvalidRequest {
				t.Fatalf("%d %s", raw.StatusCode, body)
			}
		})
	}
}

func TestRefreshRequestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("yuri")
	cases := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"a missing grant_type is a bad request", "application/json", `{"refresh_token":"a.b.c"}`, 400, service.CodeInvalidRequest},
		{"the password grant is a bad request", "application/json", `{"grant_type":"password","refresh_token":"a.b.c"}`, 400, service.CodeInvalidRequest},
		{"a missing refresh_token is a bad request", "application/json", `{"grant_type":"refresh_token"}`, 400, service.CodeInvalidRequest},
		{"an empty refresh_token is a bad request", "application/json", `{"grant_type":"refresh_token","refresh_token":""}`, 400, service.CodeInvalidRequest},
		{"an unknown field is a bad request", "application/json", `{"grant_type":"refresh_token","refresh_token":"a.b.c","scope":"admin"}`, 400, service.CodeInvalidRequest},
		{"malformed JSON is a bad request", "application/json", `{"grant_type":`, 400, service.CodeInvalidRequest},
		{"a form body is an unsupported media type", "application/x-www-form-urlencoded", `grant_type=refresh_token&refresh_token=a.b.c`, 415, service.CodeUnsupportedMedia},
		{"a garbage token is an invalid grant", "application/json", `{"grant_type":"refresh_token","refresh_token":"not-a-token"}`, 401, service.CodeInvalidGrant},
		{"an access token is an invalid grant", "application/json", `{"grant_type":"refresh_token","refresh_token":"` + pair.AccessToken + `"}`, 401, service.CodeInvalidGrant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, body := e.raw("POST", "/api/v1/auth/refresh", tc.contentType, tc.body)
			if raw.StatusCode != tc.status || problemCode(t, body) != tc.code {
				t.Fatalf("%d %s", raw.StatusCode, body)
			}
		})
	}
	t.Run("the refused access token still works: a failed refresh changes nothing", func(t *testing.T) {
		if code := e.meStatus(pair.AccessToken); code != http.StatusOK {
			t.Fatalf("access token: %d", code)
		}
		e.mustRefresh(pair.RefreshToken)
	})
}

func TestRefreshTokensExpire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pair := e.verifiedUser("zoe")
	e.clock.Advance(7*24*time.Hour + token.Leeway + time.Second)
	e.refreshRefused(pair.RefreshToken, service.CodeInvalidGrant)
}

func TestRefreshFailsForAnInactiveUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, pair := e.verifiedUser("ivan")
	if _, err := e.pool.Exec(context.Background(), `UPDATE users SET is_active = false WHERE id = $1`, u.Id); err != nil {
		t.Fatal(err)
	}
	e.refreshRefused(pair.RefreshToken, service.CodeInvalidGrant)
}

func TestLogoutEndsEverySession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, laptop := e.verifiedUser("logan")
	phone := e.login("logan", testPassword)
	phone = e.mustRefresh(phone.RefreshToken) // leaves two tokens that are already dead
	_, bystander := e.verifiedUser("bella")

	resp, err := e.client.LogoutWithResponse(context.Background(), bearer(laptop.AccessToken))
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("logout: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	// Live were the laptop's pair and the phone's rotated pair; the phone's first pair
	// was already dead and does not count.
	if resp.JSON200.InvalidatedTokens != 4 || resp.JSON200.Message == "" {
		t.Fatalf("logout: %+v", resp.JSON200)
	}

	for name, access := range map[string]string{"laptop": laptop.AccessToken, "phone": phone.AccessToken} {
		if code := e.meStatus(access); code != http.StatusUnauthorized {
			t.Errorf("%s access token after logout: %d", name, code)
		}
	}
	e.refreshRefused(laptop.RefreshToken, service.CodeInvalidGrant)
	e.refreshRefused(phone.RefreshToken, service.CodeInvalidGrant)
	if n := e.count(`SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_reason = 'logout'`, u.Id); n != 2 {
		t.Fatalf("%d sessions revoked by the logout, want 2", n)
	}
	if code := e.meStatus(bystander.AccessToken); code != http.StatusOK {
		t.Fatalf("another user's token after the logout: %d", code)
	}
	var details string
	e.scalar(`SELECT details::text FROM audit_events WHERE event_type = 'logout' AND user_id = $1`, []any{u.Id}, &details)
	if !strings.Contains(details, `"invalidated_tokens": 4`) {
		t.Fatalf("logout audit details: %s", details)
	}

	t.Run("a second logout with the same token is unauthenticated", func(t *testing.T) {
		resp, err := e.client.LogoutWithResponse(context.Background(), bearer(laptop.AccessToken))
		if err != nil || resp.ApplicationproblemJSON401 == nil {
			t.Fatalf("second logout: %v %d", err, resp.StatusCode())
		}
	})
	t.Run("after logging in again the count starts afresh", func(t *testing.T) {
		again := e.login("logan", testPassword)
		resp, err := e.client.LogoutWithResponse(context.Background(), bearer(again.AccessToken))
		if err != nil || resp.JSON200 == nil || resp.JSON200.InvalidatedTokens != 2 {
			t.Fatalf("logout after a new login: %v %d %s", err, resp.StatusCode(), resp.Body)
		}
	})
}

func TestIdleSessionsEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSessions(service.SessionPolicy{IdleTimeout: time.Hour}))
	_, pair := e.verifiedUser("ida")

	// Used every 50 minutes, the session outlives its idle timeout many times over.
	for range 4 {
		e.clock.Advance(50 * time.Minute)
		pair = e.mustRefresh(pair.RefreshToken)
	}
	_, claims := jwtClaims(t, pair.RefreshToken)
	if exp := claimTime(t, claims, "exp"); exp.After(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("refresh token expires at %v, beyond the idle timeout", exp)
	}

	e.clock.Advance(time.Hour + token.Leeway + time.Second)
	e.refreshRefused(pair.RefreshToken, service.CodeInvalidGrant)
}

func TestShortenedIdleTimeoutAppliesToOpenSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // idle timeout 7 days: the refresh token's own expiry is a week away
	_, pair := e.verifiedUser("olga")
	e.clock.Advance(2 * time.Hour)

	// The operator restarts Authly with a one-hour idle timeout.
	strict, err := service.New(service.Deps{Pool: e.pool, Tokens: e.issuer, Clock: e.clock.Now,
		Sessions: service.SessionPolicy{IdleTimeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = strict.Refresh(context.Background(), pair.RefreshToken, service.Client{})
	if service.AsError(err).Code != service.CodeInvalidGrant {
		t.Fatalf("refresh of a session idle for 2h under a 1h timeout: %v", err)
	}
}

func TestSessionsEndAtTheirAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withSessions(service.SessionPolicy{IdleTimeout: 2 * time.Hour, MaxLifetime: 3 * time.Hour}))
	_, pair := e.verifiedUser("abby")
	_, claims := jwtClaims(t, pair.RefreshToken)
	loginAt := claimTime(t, claims, "iat")
	end := loginAt.Add(3 * time.Hour)

	e.clock.Advance(90 * time.Minute)
	pair = e.mustRefresh(pair.RefreshToken)
	_, claims = jwtClaims(t, pair.RefreshToken)
	if exp := claimTime(t, claims, "exp"); exp.After(end.Add(time.Second)) {
		t.Fatalf("refresh token at 1h30 expires at %v, after the session's end %v", exp, end)
	}

	e.clock.Advance(80 * time.Minute) // 2h50 after login
	pair = e.mustRefresh(pair.RefreshToken)
	if pair.ExpiresIn > 601 {
		t.Fatalf("access token issued 10 minutes before the session's end lives %ds", pair.ExpiresIn)
	}
	_, access := jwtClaims(t, pair.AccessToken)
	if exp := claimTime(t, access, "exp"); exp.After(end.Add(time.Second)) {
		t.Fatalf("access token expires at %v, after the session's end %v", exp, end)
	}

	t.Run("a longer lifetime configured later does not extend the session", func(t *testing.T) {
		lax, err := service.New(service.Deps{Pool: e.pool, Tokens: e.issuer, Clock: e.clock.Now,
			Sessions: service.SessionPolicy{MaxLifetime: 365 * 24 * time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		next, err := lax.Refresh(context.Background(), pair.RefreshToken, service.Client{})
		if err != nil {
			t.Fatal(err)
		}
		_, claims := jwtClaims(t, next.RefreshToken)
		if exp := claimTime(t, claims, "exp"); exp.After(end.Add(time.Second)) {
			t.Fatalf("rotation moved the session's end to %v, past %v", exp, end)
		}
		pair = tokenResponseOf(next)
	})

	e.clock.Advance(10*time.Minute + token.Leeway + time.Second) // past the absolute end
	e.refreshRefused(pair.RefreshToken, service.CodeInvalidGrant)
	if code := e.meStatus(pair.AccessToken); code != http.StatusUnauthorized {
		t.Fatalf("access token after the session's end: %d", code)
	}
}

func tokenResponseOf(p service.TokenPair) api.TokenResponse {
	return api.TokenResponse{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, TokenType: api.Bearer, ExpiresIn: int(p.ExpiresIn.Seconds())}
}

// sessionOf returns the session id a token belongs to.
func sessionOf(t *testing.T, tok string) uuid.UUID {
	t.Helper()
	_, claims := jwtClaims(t, tok)
	id, err := uuid.Parse(claims["sid"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
