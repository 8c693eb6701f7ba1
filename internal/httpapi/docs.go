package httpapi

import (
	"bytes"
	"context"

	"github.com/authly/authly/internal/docs"
	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// GetOpenAPISpec serves openapi.yaml as built into the binary; 404 when docs are disabled.
func (a *API) GetOpenAPISpec(context.Context, api.GetOpenAPISpecRequestObject) (api.GetOpenAPISpecResponseObject, error) {
	if !a.docs {
		return nil, service.NotFound()
	}
	spec := docs.Spec()
	return api.GetOpenAPISpec200ApplicationyamlResponse{Body: bytes.NewReader(spec), ContentLength: int64(len(spec))}, nil
}

// GetDocs serves the API reference page with the one Content-Security-Policy that lets Redoc
// run; 404 when docs are disabled.
func (a *API) GetDocs(context.Context, api.GetDocsRequestObject) (api.GetDocsResponseObject, error) {
	if !a.docs {
		return nil, service.NotFound()
	}
	page, csp := docs.Page(), docs.PageCSP
	return api.GetDocs200TexthtmlResponse{
		Body:          bytes.NewReader(page),
		ContentLength: int64(len(page)),
		Headers:       api.GetDocs200ResponseHeaders{ContentSecurityPolicy: &csp},
	}, nil
}

// GetDocsScript serves the Redoc bundle that renders the reference page; 404 when docs are
// disabled.
func (a *API) GetDocsScript(context.Context, api.GetDocsScriptRequestObject) (api.GetDocsScriptResponseObject, error) {
	if !a.docs {
		return nil, service.NotFound()
	}
	script := docs.Script()
	return api.GetDocsScript200TextjavascriptResponse{Body: bytes.NewReader(script), ContentLength: int64(len(script))}, nil
}
