package httpapi

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// CreateToken logs in with the password grant, or rotates a refresh token with the
// refresh_token grant, from a JSON or a form body.
func (a *API) CreateToken(ctx context.Context, req api.CreateTokenRequestObject) (api.CreateTokenResponseObject, error) {
	body := req.JSONBody
	if body == nil {
		body = req.FormdataBody
	}
	if body == nil {
		return nil, service.InvalidFields(service.FieldError{Field: "body", Message: "is required"})
	}
	if body.GrantType == api.TokenRequestGrantTypeRefreshToken {
		return a.refreshGrant(ctx, body)
	}
	username, password := deref(body.Username), deref(body.Password)
	var missing []*service.FieldError
	if username == "" {
		missing = append(missing, &service.FieldError{Field: "username", Message: "is required for the password grant"})
	}
	if password == "" {
		missing = append(missing, &service.FieldError{Field: "password", Message: "is required for the password grant"})
	}
	if body.RefreshToken != nil {
		missing = append(missing, &service.FieldError{Field: "refresh_token", Message: "is only for the refresh_token grant"})
	}
	if err := service.Collect(missing...); err != nil {
		return nil, err
	}
	c := callerFrom(ctx)
	pair, quota, err := a.svc.PasswordLogin(ctx, username, password, c.client)
	c.countedAgainst(quota)
	if err != nil {
		return nil, err
	}
	return api.CreateToken200JSONResponse{Body: tokenResponse(pair), Headers: api.CreateToken200ResponseHeaders{CacheControl: noStore()}}, nil
}

// refreshGrant is the token endpoint's refresh_token grant: the same rotation as
// RefreshToken.
func (a *API) refreshGrant(ctx context.Context, body *api.TokenRequest) (api.CreateTokenResponseObject, error) {
	var wrong []*service.FieldError
	if deref(body.RefreshToken) == "" {
		wrong = append(wrong, &service.FieldError{Field: "refresh_token", Message: "is required for the refresh_token grant"})
	}
	if body.Username != nil {
		wrong = append(wrong, &service.FieldError{Field: "username", Message: "is only for the password grant"})
	}
	if body.Password != nil {
		wrong = append(wrong, &service.FieldError{Field: "password", Message: "is only for the password grant"})
	}
	if err := service.Collect(wrong...); err != nil {
		return nil, err
	}
	pair, err := a.svc.Refresh(ctx, *body.RefreshToken, callerFrom(ctx).client)
	if err != nil {
		return nil, err
	}
	return api.CreateToken200JSONResponse{Body: tokenResponse(pair), Headers: api.CreateToken200ResponseHeaders{CacheControl: noStore()}}, nil
}

// RefreshToken rotates a refresh token.
func (a *API) RefreshToken(ctx context.Context, req api.RefreshTokenRequestObject) (api.RefreshTokenResponseObject, error) {
	if req.Body == nil {
		return nil, service.InvalidFields(service.FieldError{Field: "body", Message: "is required"})
	}
	pair, err := a.svc.Refresh(ctx, req.Body.RefreshToken, callerFrom(ctx).client)
	if err != nil {
		return nil, err
	}
	return api.RefreshToken200JSONResponse{Body: tokenResponse(pair), Headers: api.RefreshToken200ResponseHeaders{CacheControl: noStore()}}, nil
}

// Logout logs the caller out of every session.
func (a *API) Logout(ctx context.Context, _ api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	c := callerFrom(ctx)
	n, err := a.svc.Logout(ctx, c.principal, c.client)
	if err != nil {
		return nil, err
	}
	return api.Logout200JSONResponse{
		Body:    api.LogoutResult{Message: "Logged out of every session.", InvalidatedTokens: n},
		Headers: api.Logout200ResponseHeaders{CacheControl: noStore()},
	}, nil
}

func tokenResponse(p service.TokenPair) api.TokenResponse {
	return api.TokenResponse{
		AccessToken:  p.AccessToken,
		RefreshToken: p.RefreshToken,
		TokenType:    api.Bearer,
		ExpiresIn:    int(p.ExpiresIn.Seconds()),
	}
}
