package service

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
)

// CreateUser registers a user.
func (a *API) CreateUser(ctx context.Context, req api.CreateUserRequestObject) (api.CreateUserResponseObject, error) {
	u, err := a.svc.Register(ctx, NewUser{Username: req.Body.Username, Email: req.Body.Email, Password: req.Body.Password})
	if err != nil {
		return nil, err
	}
	return api.CreateUser201JSONResponse{Body: userResponse(u), Headers: api.CreateUser201ResponseHeaders{CacheControl: noStore()}}, nil
}

// GetCurrentUser returns the caller's account.
func (a *API) GetCurrentUser(ctx context.Context, _ api.GetCurrentUserRequestObject) (api.GetCurrentUserResponseObject, error) {
	return api.GetCurrentUser200JSONResponse{Body: userResponse(principalFrom(ctx).User), Headers: api.GetCurrentUser200ResponseHeaders{CacheControl: noStore()}}, nil
}

// VerifyUser marks a user verified.
func (a *API) VerifyUser(ctx context.Context, req api.VerifyUserRequestObject) (api.VerifyUserResponseObject, error) {
	u, err := a.svc.VerifyUser(ctx, principalFrom(ctx), req.UserId)
	if err != nil {
		return nil, err
	}
	return api.VerifyUser200JSONResponse{Body: userResponse(u), Headers: api.VerifyUser200ResponseHeaders{CacheControl: noStore()}}, nil
}
