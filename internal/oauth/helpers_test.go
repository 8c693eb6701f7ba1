package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

const testIssuer = "https://auth.example.com"

// clock is a test's settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one test's service on its own fresh database.
type env struct {
	t     *testing.T
	pool  *pgxpool.Pool
	svc   *Service
	clock *clock
	admin Actor
}

func newEnv(t *testing.T, opts ...func(*Options)) *env {
	t.Helper()
	pool := testdb.Pool(t)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	o := Options{DB: pool, Issuer: testIssuer, Clock: c.Now}
	for _, f := range opts {
		f(&o)
	}
	svc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, svc: svc, clock: c}
	e.admin = Actor{UserID: e.user("admin"), IP: "192.0.2.1", UserAgent: "admin-console"}
	return e
}

var ctx = context.Background()

// user creates an active, verified user and returns its id.
func (e *env) user(name string) uuid.UUID {
	e.t.Helper()
	u, err := db.New(e.pool).CreateUser(ctx, db.CreateUserParams{
		Username: name, Email: name + "@example.com", PasswordHash: "not-a-real-hash",
		IsActive: true, IsVerified: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

func (e *env) deactivate(user uuid.UUID) {
	e.t.Helper()
	if _, err := e.pool.Exec(ctx, `UPDATE users SET is_active = false WHERE id = $1`, user); err != nil {
		e.t.Fatal(err)
	}
}

// webApp is a confidential client with the authorization code and refresh token grants.
func webApp() NewClient {
	return NewClient{Type: ClientConfidential, ClientMetadata: ClientMetadata{
		Name:         "Web app",
		RedirectURIs: []string{"https://app.example.com/callback"},
		GrantTypes:   []GrantType{GrantAuthorizationCode, GrantRefreshToken},
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
	}}
}

// nativeApp is a public client with a loopback and a private-use redirect URI.
func nativeApp() NewClient {
	return NewClient{Type: ClientPublic, ClientMetadata: ClientMetadata{
		Name:         "Native app",
		RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.app:/oauth2redirect"},
		GrantTypes:   []GrantType{GrantAuthorizationCode, GrantRefreshToken},
		Scopes:       []string{"openid", "profile"},
	}}
}

func (e *env) client(in NewClient) (Client, string) {
	e.t.Helper()
	c, secret, err := e.svc.CreateClient(ctx, e.admin, in)
	if err != nil {
		e.t.Fatalf("CreateClient: %v", err)
	}
	return c, secret
}

// browserSession signs a user in.
func (e *env) browserSession(user uuid.UUID) (BrowserSession, string) {
	e.t.Helper()
	s, cookie, err := e.svc.CreateBrowserSession(ctx, NewBrowserSession{UserID: user, AMR: []string{"pwd"}, IP: "198.51.100.7", UserAgent: "browser"})
	if err != nil {
		e.t.Fatal(err)
	}
	return s, cookie
}

// The verifier and challenge of RFC 7636 Appendix B.
const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// authParams is a valid authorization request of c.
func authParams(c Client, scope string) AuthorizationParams {
	return AuthorizationParams{
		ResponseType: "code", ClientID: c.ID, RedirectURI: c.RedirectURIs[0], Scope: scope,
		State: "af0ifjsldkj", CodeChallenge: rfcChallenge, CodeChallengeMethod: "S256", Nonce: "n-0S6_WzA2Mj",
	}
}

// authorize runs an authorization request through to its code, with consent given.
func (e *env) authorize(c Client, user uuid.UUID, scope string) (AuthorizationRequest, AuthorizationResponse) {
	e.t.Helper()
	req, err := e.svc.ValidateAuthorizationRequest(ctx, authParams(c, scope))
	if err != nil {
		e.t.Fatalf("ValidateAuthorizationRequest: %v", err)
	}
	sess, _ := e.browserSession(user)
	resp, err := e.svc.Approve(ctx, req, sess, true, Actor{UserID: user})
	if err != nil {
		e.t.Fatalf("Approve: %v", err)
	}
	return req, resp
}

// wantCode fails unless err is an *Error with the code, and a description RFC 6749 allows.
func wantCode(t *testing.T, err error, code ErrorCode) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want an *Error with code %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("error code = %s (%v), want %s", e.Code, e, code)
	}
	if e.Description == "" || !validDescription(e.Description) {
		t.Fatalf("error description %q is empty or has characters error_description does not allow", e.Description)
	}
	return e
}

// validDescription reports whether s uses only the characters RFC 6749 §5.2 allows in
// error_description: %x20-21 / %x23-5B / %x5D-7E.
func validDescription(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// auditEvent is a row of audit_events as a test reads it.
type auditRow struct {
	UserID  *uuid.UUID
	IP      *string
	Details map[string]any
}

// auditEvents returns the events of a type, oldest first.
func (e *env) auditEvents(eventType string) []auditRow {
	e.t.Helper()
	rows, err := e.pool.Query(ctx, `SELECT user_id, ip, details FROM audit_events WHERE event_type = $1 ORDER BY id`, eventType)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		var raw []byte
		if err := r.Scan(&a.UserID, &a.IP, &raw); err != nil {
			return a, err
		}
		return a, json.Unmarshal(raw, &a.Details)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// noSecretIn fails if any audit event's details contain one of the secrets.
func (e *env) noSecretIn(secrets ...string) {
	e.t.Helper()
	var all string
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(string_agg(details::text, ' '), '') FROM audit_events`).Scan(&all); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			e.t.Fatalf("an audit event holds a secret: %s", all)
		}
	}
}

// query parses the query of a redirect URL.
func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// openSession stores a session with an access and a refresh token for a grant, as the token
// endpoint will, and returns its id.
func openSession(ctx context.Context, tx pgx.Tx, g Grant) (uuid.UUID, error) {
	sid := uuid.New()
	now := time.Now()
	_, err := tx.Exec(ctx, `
		WITH s AS (
			INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at, client_id, scope)
			VALUES ($1, $2, $3, $3, $4, $5)
		)
		INSERT INTO tokens (token_jti, token_type, user_id, session_id, expires_at, client_id, scope)
		VALUES ($6, 'access', $2, $1, $3, $4, $5), ($7, 'refresh', $2, $1, $3, $4, $5)`,
		sid, g.UserID, now.Add(time.Hour), g.ClientID, FormatScope(g.Scopes), uuid.NewString(), uuid.NewString())
	return sid, err
}

// liveTokens counts a session's tokens that are not invalidated, and whether it is revoked.
func (e *env) sessionState(sid uuid.UUID) (liveTokens int, revoked bool) {
	e.t.Helper()
	err := e.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM tokens WHERE session_id = $1 AND invalidated_at IS NULL),
		       (SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1)`, sid).Scan(&liveTokens, &revoked)
	if err != nil {
		e.t.Fatal(err)
	}
	return liveTokens, revoked
}
