package httpapi

import (
	"context"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// GetHealth reports whether the database answers.
func (a *API) GetHealth(ctx context.Context, _ api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	if err := a.svc.Health(ctx); err != nil {
		return api.GetHealth503JSONResponse{Body: api.Health{Status: api.HealthStatusUnavailable, Database: api.HealthDatabaseUnreachable}}, nil
	}
	return api.GetHealth200JSONResponse{Body: api.Health{Status: api.HealthStatusOk, Database: api.HealthDatabaseOk}}, nil
}

// GetLiveness answers while the process runs.
func (a *API) GetLiveness(context.Context, api.GetLivenessRequestObject) (api.GetLivenessResponseObject, error) {
	return api.GetLiveness200JSONResponse{Body: api.Liveness{Status: api.LivenessStatusOk}}, nil
}

// GetReadiness answers 200 only while serving with a reachable database.
func (a *API) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	database := api.ReadinessDatabaseOk
	if err := a.svc.Health(ctx); err != nil {
		database = api.ReadinessDatabaseUnreachable
	}
	switch phase := a.svc.Phase(); {
	case phase != service.PhaseServing:
		return api.GetReadiness503JSONResponse{Body: api.Readiness{Status: api.ReadinessStatus(phase), Database: database}}, nil
	case database != api.ReadinessDatabaseOk:
		return api.GetReadiness503JSONResponse{Body: api.Readiness{Status: api.ReadinessStatusUnavailable, Database: database}}, nil
	}
	return api.GetReadiness200JSONResponse{Body: api.Readiness{Status: api.ReadinessStatusOk, Database: database}}, nil
}
