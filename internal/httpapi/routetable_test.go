package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

// contractOp is one operation of openapi.yaml.
type contractOp struct {
	Method, Path string // as openapi.yaml writes them: "GET", "/api/v1/users/{user_id}"
	Item         *openapi3.PathItem
	Op           *openapi3.Operation
}

func (o contractOp) String() string { return o.Method + " " + o.Path }

// secured reports whether the operation takes a bearer token.
func (o contractOp) secured(spec *openapi3.T) bool {
	security := spec.Security
	if o.Op.Security != nil {
		security = *o.Op.Security
	}
	return len(security) > 0
}

// page reports whether the operation answers an HTML page.
func (o contractOp) page() bool {
	for _, r := range o.Op.Responses.Map() {
		if r.Value != nil && r.Value.Content.Get("text/html") != nil {
			return true
		}
	}
	return false
}

// contractOps lists every operation of openapi.yaml, in a fixed order: the route table the
// tests below walk. An operation added to the contract is walked with no change here.
func contractOps(t *testing.T) (*openapi3.T, []contractOp) {
	t.Helper()
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	var ops []contractOp
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, contractOp{Method: method, Path: path, Item: item, Op: op})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return spec, ops
}

// routeFixture makes one real request for any operation of the contract: its path
// parameters, query and body are the contract's own examples, except where the fixture has
// better values, so that most requests succeed. The contract's examples name the user alice
// with the tests' password, and the fixture has her, verified, beside the admin root. A
// request that changes something works on things of its own (a fresh user to delete, a
// fresh session to revoke, a fresh refresh token), so that sending it again answers the
// same.
type routeFixture struct {
	e     *env
	alice uuid.UUID
	n     int // for unique names
}

func newRouteFixture(e *env) *routeFixture {
	e.t.Helper()
	e.seedAdmin()
	e.seedUser("alice")
	f := &routeFixture{e: e}
	f.alice = f.userID("alice")
	return f
}

// userID is the id of the user with the given name.
func (f *routeFixture) userID(username string) uuid.UUID {
	f.e.t.Helper()
	var id uuid.UUID
	if err := f.e.pool.QueryRow(context.Background(), "SELECT id FROM users WHERE username = $1", username).Scan(&id); err != nil {
		f.e.t.Fatal(err)
	}
	return id
}

// pair logs username in without HTTP, so that no rate limit is spent.
func (f *routeFixture) pair(username string) service.TokenPair {
	f.e.t.Helper()
	// Sessions opened at one instant have no oldest, which the session cap would revoke.
	f.e.clock.Advance(time.Second)
	pair, _, err := f.e.svc.PasswordLogin(context.Background(), username, testPassword, service.Client{IP: "192.0.2.1"})
	if err != nil {
		f.e.t.Fatalf("logging %s in: %v", username, err)
	}
	return pair
}

func (f *routeFixture) token(username string) string { return f.pair(username).AccessToken }

// fresh registers and verifies a user of its own and returns its id.
func (f *routeFixture) fresh() string {
	f.e.t.Helper()
	f.n++
	name := fmt.Sprintf("fixture-%d", f.n)
	f.e.seedUser(name)
	return f.userID(name).String()
}

// request builds one real request for o at path, which is o's path with its parameters
// filled in, possibly with a suffix such as a trailing slash; base is the server's URL.
func (f *routeFixture) request(o contractOp, base string, suffix string) *http.Request {
	t := f.e.t
	t.Helper()
	spec, err := api.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"user_id": f.alice.String()}
	bearerToken := ""
	if o.secured(spec) {
		bearerToken = f.token("root")
	}
	var body []byte
	contentType := ""
	// The embedded spec names operations as Go does (DeleteUser for deleteUser).
	switch strings.ToLower(o.Op.OperationID) {
	case "deleteuser":
		values["user_id"] = f.fresh()
	case "revokemysession":
		// alice revokes the session of the token she sends.
		bearerToken = f.token("alice")
		values["session_id"] = sessionOf(t, bearerToken).String()
	case "createuser":
		f.n++
		name := fmt.Sprintf("newcomer-%d", f.n)
		body, contentType = mustJSON(t, api.UserCreate{Username: name, Email: name + "@example.com", Password: testPassword}), "application/json"
	case "refreshtoken":
		body, contentType = mustJSON(t, api.RefreshRequest{GrantType: api.RefreshRequestGrantTypeRefreshToken, RefreshToken: f.pair("alice").RefreshToken}), "application/json"
	}
	if body == nil && o.Op.RequestBody != nil {
		body, contentType = exampleBody(t, o.Op.RequestBody.Value)
	}
	path := o.Path
	query := url.Values{}
	for _, p := range append(slices.Clone(o.Item.Parameters), o.Op.Parameters...) {
		// The fixture's values first, then the examples of the parameters that must be
		// sent; an optional query parameter is left out unless the fixture has a value.
		v, ok := values[p.Value.Name]
		if !ok && p.Value.Example != nil && (p.Value.Required || p.Value.In == openapi3.ParameterInPath) {
			v, ok = fmt.Sprint(p.Value.Example), true
		}
		switch {
		case p.Value.In == openapi3.ParameterInPath:
			path = strings.ReplaceAll(path, "{"+p.Value.Name+"}", url.PathEscape(v))
		case p.Value.In == openapi3.ParameterInQuery && ok:
			query.Set(p.Value.Name, v)
		}
	}
	target := base + path + suffix
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequest(o.Method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	return req
}

// exampleBody is a request body's first example, in its first media type by name.
func exampleBody(t *testing.T, rb *openapi3.RequestBody) ([]byte, string) {
	t.Helper()
	types := make([]string, 0, len(rb.Content))
	for ct := range rb.Content {
		types = append(types, ct)
	}
	sort.Strings(types)
	ct := types[0]
	media := rb.Content[ct]
	example := media.Example
	if example == nil {
		names := make([]string, 0, len(media.Examples))
		for name := range media.Examples {
			names = append(names, name)
		}
		sort.Strings(names)
		if len(names) == 0 {
			t.Fatalf("a %s request body has no example", ct)
		}
		example = media.Examples[names[0]].Value.Value
	}
	if ct == "application/x-www-form-urlencoded" {
		form := url.Values{}
		for k, v := range example.(map[string]any) {
			form.Set(k, fmt.Sprint(v))
		}
		return []byte(form.Encode()), ct
	}
	if s, ok := example.(string); ok && !strings.HasSuffix(ct, "json") {
		return []byte(s), ct
	}
	return mustJSON(t, example), ct
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unservedMethod is a method that o's path does not serve, and the methods it does serve,
// in the order an Allow header names them.
func unservedMethod(o contractOp) (string, []string) {
	var served []string
	unserved := ""
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if o.Item.GetOperation(m) != nil {
			served = append(served, m)
		} else if unserved == "" {
			unserved = m
		}
	}
	return unserved, served
}
