package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/authly/authly/internal/gen/api"
)

// JWKSSource supplies the JWKS body and how long clients may cache it. keys.Store is one;
// its body is built once per change of keys, so serving it costs no encoding.
type JWKSSource interface {
	JWKS() []byte
	JWKSMaxAge() time.Duration
}

// EmptyJWKS is the JWKS of a server without a key store: no keys, cached for MaxAge.
type EmptyJWKS struct{ MaxAge time.Duration }

var emptyJWKSBody = []byte(`{"keys":[]}`)

// JWKS returns an empty key set.
func (EmptyJWKS) JWKS() []byte { return emptyJWKSBody }

// JWKSMaxAge returns e.MaxAge.
func (e EmptyJWKS) JWKSMaxAge() time.Duration { return e.MaxAge }

// defaultJWKSMaxAge is the cache lifetime of the empty set served when no source is given.
const defaultJWKSMaxAge = 5 * time.Minute

// GetJWKS serves the published public keys with the cache lifetime the key store promises.
func (a *API) GetJWKS(context.Context, api.GetJWKSRequestObject) (api.GetJWKSResponseObject, error) {
	src := a.jwks
	if src == nil {
		src = EmptyJWKS{MaxAge: defaultJWKSMaxAge}
	}
	cc := "public, max-age=" + strconv.FormatInt(int64(src.JWKSMaxAge()/time.Second), 10)
	return api.GetJWKS200ApplicationJwkSetPlusJSONResponse{
		Body:    src.JWKS(),
		Headers: api.GetJWKS200ResponseHeaders{CacheControl: &cc},
	}, nil
}
