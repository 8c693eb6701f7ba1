package httpapi

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// CreateUser registers a user.
func (a *API) CreateUser(ctx context.Context, req api.CreateUserRequestObject) (api.CreateUserResponseObject, error) {
	in := service.NewUser{Username: req.Body.Username, Email: req.Body.Email, Password: req.Body.Password}
	u, err := a.svc.Register(ctx, in, callerFrom(ctx).client)
	if err != nil {
		return nil, err
	}
	return api.CreateUser201JSONResponse{Body: userResponse(u), Headers: api.CreateUser201ResponseHeaders{CacheControl: noStore()}}, nil
}

// GetCurrentUser returns the caller's account.
func (a *API) GetCurrentUser(ctx context.Context, _ api.GetCurrentUserRequestObject) (api.GetCurrentUserResponseObject, error) {
	return api.GetCurrentUser200JSONResponse{Body: userResponse(callerFrom(ctx).principal.User), Headers: api.GetCurrentUser200ResponseHeaders{CacheControl: noStore()}}, nil
}

// VerifyUser marks a user verified.
func (a *API) VerifyUser(ctx context.Context, req api.VerifyUserRequestObject) (api.VerifyUserResponseObject, error) {
	c := callerFrom(ctx)
	u, err := a.svc.VerifyUser(ctx, c.principal, req.UserId, c.client)
	if err != nil {
		return nil, err
	}
	return api.VerifyUser200JSONResponse{Body: userResponse(u), Headers: api.VerifyUser200ResponseHeaders{CacheControl: noStore()}}, nil
}

// ListUsers returns a page of users, newest first.
func (a *API) ListUsers(ctx context.Context, req api.ListUsersRequestObject) (api.ListUsersResponseObject, error) {
	skip, limit := 0, 100
	if req.Params.Skip != nil {
		skip = *req.Params.Skip
	}
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	users, err := a.svc.ListUsers(ctx, callerFrom(ctx).principal, skip, limit)
	if err != nil {
		return nil, err
	}
	body := make([]api.User, len(users))
	for i, u := range users {
		body[i] = userResponse(u)
	}
	return api.ListUsers200JSONResponse{Body: body, Headers: api.ListUsers200ResponseHeaders{CacheControl: noStore()}}, nil
}

// GetUser returns one user.
func (a *API) GetUser(ctx context.Context, req api.GetUserRequestObject) (api.GetUserResponseObject, error) {
	u, err := a.svc.GetUser(ctx, callerFrom(ctx).principal, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.GetUser200JSONResponse{Body: userResponse(u), Headers: api.GetUser200ResponseHeaders{CacheControl: noStore()}}, nil
}

// UpdateUser applies a partial update; 202 when one's own new email awaits its confirmation.
func (a *API) UpdateUser(ctx context.Context, req api.UpdateUserRequestObject) (api.UpdateUserResponseObject, error) {
	b, c := req.Body, callerFrom(ctx)
	res, err := a.svc.UpdateUser(ctx, c.principal, req.UserId, service.UserChanges{
		Username: b.Username, Email: b.Email, Password: b.Password,
		IsActive: b.IsActive, IsVerified: b.IsVerified, IsAdmin: b.IsAdmin,
		CurrentPassword: b.CurrentPassword,
	}, c.client)
	if err != nil {
		return nil, err
	}
	if res.EmailChangePending {
		return api.UpdateUser202JSONResponse{Body: userResponse(res.User), Headers: api.UpdateUser202ResponseHeaders{CacheControl: noStore()}}, nil
	}
	return api.UpdateUser200JSONResponse{Body: userResponse(res.User), Headers: api.UpdateUser200ResponseHeaders{CacheControl: noStore()}}, nil
}

// DeleteUser deletes another user, as an admin.
func (a *API) DeleteUser(ctx context.Context, req api.DeleteUserRequestObject) (api.DeleteUserResponseObject, error) {
	c := callerFrom(ctx)
	if err := a.svc.DeleteUser(ctx, c.principal, req.UserId, c.client); err != nil {
		return nil, err
	}
	return api.DeleteUser204Response{}, nil
}

// DeleteMyAccount deletes the caller's own account once its current password is confirmed.
func (a *API) DeleteMyAccount(ctx context.Context, req api.DeleteMyAccountRequestObject) (api.DeleteMyAccountResponseObject, error) {
	c := callerFrom(ctx)
	var current *string
	if req.Body != nil {
		current = &req.Body.CurrentPassword
	}
	if err := a.svc.DeleteOwnAccount(ctx, c.principal, current, c.client); err != nil {
		return nil, err
	}
	return api.DeleteMyAccount204Response{}, nil
}

// UnlockUser clears a user's lockout.
func (a *API) UnlockUser(ctx context.Context, req api.UnlockUserRequestObject) (api.UnlockUserResponseObject, error) {
	c := callerFrom(ctx)
	u, err := a.svc.UnlockUser(ctx, c.principal, req.UserId, c.client)
	if err != nil {
		return nil, err
	}
	return api.UnlockUser200JSONResponse{Body: userResponse(u), Headers: api.UnlockUser200ResponseHeaders{CacheControl: noStore()}}, nil
}

// userResponse is the whole public shape of a user.
func userResponse(u service.User) api.User {
	return api.User{
		Id:         u.ID,
		Username:   u.Username,
		Email:      u.Email,
		CreatedAt:  u.CreatedAt,
		UpdatedAt:  u.UpdatedAt,
		LastLogin:  u.LastLogin,
		IsActive:   u.IsActive,
		IsVerified: u.IsVerified,
		IsAdmin:    u.IsAdmin,
	}
}
