package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/pkg/verify"
)

const (
	keysAdmin    = "keysadmin"
	keysPassword = "keys-admin-password-for-tests"
)

// keysVars are the variables of a server on url with a bootstrap admin, and extra ones.
func keysVars(t *testing.T, url string, kv ...string) map[string]string {
	vars := map[string]string{
		"DATABASE_URL": url, "AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_BCRYPT_COST": "4",
		"AUTHLY_MAIL_DIR":       t.TempDir(),
		"AUTHLY_ADMIN_USERNAME": keysAdmin, "AUTHLY_ADMIN_EMAIL": "keysadmin@example.com", "AUTHLY_ADMIN_PASSWORD": keysPassword,
	}
	for i := 0; i < len(kv); i += 2 {
		vars[kv[i]] = kv[i+1]
	}
	return vars
}

// tokensFrom logs the bootstrap admin in on base and returns the access and refresh tokens.
func tokensFrom(t *testing.T, base string) (access, refresh string) {
	t.Helper()
	resp, err := http.Post(base+"/api/v1/auth/token", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"grant_type": {"password"}, "username": {keysAdmin}, "password": {keysPassword}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.AccessToken, body.RefreshToken
}

// meStatus is the status of GET /api/v1/users/me with the bearer token.
func meStatus(t *testing.T, base, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// jwksFrom fetches base's JWKS and checks its content type.
func jwksFrom(t *testing.T, base string) (body []byte, cacheControl string) {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("GET /.well-known/jwks.json: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return body, resp.Header.Get("Cache-Control")
}

// jwksKids are the kids of a JWKS, in order, after checking that no key has a private or
// symmetric member.
func jwksKids(t *testing.T, body []byte) []string {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	kids := []string{}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Fatalf("the JWKS has the private member %q: %s", private, body)
			}
		}
		if k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("key without use=sig or kid: %v", k)
		}
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

// header decodes a token's JOSE header.
func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	part, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestServeSignsES256ByDefaultAndPublishesTheJWKS starts serve with nothing about tokens
// but a KEK: tokens are ES256 with a kid, and verify offline against the served JWKS, with
// pkg/verify and with golang-jwt on its own.
func TestServeSignsES256ByDefaultAndPublishesTheJWKS(t *testing.T) {
	base, stop := startServe(t, keysVars(t, testdb.URL(t), "AUTHLY_KEY_ENCRYPTION_KEY", testKEK, "AUTHLY_ISSUER", "https://auth.example.test"))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	access, refresh := tokensFrom(t, base)
	h := header(t, access)
	if h["alg"] != "ES256" || h["typ"] != "at+jwt" || h["kid"] == nil || h["kid"] == "" {
		t.Fatalf("access token header %v", h)
	}
	if rh := header(t, refresh); rh["alg"] != "ES256" || rh["kid"] != h["kid"] {
		t.Fatalf("refresh token header %v", rh)
	}
	if got := meStatus(t, base, access); got != http.StatusOK {
		t.Fatalf("GET /users/me with the ES256 token: %d", got)
	}

	body, cc := jwksFrom(t, base)
	if cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q, want public, max-age=300", cc)
	}
	kids := jwksKids(t, body)
	if len(kids) != 2 || kids[0] != h["kid"] {
		t.Fatalf("JWKS kids %v: want the current key %v first, then the next one", kids, h["kid"])
	}

	// pkg/verify, as a resource server would use it.
	v, err := verify.New(verify.Options{JWKSURL: base + "/.well-known/jwks.json", Issuer: "https://auth.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(t.Context(), access)
	if err != nil {
		t.Fatalf("pkg/verify refused the access token: %v", err)
	}
	if claims.KeyID != h["kid"] || claims.Subject == "" || claims.SessionID == "" {
		t.Fatalf("claims %+v", claims)
	}
	if _, err := v.Verify(t.Context(), refresh); !errors.Is(err, verify.ErrInvalidToken) {
		t.Fatalf("pkg/verify accepted a refresh token: %v", err)
	}
	wrongIssuer, err := verify.New(verify.Options{JWKSURL: base + "/.well-known/jwks.json", Issuer: "authly"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrongIssuer.Verify(t.Context(), access); err == nil {
		t.Fatal("pkg/verify accepted a token of another issuer")
	}

	// golang-jwt alone, with the keys of the JWKS.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(access, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 || !keys[0].IsPublic() {
			return nil, errors.New("no such public key")
		}
		return keys[0].Key, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer("https://auth.example.test"), jwt.WithExpirationRequired())
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt refused the token with the JWKS keys: %v", err)
	}
}

// TestServeKeepsAnHS256DeploymentUnchanged: JWT_ALGORITHM=HS256 with the two secrets and no
// KEK signs as before, with the configured issuer, and serves an empty JWKS.
func TestServeKeepsAnHS256DeploymentUnchanged(t *testing.T) {
	base, stop := startServe(t, keysVars(t, testdb.URL(t), "JWT_ALGORITHM", "HS256", "JWT_SECRET_KEY", secretA,
		"JWT_REFRESH_SECRET_KEY", secretB, "AUTHLY_ISSUER", "https://legacy.example.test", "AUTHLY_JWKS_MAX_AGE", "90s"))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	access, _ := tokensFrom(t, base)
	if h := header(t, access); h["alg"] != "HS256" {
		t.Fatalf("header %v", h)
	}
	parsed, err := jwt.Parse(access, func(*jwt.Token) (any, error) { return []byte(secretA), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("https://legacy.example.test"))
	if err != nil || !parsed.Valid {
		t.Fatalf("the HS256 token does not verify with JWT_SECRET_KEY and the issuer: %v", err)
	}
	if got := meStatus(t, base, access); got != http.StatusOK {
		t.Fatalf("GET /users/me: %d", got)
	}
	body, cc := jwksFrom(t, base)
	if string(bytes.TrimSpace(body)) != `{"keys":[]}` || cc != "public, max-age=90" {
		t.Fatalf("JWKS without a key store: %s, Cache-Control %q", body, cc)
	}
}

// TestServeUnderHS256WithAKEKPublishesES256Keys is the first step of the move from HS256 to
// ES256: tokens stay HS256, and the key store's ES256 keys are published ahead of the switch.
// After the switch, on the same database, the HS256 token still works and new ones are ES256
// with a published kid.
func TestServeUnderHS256WithAKEKPublishesES256Keys(t *testing.T) {
	dbURL := testdb.URL(t)
	vars := keysVars(t, dbURL, "JWT_ALGORITHM", "HS256", "JWT_SECRET_KEY", secretA, "JWT_REFRESH_SECRET_KEY", secretB,
		"AUTHLY_KEY_ENCRYPTION_KEY", testKEK)
	base, stop := startServe(t, vars)
	old, _ := tokensFrom(t, base)
	if h := header(t, old); h["alg"] != "HS256" {
		t.Fatalf("header %v", h)
	}
	body, _ := jwksFrom(t, base)
	before := jwksKids(t, body)
	if len(before) != 2 || !strings.Contains(string(body), `"alg":"ES256"`) {
		t.Fatalf("JWKS under HS256 with a KEK: %s", body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	vars["JWT_ALGORITHM"] = "ES256"
	base, stop = startServe(t, vars)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	if got := meStatus(t, base, old); got != http.StatusOK {
		t.Fatalf("the HS256 token after the switch: %d", got)
	}
	access, _ := tokensFrom(t, base)
	if h := header(t, access); h["alg"] != "ES256" || h["kid"] != before[0] {
		t.Fatalf("after the switch: header %v, published before %v", h, before)
	}
}

// TestServeEmbeddedGeneratesADevelopmentKEK: with no configuration at all, serve signs ES256
// with a key-encryption key it generated in the data directory, saying so in the log.
func TestServeEmbeddedGeneratesADevelopmentKEK(t *testing.T) {
	dataDir := filepath.Join(traversableTempDir(t), "data")
	var logs bytes.Buffer
	base, stop := startServeLogging(t, map[string]string{
		"AUTHLY_DATA_DIR": dataDir, "AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_BCRYPT_COST": "4",
		"AUTHLY_ADMIN_USERNAME": keysAdmin, "AUTHLY_ADMIN_EMAIL": "keysadmin@example.com", "AUTHLY_ADMIN_PASSWORD": keysPassword,
	}, &logs)
	access, _ := tokensFrom(t, base)
	body, _ := jwksFrom(t, base)
	if h := header(t, access); h["alg"] != "ES256" || jwksKids(t, body)[0] != h["kid"] {
		t.Fatalf("header %v, JWKS %s", h, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dataDir, "key-encryption-key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("development KEK: %v %v", info, err)
	}
	if !strings.Contains(logs.String(), "generated a development key-encryption key") {
		t.Fatalf("no warning about the development KEK:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "development JWT secrets") {
		t.Fatalf("JWT secrets generated under ES256:\n%s", logs.String())
	}
}

// keysRun runs "authly keys ARGS" with vars and returns its stdout.
func keysRun(t *testing.T, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"keys"}, args...), envFrom(vars), nil, &stdout, &stderr)
	return stdout.String(), err
}

// eventually polls cond every 100ms for up to 20 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTwoInstancesShareTheKeys runs two servers on one database. They serve the same JWKS
// and accept each other's tokens; "authly keys rotate" is served by both within seconds;
// "authly keys revoke KID" makes a token of that key fail with 401 on both within seconds.
func TestTwoInstancesShareTheKeys(t *testing.T) {
	vars := keysVars(t, testdb.URL(t), "AUTHLY_KEY_ENCRYPTION_KEY", testKEK, "AUTHLY_JWKS_MAX_AGE", "1s")
	baseA, stopA := startServe(t, vars)
	defer func() { _ = stopA() }()
	baseB, stopB := startServe(t, vars)
	defer func() { _ = stopB() }()

	jwksA, _ := jwksFrom(t, baseA)
	jwksB, _ := jwksFrom(t, baseB)
	if !bytes.Equal(jwksA, jwksB) {
		t.Fatalf("the instances serve different JWKS:\n%s\n%s", jwksA, jwksB)
	}
	kids := jwksKids(t, jwksA)
	fromA, _ := tokensFrom(t, baseA)
	if got := meStatus(t, baseB, fromA); got != http.StatusOK {
		t.Fatalf("a token of A on B: %d", got)
	}

	// The next key may sign once published for AUTHLY_JWKS_MAX_AGE plus the poll.
	var out string
	eventually(t, "keys rotate", func() bool {
		var err error
		out, err = keysRun(t, vars, "rotate")
		return err == nil
	})
	if !strings.Contains(out, "rotated: "+kids[1]) {
		t.Fatalf("keys rotate printed %q, want the next key %s", out, kids[1])
	}
	for _, base := range []string{baseA, baseB} {
		eventually(t, "the rotation served by "+base, func() bool {
			body, _ := jwksFrom(t, base)
			k := jwksKids(t, body)
			return k[0] == kids[1]
		})
	}
	fromB, _ := tokensFrom(t, baseB)
	if h := header(t, fromB); h["kid"] != kids[1] {
		t.Fatalf("after the rotation B signs with %v, want %s", h["kid"], kids[1])
	}
	if got := meStatus(t, baseA, fromB); got != http.StatusOK {
		t.Fatalf("a token of B on A: %d", got)
	}
	// The previous key still verifies the tokens it signed.
	if got := meStatus(t, baseB, fromA); got != http.StatusOK {
		t.Fatalf("a token of the previous key: %d", got)
	}

	list, err := keysRun(t, vars, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{kids[0] + "  ES256      previous", kids[1] + "  ES256      current"} {
		if !strings.Contains(list, want) {
			t.Fatalf("keys list lacks %q:\n%s", want, list)
		}
	}

	if out, err := keysRun(t, vars, "revoke", kids[0]); err != nil || !strings.Contains(out, "revoked: "+kids[0]) {
		t.Fatalf("keys revoke: %q %v", out, err)
	}
	for _, base := range []string{baseA, baseB} {
		eventually(t, "the revocation applied by "+base, func() bool { return meStatus(t, base, fromA) == http.StatusUnauthorized })
		body, _ := jwksFrom(t, base)
		if strings.Contains(string(body), kids[0]) {
			t.Fatalf("%s still publishes the revoked key: %s", base, body)
		}
		if got := meStatus(t, base, fromB); got != http.StatusOK {
			t.Fatalf("a token of the current key after revoking the previous one: %d", got)
		}
	}
	list, _ = keysRun(t, vars, "list")
	if !strings.Contains(list, kids[0]+"  ES256      revoked") {
		t.Fatalf("keys list after the revocation:\n%s", list)
	}
	if _, err := keysRun(t, vars, "revoke", "20990101T000000Z-00000000"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("revoking an unknown kid: %v", err)
	}
}

// TestKeysCommandChecksItsArgumentsFirst: a mistyped command line fails with the usage
// before any database is touched (DATABASE_URL points nowhere).
func TestKeysCommandChecksItsArgumentsFirst(t *testing.T) {
	vars := map[string]string{"DATABASE_URL": "postgres://authly@nowhere.invalid/authly", "AUTHLY_KEY_ENCRYPTION_KEY": testKEK}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "keys needs a subcommand"},
		{[]string{"frobnicate"}, `unknown keys subcommand "frobnicate"`},
		{[]string{"list", "extra"}, "keys list takes no arguments"},
		{[]string{"rotate", "now"}, "keys rotate takes no arguments"},
		{[]string{"revoke"}, "keys revoke takes one key id"},
		{[]string{"revoke", "a", "b"}, "keys revoke takes one key id"},
		{[]string{"revoke", "../../etc/passwd"}, "is not a key id"},
		{[]string{"revoke", "x' OR '1'='1"}, "is not a key id"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"keys"}, tc.args...), envFrom(vars), nil, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("keys %q: %v, want %q", tc.args, err, tc.want)
		}
		if !strings.Contains(stderr.String(), "Usage: authly keys list") {
			t.Errorf("keys %q: no usage on stderr: %q", tc.args, stderr.String())
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"keys", "--help"}, envFrom(vars), nil, &stdout, &bytes.Buffer{}); err != nil || !strings.Contains(stdout.String(), "revoke KID") {
		t.Fatalf("keys --help: %v %q", err, stdout.String())
	}
}

// TestKeysCommandWithoutAKeyStore: with HS256 and no KEK there is no store to manage.
func TestKeysCommandWithoutAKeyStore(t *testing.T) {
	vars := map[string]string{"DATABASE_URL": testdb.URL(t), "JWT_ALGORITHM": "HS256", "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB}
	if _, err := keysRun(t, vars, "list"); err == nil || !strings.Contains(err.Error(), "AUTHLY_KEY_ENCRYPTION_KEY") {
		t.Fatalf("keys list without a store: %v", err)
	}
}
