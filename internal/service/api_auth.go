package service

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
)

// CreateToken logs in with the password grant, from a JSON or a form body.
func (a *API) CreateToken(ctx context.Context, req api.CreateTokenRequestObject) (api.CreateTokenResponseObject, error) {
	body := req.JSONBody
	if body == nil {
		body = req.FormdataBody
	}
	if body == nil {
		return nil, invalidFields(FieldError{Field: "body", Message: "is required"})
	}
	username, password := deref(body.Username), deref(body.Password)
	var missing []*FieldError
	if username == "" {
		missing = append(missing, &FieldError{Field: "username", Message: "is required for the password grant"})
	}
	if password == "" {
		missing = append(missing, &FieldError{Field: "password", Message: "is required for the password grant"})
	}
	if err := collect(missing...); err != nil {
		return nil, err
	}
	pair, err := a.svc.PasswordLogin(ctx, username, password, clientFrom(ctx))
	if err != nil {
		return nil, err
	}
	return api.CreateToken200JSONResponse{Body: tokenResponse(pair), Headers: api.CreateToken200ResponseHeaders{CacheControl: noStore()}}, nil
}
