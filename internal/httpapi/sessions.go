package httpapi

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
)

// ListMySessions lists the caller's live sessions.
func (a *API) ListMySessions(ctx context.Context, _ api.ListMySessionsRequestObject) (api.ListMySessionsResponseObject, error) {
	sessions, err := a.svc.ListSessions(ctx, callerFrom(ctx).principal)
	if err != nil {
		return nil, err
	}
	body := make([]api.Session, len(sessions))
	for i, s := range sessions {
		body[i] = api.Session{
			Id:         s.ID,
			CreatedAt:  s.CreatedAt,
			LastUsedAt: s.LastUsedAt,
			ExpiresAt:  s.ExpiresAt,
			Ip:         s.IP,
			UserAgent:  s.UserAgent,
			Current:    s.Current,
		}
	}
	return api.ListMySessions200JSONResponse{Body: body, Headers: api.ListMySessions200ResponseHeaders{CacheControl: noStore()}}, nil
}

// RevokeMySession revokes one of the caller's sessions.
func (a *API) RevokeMySession(ctx context.Context, req api.RevokeMySessionRequestObject) (api.RevokeMySessionResponseObject, error) {
	c := callerFrom(ctx)
	if err := a.svc.RevokeSession(ctx, c.principal, req.SessionId, c.client); err != nil {
		return nil, err
	}
	return api.RevokeMySession204Response{}, nil
}

// RevokeUserSessions logs a user out everywhere (admin).
func (a *API) RevokeUserSessions(ctx context.Context, req api.RevokeUserSessionsRequestObject) (api.RevokeUserSessionsResponseObject, error) {
	c := callerFrom(ctx)
	out, err := a.svc.RevokeUserSessions(ctx, c.principal, req.UserId, c.client)
	if err != nil {
		return nil, err
	}
	return api.RevokeUserSessions200JSONResponse{
		Body:    api.ForcedLogoutResult{InvalidatedTokens: out.InvalidatedTokens, RevokedSessions: out.RevokedSessions},
		Headers: api.RevokeUserSessions200ResponseHeaders{CacheControl: noStore()},
	}, nil
}
