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
	svc  *Service
	docs bool // serve the reference page and openapi.yaml
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

// GetLiveness answers while the process runs.
func (a *API) GetLiveness(context.Context, api.GetLivenessRequestObject) (api.GetLivenessResponseObject, error) {
	return api.GetLiveness200JSONResponse{Status: api.LivenessStatusOk}, nil
}

// GetReadiness answers 200 only while serving with a reachable database.
func (a *API) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	database := api.ReadinessDatabaseOk
	if err := a.svc.Health(ctx); err != nil {
		database = api.ReadinessDatabaseUnreachable
	}
	switch phase := a.svc.Phase(); {
	case phase != PhaseServing:
		return api.GetReadiness503JSONResponse{Status: api.ReadinessStatus(phase), Database: database}, nil
	case database != api.ReadinessDatabaseOk:
		return api.GetReadiness503JSONResponse{Status: api.ReadinessStatusUnavailable, Database: database}, nil
	}
	return api.GetReadiness200JSONResponse{Status: api.ReadinessStatusOk, Database: database}, nil
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

// deref returns what p points to, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
