package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// acceptedMessage answers every request that may send mail, whether or not it did.
const acceptedMessage = "If the address belongs to an account that needs it, a message is on its way."

// VerifyEmail verifies an address with its link's token.
func (a *API) VerifyEmail(ctx context.Context, req api.VerifyEmailRequestObject) (api.VerifyEmailResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	if err := a.svc.VerifyEmail(ctx, req.Body.Token, callerFrom(ctx).client); err != nil {
		return nil, err
	}
	return api.VerifyEmail204Response{}, nil
}

// ResendVerification asks for a new verification link; 202 whatever the address.
func (a *API) ResendVerification(ctx context.Context, req api.ResendVerificationRequestObject) (api.ResendVerificationResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	later, err := a.svc.ResendVerification(ctx, req.Body.Email, callerFrom(ctx).client)
	if err != nil {
		return nil, err
	}
	return acceptedThen{then: later}, nil
}

// RequestPasswordReset asks for a password reset link; 202 whatever the address.
func (a *API) RequestPasswordReset(ctx context.Context, req api.RequestPasswordResetRequestObject) (api.RequestPasswordResetResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	later, err := a.svc.RequestPasswordReset(ctx, req.Body.Email, callerFrom(ctx).client)
	if err != nil {
		return nil, err
	}
	return acceptedThen{then: later}, nil
}

// ResetPassword sets a new password with a reset link's token.
func (a *API) ResetPassword(ctx context.Context, req api.ResetPasswordRequestObject) (api.ResetPasswordResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	err := a.svc.ResetPassword(ctx, req.Body.Token, req.Body.NewPassword, callerFrom(ctx).client)
	if err != nil {
		return nil, renameField(err, "password", "new_password")
	}
	return api.ResetPassword204Response{}, nil
}

// ConfirmEmailChange makes an email change take effect with its link's token.
func (a *API) ConfirmEmailChange(ctx context.Context, req api.ConfirmEmailChangeRequestObject) (api.ConfirmEmailChangeResponseObject, error) {
	if req.Body == nil {
		return nil, errNoBody()
	}
	if err := a.svc.ConfirmEmailChange(ctx, req.Body.Token, callerFrom(ctx).client); err != nil {
		return nil, err
	}
	return api.ConfirmEmailChange204Response{}, nil
}

// acceptedThen is the 202 of a request whose work is deferred: it sends the whole answer, with
// its length, flushes it to the client, and only then starts the work. The client has its
// complete answer before the work begins, so the work cannot slow the answer down, and the
// answer's timing cannot tell what the work found (whether an account has the address).
type acceptedThen struct{ then service.Deferred }

// acceptedBody is the one body of every acceptedThen: one string field cannot fail to encode.
var acceptedBody, _ = json.Marshal(api.Accepted{Message: acceptedMessage})

func (a acceptedThen) write(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(acceptedBody)))
	w.WriteHeader(http.StatusAccepted)
	_, err := w.Write(acceptedBody)
	if err == nil {
		err = http.NewResponseController(w).Flush()
	}
	a.then()
	return err
}

func (a acceptedThen) VisitRequestPasswordResetResponse(w http.ResponseWriter) error {
	return a.write(w)
}

func (a acceptedThen) VisitResendVerificationResponse(w http.ResponseWriter) error { return a.write(w) }

func errNoBody() error {
	return service.InvalidFields(service.FieldError{Field: "body", Message: "is required"})
}

// renameField renames a field error of err, for an operation whose body names the field
// otherwise than the domain does.
func renameField(err error, from, to string) error {
	e := service.AsError(err)
	if len(e.Fields) == 0 {
		return err
	}
	renamed := *e
	renamed.Fields = make([]service.FieldError, len(e.Fields))
	for i, f := range e.Fields {
		if f.Field == from {
			f.Field = to
		}
		renamed.Fields[i] = f
	}
	return &renamed
}
