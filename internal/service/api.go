package service

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/gen/db"
)

// API adapts the Service to the generated strict server: it converts requests to calls and
// results to responses, nothing more. Errors go to the strict handler's error hook, which
// writes them as problems in one place.
type API struct {
	svc *Service
}

var _ api.StrictServerInterface = (*API)(nil)

func noStore() *string { s := "no-store"; return &s }

// GetHealth reports whether the database answers.
func (a *API) GetHealth(ctx context.Context, _ api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	if err := a.svc.Health(ctx); err != nil {
		return api.GetHealth503JSONResponse{Status: api.HealthStatusUnavailable, Database: api.HealthDatabaseUnreachable}, nil
	}
	return api.GetHealth200JSONResponse{Status: api.HealthStatusOk, Database: api.HealthDatabaseOk}, nil
}

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

func tokenResponse(p TokenPair) api.TokenResponse {
	return api.TokenResponse{
		AccessToken:  p.AccessToken,
		RefreshToken: p.RefreshToken,
		TokenType:    api.Bearer,
		ExpiresIn:    int(p.ExpiresIn.Seconds()),
	}
}

// userResponse is the whole public shape of a user: the hash and the brute-force state
// never leave the service.
func userResponse(u db.User) api.User {
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
