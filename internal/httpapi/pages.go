package httpapi

import (
	"bytes"
	"context"
	"errors"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/web"
)

// The pages the emailed links open. A GET shows what the link will do and changes nothing;
// only its form's POST acts, through the same domain calls as the API's endpoints. An invalid
// link or a refused password is a page, with status 400; anything else (the database is down,
// the server is busy) is a problem document, like every other error.

// renderedPage is a page ready to send: its HTML and its Content-Security-Policy.
type renderedPage struct {
	body *bytes.Reader
	size int64
	csp  *string
}

func (a *API) render(p web.Page) (renderedPage, error) {
	html, err := a.pages.Render(p)
	if err != nil {
		return renderedPage{}, service.Internal(err)
	}
	csp := a.pages.CSP()
	return renderedPage{body: bytes.NewReader(html), size: int64(len(html)), csp: &csp}, nil
}

func (r renderedPage) ok() api.PageTexthtmlResponse {
	return api.PageTexthtmlResponse{Body: r.body, ContentLength: r.size, Headers: api.PageResponseHeaders{ContentSecurityPolicy: r.csp}}
}

func (r renderedPage) rejected() api.PageRejectedTexthtmlResponse {
	return api.PageRejectedTexthtmlResponse{Body: r.body, ContentLength: r.size, Headers: api.PageRejectedResponseHeaders{ContentSecurityPolicy: r.csp}}
}

// invalidLinkPage says a link cannot be used, without saying why.
var invalidLinkPage = web.Page{
	Title: "This link cannot be used",
	Lines: []string{
		"The link is incomplete, was already used, or has expired.",
		"Ask for a new one, and use the newest message you receive.",
	},
}

// pageOutcome is what a page handler decided: a page with 200, a page with 400, or an error
// for the problem writer.
type pageOutcome struct {
	page     renderedPage
	rejected bool
}

// pageFor renders p, with 400 when rejected.
func (a *API) pageFor(p web.Page, rejected bool) (pageOutcome, error) {
	r, err := a.render(p)
	return pageOutcome{page: r, rejected: rejected}, err
}

// linkPage renders, for a domain error, the page that explains it when it concerns the link
// or the form (invalid_link_token, a refused field, a taken address), and returns any other
// error as it is.
func (a *API) linkPage(err error, retry *web.Page) (pageOutcome, error) {
	e := service.AsError(err)
	switch {
	case e.Code == service.CodeInvalidLinkToken:
		return a.pageFor(invalidLinkPage, true)
	case e.Code == service.CodeEmailTaken:
		return a.pageFor(web.Page{Title: "This address is taken", Lines: []string{
			"Another account has registered this email address since you asked to change yours.",
			"Your account keeps its current address.",
		}}, true)
	case e.Code == service.CodeInvalidRequest && retry != nil && len(e.Fields) > 0:
		p := *retry
		for _, f := range e.Fields {
			p.Errors = append(p.Errors, fieldMessage(f))
		}
		return a.pageFor(p, true)
	}
	return pageOutcome{}, err
}

// fieldMessage words a field error for a person.
func fieldMessage(f service.FieldError) string {
	switch f.Field {
	case "password", "new_password":
		return "The new password " + f.Message + "."
	}
	return f.Field + " " + f.Message + "."
}

func verifyEmailForm(token, email string) web.Page {
	return web.Page{
		Title: "Confirm your email address",
		Lines: []string{"Confirm that " + email + " is your email address."},
		Form:  &web.Form{Action: "verify-email", Token: token, Submit: "Confirm my address"},
	}
}

func resetPasswordForm(token, username string) web.Page {
	return web.Page{
		Title: "Choose a new password",
		Lines: []string{
			"Choose a new password for " + username + ": at least 8 characters, at most 72 bytes, not your username or email, and not a common password.",
			"Setting it signs you out everywhere.",
		},
		Form: &web.Form{Action: "reset-password", Token: token, Submit: "Set my new password", Fields: []web.Field{
			{Name: "new_password", Label: "New password"},
			{Name: "confirm_password", Label: "New password, again"},
		}},
	}
}

func confirmEmailChangeForm(token, username, email string) web.Page {
	return web.Page{
		Title: "Confirm your new email address",
		Lines: []string{"Confirm that the account " + username + " should use " + email + " from now on."},
		Form:  &web.Form{Action: "confirm-email-change", Token: token, Submit: "Use this address"},
	}
}

// showLink renders the form of a GET page for a live link, or the invalid link page.
func (a *API) showLink(ctx context.Context, purpose service.LinkPurpose, token *string, form func(token string, info service.LinkInfo) web.Page) (pageOutcome, error) {
	info, err := a.svc.CheckLink(ctx, purpose, deref(token))
	if err != nil {
		return a.linkPage(err, nil)
	}
	return a.pageFor(form(*token, info), false)
}

// VerifyEmailPage shows the button that verifies an address.
func (a *API) VerifyEmailPage(ctx context.Context, req api.VerifyEmailPageRequestObject) (api.VerifyEmailPageResponseObject, error) {
	out, err := a.showLink(ctx, service.LinkVerifyEmail, req.Params.Token, func(token string, info service.LinkInfo) web.Page {
		return verifyEmailForm(token, info.Email)
	})
	switch {
	case err != nil:
		return nil, err
	case out.rejected:
		return api.VerifyEmailPage400TexthtmlResponse{PageRejectedTexthtmlResponse: out.page.rejected()}, nil
	}
	return api.VerifyEmailPage200TexthtmlResponse{PageTexthtmlResponse: out.page.ok()}, nil
}

