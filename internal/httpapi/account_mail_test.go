package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

func withMailLimits(l service.MailLimits) envOption {
	return func(_ *token.Config, d *service.Deps) { d.MailLimits = l }
}

// onServer points a link at the test server instead of the public URL.
func (e *env) onServer(t *testing.T, pageURL string) string {
	t.Helper()
	u, err := url.Parse(pageURL)
	if err != nil || u.Scheme+"://"+u.Host != service.DefaultPublicURL {
		t.Fatalf("the link %s does not start with the public URL %s", pageURL, service.DefaultPublicURL)
	}
	return e.srv.URL + u.Path
}

// page fetches or posts a page as a browser would, without following redirects.
func (e *env) page(t *testing.T, method, pageURL string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, pageURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Transport: &contractChecker{t: t, next: http.DefaultTransport}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html" {
		t.Fatalf("%s %s: Content-Type %q: %s", method, pageURL, ct, b)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || !strings.Contains(csp, "form-action 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("page CSP %q", csp)
	}
	return resp, string(b)
}

func (e *env) isVerified(username string) bool {
	e.t.Helper()
	var v bool
	if err := e.pool.QueryRow(context.Background(), `SELECT is_verified FROM users WHERE username = $1`, username).Scan(&v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// Registration mails a verification link through the outbox and SMTP; following it verifies
// the address, once.
func TestRegistrationMailsALinkThatVerifiesTheAddress(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	ctx := context.Background()
	e.register("ada")
	if r := e.tryLogin("ada", testPassword); r.StatusCode() != http.StatusForbidden {
		t.Fatalf("an unverified login: %d", r.StatusCode())
	}
	msg := box.next("ada@example.com", subjectVerify)
	if !strings.Contains(msg.Text, "ada") || !strings.Contains(msg.Text, "expires in 1 day") {
		t.Errorf("the message does not greet ada or say how long the link works:\n%s", msg.Text)
	}
	tok := msg.token(t, "/verify-email")

	resp, err := e.client.VerifyEmailWithResponse(ctx, api.LinkToken{Token: tok})
	if err != nil || resp.StatusCode() != http.StatusNoContent {
		t.Fatalf("verify: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	e.login("ada", testPassword)
	again, _ := e.client.VerifyEmailWithResponse(ctx, api.LinkToken{Token: tok})
	if again.StatusCode() != http.StatusBadRequest || problemCode(t, again.Body) != service.CodeInvalidLinkToken {
		t.Fatalf("the link used twice: %d %s", again.StatusCode(), again.Body)
	}
	if n := e.auditCount(service.AuditEmailVerified, "method", "link"); n != 1 {
		t.Errorf("%d email_verified events", n)
	}
	if n := e.auditCount(service.AuditMailQueued, "kind", "verify_email"); n != 1 {
		t.Errorf("%d mail_queued events for the verification", n)
	}
}

func TestVerificationLinksExpireAndFollowTheAddress(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	ctx := context.Background()
	e.register("bea")
	stale := box.next("bea@example.com", subjectVerify).token(t, "/verify-email")
	e.clock.Advance(24*time.Hour + time.Second)
	if r, _ := e.client.VerifyEmailWithResponse(ctx, api.LinkToken{Token: stale}); r.StatusCode() != http.StatusBadRequest {
		t.Fatalf("an expired link: %d %s", r.StatusCode(), r.Body)
	}
	for _, tok := range []string{"", "not base64 !", strings.Repeat("A", 43)} {
		body := `{"token":"` + tok + `"}`
		resp, b := e.raw("POST", "/api/v1/auth/verify-email", "application/json", body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("token %q: %d %s", tok, resp.StatusCode, b)
		}
	}
	if e.isVerified("bea") {
		t.Fatal("bea got verified")
	}
}

// The page a verification link opens changes nothing on GET, as mail scanners fetch links;
// its form does.
func TestTheVerificationPageActsOnlyOnItsForm(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	e.register("cid")
	pageURL, tok := box.next("cid@example.com", subjectVerify).link(t, "/verify-email")
	page := e.onServer(t, pageURL)

	for range 2 { // a scanner, then the person
		resp, html := e.page(t, "GET", page+"?token="+url.QueryEscape(tok), nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(html, `<form method="post" action="verify-email">`) ||
			!strings.Contains(html, `value="`+tok+`"`) || !strings.Contains(html, "cid@example.com") {
			t.Fatalf("GET: %d\n%s", resp.StatusCode, html)
		}
	}
	if e.isVerified("cid") {
		t.Fatal("fetching the page verified the address")
	}
	resp, html := e.page(t, "POST", page, url.Values{"token": {tok}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, "confirmed") || !e.isVerified("cid") {
		t.Fatalf("POST: %d verified=%v\n%s", resp.StatusCode, e.isVerified("cid"), html)
	}
	resp, html = e.page(t, "GET", page+"?token="+url.QueryEscape(tok), nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(html, "cannot be used") {
		t.Fatalf("the used link's page: %d\n%s", resp.StatusCode, html)
	}
	resp, _ = e.page(t, "GET", page, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a page without a token: %d", resp.StatusCode)
	}
	// HTML special characters in a token are escaped, never interpreted.
	resp, html = e.page(t, "GET", page+"?token="+url.QueryEscape(`"><script>x</script>`), nil)
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(html, "<script>") {
		t.Fatalf("a hostile token: %d\n%s", resp.StatusCode, html)
	}
}

// A resend answers alike for every address, sends only to an account that needs a link, and
// the new link replaces the old.
func TestResendingAVerificationLink(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t, withMailLimits(service.MailLimits{Address: ratelimit.Limit{N: 2, Period: time.Hour}})).withMailbox(box)
	ctx := context.Background()
	e.register("dee")
	first := box.next("dee@example.com", subjectVerify).token(t, "/verify-email")
	var bodies []string
	for _, address := range []string{"DEE@example.com", "nobody@example.com"} {
		r, err := e.client.ResendVerificationWithResponse(ctx, api.EmailRequest{Email: address})
		if err != nil || r.StatusCode() != http.StatusAccepted {
			t.Fatalf("resend to %s: %v %d %s", address, err, r.StatusCode(), r.Body)
		}
		bodies = append(bodies, string(r.Body))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("the answers differ: %q and %q", bodies[0], bodies[1])
	}
	second := box.next("dee@example.com", subjectVerify).token(t, "/verify-email")
	if r, _ := e.client.VerifyEmailWithResponse(ctx, api.LinkToken{Token: first}); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("the replaced link still works: %d", r.StatusCode())
	}
	if r, _ := e.client.VerifyEmailWithResponse(ctx, api.LinkToken{Token: second}); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("the new link: %d %s", r.StatusCode(), r.Body)
	}
	// Verified now: a resend sends nothing more.
	if r, _ := e.client.ResendVerificationWithResponse(ctx, api.EmailRequest{Email: "dee@example.com"}); r.StatusCode() != http.StatusAccepted {
		t.Fatalf("resend: %d", r.StatusCode())
	}
	// Over the address's limit (two an hour), an address with an account and one without
	// answer alike.
	if r, _ := e.client.ResendVerificationWithResponse(ctx, api.EmailRequest{Email: "nobody@example.com"}); r.StatusCode() != http.StatusAccepted {
		t.Fatalf("resend: %d", r.StatusCode())
	}
	for _, address := range []string{"dee@example.com", "nobody@example.com"} {
		r, _ := e.client.ResendVerificationWithResponse(ctx, api.EmailRequest{Email: address})
		if r.StatusCode() != http.StatusTooManyRequests || problemCode(t, r.Body) != service.CodeRateLimited {
			t.Errorf("%s over its limit: %d %s", address, r.StatusCode(), r.Body)
		}
	}
	if err := e.svc.WaitDeferred(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a worker poll, for any stray message to arrive
	if n := box.count("dee@example.com"); n != 2 {
		t.Errorf("dee got %d messages, want the two links", n)
	}
	if n := box.count("nobody@example.com"); n != 0 {
		t.Errorf("an address without an account got %d messages", n)
	}
}

// A password reset mails a link; following it sets a new password under the usual rules,
// revokes every session, clears the lockout, and tells the owner.
func TestPasswordResetByEmail(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t, withLockout(testLockout)).withMailbox(box)
	ctx := context.Background()
	u, phone := e.verifiedUser("eve")
	laptop := e.login("eve", testPassword)
	for range testLockout.Threshold {
		e.loginSeen("eve", "a forgotten password")
	}
	if got := e.loginSeen("eve", testPassword); got.Code != service.CodeAccountLocked {
		t.Fatalf("eve is not locked: %+v", got)
	}

	var bodies []string
	for _, address := range []string{"Eve@Example.com", "nobody@example.com"} {
		r, err := e.client.RequestPasswordResetWithResponse(ctx, api.EmailRequest{Email: address})
		if err != nil || r.StatusCode() != http.StatusAccepted {
			t.Fatalf("reset request for %s: %v %d %s", address, err, r.StatusCode(), r.Body)
		}
		bodies = append(bodies, string(r.Body))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("the answers differ: %q and %q", bodies[0], bodies[1])
	}
	msg := box.next("eve@example.com", subjectReset)
	if !strings.Contains(msg.Text, "30 minutes") {
		t.Errorf("the reset mail does not say the link works 30 minutes:\n%s", msg.Text)
	}
	tok := msg.token(t, "/reset-password")

	weak, _ := e.client.ResetPasswordWithResponse(ctx, api.PasswordReset{Token: tok, NewPassword: "password1"})
	if weak.StatusCode() != http.StatusBadRequest || problemCode(t, weak.Body) != service.CodeInvalidRequest ||
		!strings.Contains(string(weak.Body), `"field":"new_password"`) {
		t.Fatalf("a common password: %d %s", weak.StatusCode(), weak.Body)
	}
	r, err := e.client.ResetPasswordWithResponse(ctx, api.PasswordReset{Token: tok, NewPassword: "eve's fresh passphrase"})
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("reset: %v %d %s", err, r.StatusCode(), r.Body)
	}
	for _, old := range []api.TokenResponse{phone, laptop} {
		if status := e.meStatus(old.AccessToken); status != http.StatusUnauthorized {
			t.Errorf("a session from before the reset answers %d", status)
		}
	}
	if n := e.liveSessions(u.Id); n != 0 {
		t.Errorf("%d sessions survived the reset", n)
	}
	// The lock is gone with the old password.
	e.login("eve", "eve's fresh passphrase")
	if r := e.tryLogin("eve", testPassword); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("the old password: %d", r.StatusCode())
	}
	box.next("eve@example.com", subjectPasswordChanged)
	if again, _ := e.client.ResetPasswordWithResponse(ctx, api.PasswordReset{Token: tok, NewPassword: "yet another passphrase"}); again.StatusCode() != http.StatusBadRequest ||
		problemCode(t, again.Body) != service.CodeInvalidLinkToken {
		t.Fatalf("the link used twice: %d %s", again.StatusCode(), again.Body)
	}
	if err := e.svc.WaitDeferred(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM mail_outbox WHERE recipient = 'nobody@example.com'`); n != 0 {
		t.Errorf("%d messages queued for an address without an account", n)
	}
	for _, event := range []string{service.AuditPasswordResetRequested, service.AuditPasswordReset} {
		if n := e.auditCount(event); n != 1 {
			t.Errorf("%d %s events", n, event)
		}
	}
}

func TestAResetLinkExpiresAfterThirtyMinutes(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	ctx := context.Background()
	e.verifiedUser("fay")
	if r, _ := e.client.RequestPasswordResetWithResponse(ctx, api.EmailRequest{Email: "fay@example.com"}); r.StatusCode() != http.StatusAccepted {
		t.Fatal(r.StatusCode())
	}
	tok := box.next("fay@example.com", subjectReset).token(t, "/reset-password")
	e.clock.Advance(30*time.Minute + time.Second)
	r, _ := e.client.ResetPasswordWithResponse(ctx, api.PasswordReset{Token: tok, NewPassword: "fay's fresh passphrase"})
	if r.StatusCode() != http.StatusBadRequest || problemCode(t, r.Body) != service.CodeInvalidLinkToken {
		t.Fatalf("an expired link: %d %s", r.StatusCode(), r.Body)
	}
	e.login("fay", testPassword)
}

func TestResetRequestsAreLimitedPerAddressAndPerIP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("per address, whether or not it has an account", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withMailLimits(service.MailLimits{Address: ratelimit.Limit{N: 1, Period: time.Hour}}))
		e.register("gus")
		for _, address := range []string{"gus@example.com", "nobody@example.com"} {
			if r, _ := e.client.RequestPasswordResetWithResponse(ctx, api.EmailRequest{Email: address}); r.StatusCode() != http.StatusAccepted {
				t.Fatalf("first request for %s: %d", address, r.StatusCode())
			}
			r, _ := e.client.RequestPasswordResetWithResponse(ctx, api.EmailRequest{Email: strings.ToUpper(address)})
			if r.StatusCode() != http.StatusTooManyRequests || problemCode(t, r.Body) != service.CodeRateLimited || r.HTTPResponse.Header.Get("Retry-After") == "" {
				t.Fatalf("second request for %s: %d %s", address, r.StatusCode(), r.Body)
			}
		}
	})
	t.Run("per IP, across addresses", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withMailLimits(service.MailLimits{IP: ratelimit.Limit{N: 2, Period: time.Hour}}))
		for i, address := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			r, _ := e.client.RequestPasswordResetWithResponse(ctx, api.EmailRequest{Email: address})
			want := http.StatusAccepted
			if i == 2 {
				want = http.StatusTooManyRequests
			}
			if r.StatusCode() != want {
				t.Fatalf("request %d: %d %s", i+1, r.StatusCode(), r.Body)
			}
		}
	})
}

// The reset page asks for the password twice, explains a refusal, and acts only on its form.
func TestTheResetPage(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	e.verifiedUser("hal")
	if r, _ := e.client.RequestPasswordResetWithResponse(context.Background(), api.EmailRequest{Email: "hal@example.com"}); r.StatusCode() != http.StatusAccepted {
		t.Fatal(r.StatusCode())
	}
	pageURL, tok := box.next("hal@example.com", subjectReset).link(t, "/reset-password")
	page := e.onServer(t, pageURL)
	resp, html := e.page(t, "GET", page+"?token="+url.QueryEscape(tok), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, `name="new_password"`) || !strings.Contains(html, `name="confirm_password"`) {
		t.Fatalf("GET: %d\n%s", resp.StatusCode, html)
	}
	post := func(password, confirm string) (int, string) {
		resp, html := e.page(t, "POST", page, url.Values{"token": {tok}, "new_password": {password}, "confirm_password": {confirm}})
		return resp.StatusCode, html
	}
	if status, html := post("hal's fresh passphrase", "hal's fresh passphrasE"); status != http.StatusBadRequest || !strings.Contains(html, "differ") {
		t.Fatalf("two different passwords: %d\n%s", status, html)
	}
	if status, html := post("qwertyuiop", "qwertyuiop"); status != http.StatusBadRequest || !strings.Contains(html, "too common") || !strings.Contains(html, `name="new_password"`) {
		t.Fatalf("a common password: %d\n%s", status, html)
	}
	e.login("hal", testPassword) // nothing changed yet
	if status, html := post("hal's fresh passphrase", "hal's fresh passphrase"); status != http.StatusOK || !strings.Contains(html, "password is set") {
		t.Fatalf("a good password: %d\n%s", status, html)
	}
	e.login("hal", "hal's fresh passphrase")
	if status, html := post("hal's other passphrase", "hal's other passphrase"); status != http.StatusBadRequest || !strings.Contains(html, "cannot be used") {
		t.Fatalf("the used link: %d\n%s", status, html)
	}
}

// An email change takes effect only when the link sent to the new address is followed; the
// old address is told.
func TestEmailChangeByLink(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	ctx := context.Background()
	u, pair := e.verifiedUser("ian")
	r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Email: ptr("Ian@Example.org"), CurrentPassword: ptr(testPassword)})
	if r.JSON202 == nil || r.JSON202.Email != "ian@example.com" {
		t.Fatalf("change: %d %s", r.StatusCode(), r.Body)
	}
	msg := box.next("ian@example.org", subjectEmailChange)
	tok := msg.token(t, "/confirm-email-change")
	if me, _ := e.client.GetCurrentUserWithResponse(ctx, bearer(pair.AccessToken)); me.JSON200 == nil || me.JSON200.Email != "ian@example.com" {
		t.Fatalf("the address changed before the link was followed: %s", me.Body)
	}
	if box.countSubject("ian@example.com", subjectEmailChanged) != 0 {
		t.Fatal("the old address was told of the change before it happened")
	}
	c, err := e.client.ConfirmEmailChangeWithResponse(ctx, api.LinkToken{Token: tok})
	if err != nil || c.StatusCode() != http.StatusNoContent {
		t.Fatalf("confirm: %v %d %s", err, c.StatusCode(), c.Body)
	}
	me, _ := e.client.GetCurrentUserWithResponse(ctx, bearer(pair.AccessToken))
	if me.JSON200 == nil || me.JSON200.Email != "ian@example.org" || !me.JSON200.IsVerified {
		t.Fatalf("after the link: %s", me.Body)
	}
	notice := box.next("ian@example.com", subjectEmailChanged)
	if !strings.Contains(notice.Text, "ian@example.org") {
		t.Errorf("the notice does not name the new address:\n%s", notice.Text)
	}
	e.login("ian@example.org", testPassword)
	if again, _ := e.client.ConfirmEmailChangeWithResponse(ctx, api.LinkToken{Token: tok}); again.StatusCode() != http.StatusBadRequest {
		t.Fatalf("the link used twice: %d", again.StatusCode())
	}
	if n := e.auditCount(service.AuditEmailChanged, "old_email", "ian@example.com"); n != 1 {
		t.Errorf("%d email_changed events", n)
	}
}

func TestAnEmailChangeToATakenAddressIsRefused(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	ctx := context.Background()
	u, pair := e.verifiedUser("jay")
	r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Email: ptr("kay@example.com"), CurrentPassword: ptr(testPassword)})
	if r.JSON202 == nil {
		t.Fatalf("change: %d %s", r.StatusCode(), r.Body)
	}
	tok := box.next("kay@example.com", subjectEmailChange).token(t, "/confirm-email-change")
	e.register("kay") // takes the address meanwhile
	c, _ := e.client.ConfirmEmailChangeWithResponse(ctx, api.LinkToken{Token: tok})
	if c.StatusCode() != http.StatusBadRequest || problemCode(t, c.Body) != service.CodeEmailTaken {
		t.Fatalf("confirm: %d %s", c.StatusCode(), c.Body)
	}
	if n := e.count(`SELECT count(*) FROM users WHERE email = 'jay@example.com'`); n != 1 {
		t.Fatal("jay lost the address")
	}
}

func TestTheEmailChangePage(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	u, pair := e.verifiedUser("lou")
	if r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Email: ptr("lou@example.net"), CurrentPassword: ptr(testPassword)}); r.JSON202 == nil {
		t.Fatalf("change: %d %s", r.StatusCode(), r.Body)
	}
	pageURL, tok := box.next("lou@example.net", subjectEmailChange).link(t, "/confirm-email-change")
	page := e.onServer(t, pageURL)
	resp, html := e.page(t, "GET", page+"?token="+url.QueryEscape(tok), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, "lou@example.net") || !strings.Contains(html, `action="confirm-email-change"`) {
		t.Fatalf("GET: %d\n%s", resp.StatusCode, html)
	}
	if n := e.count(`SELECT count(*) FROM users WHERE email = 'lou@example.net'`); n != 0 {
		t.Fatal("fetching the page changed the address")
	}
	resp, html = e.page(t, "POST", page, url.Values{"token": {tok}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, "changed") {
		t.Fatalf("POST: %d\n%s", resp.StatusCode, html)
	}
	if n := e.count(`SELECT count(*) FROM users WHERE email = 'lou@example.net'`); n != 1 {
		t.Fatal("the form did not change the address")
	}
	box.next("lou@example.com", subjectEmailChanged)
}

// Changing a password, by its owner or by an admin, is announced to the account's address.
func TestPasswordChangesAreAnnounced(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	e := newEnv(t).withMailbox(box)
	u, pair := e.verifiedUser("max")
	if r := e.update(u.Id, pair.AccessToken, api.UserUpdate{Password: ptr("max's new passphrase"), CurrentPassword: ptr(testPassword)}); r.JSON200 == nil {
		t.Fatalf("own change: %d %s", r.StatusCode(), r.Body)
	}
	notice := box.next("max@example.com", subjectPasswordChanged)
	if strings.Contains(notice.Text, "passphrase") {
		t.Fatal("the notice holds the password")
	}
	if r := e.update(u.Id, e.admin(), api.UserUpdate{Password: ptr("set by the admin")}); r.JSON200 == nil {
		t.Fatalf("admin change: %d %s", r.StatusCode(), r.Body)
	}
	box.next("max@example.com", subjectPasswordChanged)
}

// Mail is queued in the transaction of its cause: a change that fails queues nothing.
func TestARefusedChangeQueuesNoMail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ned")
	before := e.count(`SELECT count(*) FROM mail_outbox`)
	resp, _ := e.client.CreateUserWithResponse(context.Background(), api.UserCreate{Username: "ned", Email: "other@example.com", Password: testPassword})
	if resp.StatusCode() != http.StatusBadRequest {
		t.Fatalf("a taken username: %d", resp.StatusCode())
	}
	if after := e.count(`SELECT count(*) FROM mail_outbox`); after != before {
		t.Fatalf("a refused registration queued %d messages", after-before)
	}
}