// SubmitVerifyEmailPage verifies an address from its page.
func (a *API) SubmitVerifyEmailPage(ctx context.Context, req api.SubmitVerifyEmailPageRequestObject) (api.SubmitVerifyEmailPageResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	var out pageOutcome
	err := a.svc.VerifyEmail(ctx, req.Body.Token, callerFrom(ctx).client)
	if err == nil {
		out, err = a.pageFor(web.Page{Title: "Your email address is confirmed", Lines: []string{"You can now sign in."}}, false)
	} else {
		out, err = a.linkPage(err, nil)
	}
	switch {
	case err != nil:
		return nil, err
	case out.rejected:
		return api.SubmitVerifyEmailPage400TexthtmlResponse{PageRejectedTexthtmlResponse: out.page.rejected()}, nil
	}
	return api.SubmitVerifyEmailPage200TexthtmlResponse{PageTexthtmlResponse: out.page.ok()}, nil
}

// ResetPasswordPage shows the form for a new password.
func (a *API) ResetPasswordPage(ctx context.Context, req api.ResetPasswordPageRequestObject) (api.ResetPasswordPageResponseObject, error) {
	out, err := a.showLink(ctx, service.LinkPasswordReset, req.Params.Token, func(token string, info service.LinkInfo) web.Page {
		return resetPasswordForm(token, info.Username)
	})
	switch {
	case err != nil:
		return nil, err
	case out.rejected:
		return api.ResetPasswordPage400TexthtmlResponse{PageRejectedTexthtmlResponse: out.page.rejected()}, nil
	}
	return api.ResetPasswordPage200TexthtmlResponse{PageTexthtmlResponse: out.page.ok()}, nil
}

// errPasswordsDiffer answers a reset form whose two passwords differ.
var errPasswordsDiffer = service.InvalidFields(service.FieldError{Field: "confirm_password", Message: "differs from the new password"})

// SubmitResetPasswordPage sets a new password from its page. A refused password shows the form
// again, with the reason; the link stays usable.
func (a *API) SubmitResetPasswordPage(ctx context.Context, req api.SubmitResetPasswordPageRequestObject) (api.SubmitResetPasswordPageResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	b := req.Body
	info, err := a.svc.CheckLink(ctx, service.LinkPasswordReset, b.Token)
	if err == nil && b.NewPassword != b.ConfirmPassword {
		err = errPasswordsDiffer
	}
	if err == nil {
		err = a.svc.ResetPassword(ctx, b.Token, b.NewPassword, callerFrom(ctx).client)
	}
	var out pageOutcome
	if err == nil {
		out, err = a.pageFor(web.Page{Title: "Your password is set", Lines: []string{
			"Your new password works from now on. Every session signed in with the old one has been signed out.",
		}}, false)
	} else {
		retry := resetPasswordForm(b.Token, info.Username)
		if errors.Is(err, errPasswordsDiffer) {
			retry.Errors = []string{"The two passwords differ; type the same one twice."}
			out, err = a.pageFor(retry, true)
		} else {
			out, err = a.linkPage(err, &retry)
		}
	}
	switch {
	case err != nil:
		return nil, err
	case out.rejected:
		return api.SubmitResetPasswordPage400TexthtmlResponse{PageRejectedTexthtmlResponse: out.page.rejected()}, nil
	}
	return api.SubmitResetPasswordPage200TexthtmlResponse{PageTexthtmlResponse: out.page.ok()}, nil
}

// ConfirmEmailChangePage shows the button that confirms an email change.
func (a *API) ConfirmEmailChangePage(ctx context.Context, req api.ConfirmEmailChangePageRequestObject) (api.ConfirmEmailChangePageResponseObject, error) {
	out, err := a.showLink(ctx, service.LinkEmailChange, req.Params.Token, func(token string, info service.LinkInfo) web.Page {
		return confirmEmailChangeForm(token, info.Username, info.Email)
	})
	switch {
	case err != nil:
		return nil, err
	case out.rejected:
		return api.ConfirmEmailChangePage400TexthtmlResponse{PageRejectedTexthtmlResponse: out.page.rejected()}, nil
	}
	return api.ConfirmEmailChangePage200TexthtmlResponse{PageTexthtmlResponse: out.page.ok()}, nil
}

// SubmitConfirmEmailChangePage confirms an email change from its page.
func (a *API) SubmitConfirmEmailChangePage(ctx context.Context, req api.SubmitConfirmEmailChangePageRequestObject) (api.SubmitConfirmEmailChangePageResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	var out pageOutcome
	err := a.svc.ConfirmEmailChange(ctx, req.Body.Token, callerFrom(ctx).client)
	if err == nil {
		out, err = a.pageFor(web.Page{Title: "Your email address is changed", Lines: []string{
			"Your account uses its new address from now on. The old address has been told.",
		}}, false)
	} else {
		out, err = a.linkPage(err, nil)
	}
	switch {
	case err != nil:
		return nil, err
	case out.rejected:
		return api.SubmitConfirmEmailChangePage400TexthtmlResponse{PageRejectedTexthtmlResponse: out.page.rejected()}, nil
	}
	return api.SubmitConfirmEmailChangePage200TexthtmlResponse{PageTexthtmlResponse: out.page.ok()}, nil
}
