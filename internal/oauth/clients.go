package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// ClientType is confidential (it can keep a secret: a server-side web app, a service) or
// public (it cannot: a native or single-page app).
type ClientType string

const (
	ClientConfidential ClientType = "confidential"
	ClientPublic       ClientType = "public"
)

// GrantType is a grant a client may use at the token endpoint.
type GrantType string

const (
	GrantAuthorizationCode GrantType = "authorization_code"
	GrantRefreshToken      GrantType = "refresh_token"
	GrantClientCredentials GrantType = "client_credentials"
	GrantPassword          GrantType = "password"
)

// GrantTypes lists every grant type, in the order metadata advertises them.
var GrantTypes = []GrantType{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantPassword}

// AuthMethod is how a client authenticates at the token endpoint (RFC 7591 §2).
type AuthMethod string

const (
	AuthClientSecretBasic AuthMethod = "client_secret_basic"
	AuthClientSecretPost  AuthMethod = "client_secret_post"
	AuthNone              AuthMethod = "none"
)

// IDTokenAlgs lists the algorithms a client may ask its ID tokens to be signed with.
var IDTokenAlgs = []string{"RS256", "ES256", "EdDSA"}

// Limits on a client's registration.
const (
	maxClientNameLen = 100
	clientIDBytes    = 16
	// maxClientIDLen bounds a client id presented by a request; longer ones are unknown
	// without asking the database. Authly's own are 22 characters.
	maxClientIDLen = 128
)

// Client is a registered OAuth client. Its secret is never part of it: only its digest is
// stored, and the secret itself is returned once, by CreateClient and RotateClientSecret.
type Client struct {
	ID                      string
	Name                    string
	Type                    ClientType
	RedirectURIs            []string
	PostLogoutRedirectURIs  []string
	GrantTypes              []GrantType
	Scopes                  []string // the scopes the client may request, sorted
	SkipConsent             bool
	TokenEndpointAuthMethod AuthMethod
	// IDTokenSignedResponseAlg is empty for the server's default.
	IDTokenSignedResponseAlg string
	CreatedAt                time.Time
	UpdatedAt                time.Time
	// SecretRotatedAt is when the secret was last replaced; nil if never.
	SecretRotatedAt *time.Time
}

// HasGrant reports whether the client may use grant g.
func (c Client) HasGrant(g GrantType) bool { return slices.Contains(c.GrantTypes, g) }

// CheckGrant answers whether the client may use a grant at the token endpoint:
// unsupported_grant_type for a grant Authly does not know, unauthorized_client for one the
// client is not allowed (RFC 6749 §5.2).
func (c Client) CheckGrant(grantType string) error {
	g := GrantType(grantType)
	if !slices.Contains(GrantTypes, g) {
		return errorf(CodeUnsupportedGrantType, "grant_type", "The grant type is not supported.")
	}
	if !c.HasGrant(g) {
		return errorf(CodeUnauthorizedClient, "grant_type", "The client is not allowed to use this grant type.")
	}
	return nil
}

func clientFromRow(r db.OauthClient, scopes []string) Client {
	c := Client{
		ID:                      r.ClientID,
		Name:                    r.Name,
		Type:                    ClientType(r.ClientType),
		RedirectURIs:            r.RedirectUris,
		PostLogoutRedirectURIs:  r.PostLogoutRedirectUris,
		Scopes:                  scopes,
		SkipConsent:             r.SkipConsent,
		TokenEndpointAuthMethod: AuthMethod(r.TokenEndpointAuthMethod),
		CreatedAt:               r.CreatedAt,
		UpdatedAt:               r.UpdatedAt,
		SecretRotatedAt:         r.SecretRotatedAt,
	}
	for _, g := range r.GrantTypes {
		c.GrantTypes = append(c.GrantTypes, GrantType(g))
	}
	if r.IDTokenSignedResponseAlg != nil {
		c.IDTokenSignedResponseAlg = *r.IDTokenSignedResponseAlg
	}
	return c
}

// ClientMetadata is what an admin sets on a client.
type ClientMetadata struct {
	Name                   string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []GrantType
	Scopes                 []string
	SkipConsent            bool
	// TokenEndpointAuthMethod empty picks the type's default: none for a public client,
	// client_secret_basic for a confidential one.
	TokenEndpointAuthMethod AuthMethod
	// IDTokenSignedResponseAlg empty is the server's default.
	IDTokenSignedResponseAlg string
}

// NewClient is a client to register.
type NewClient struct {
	Type ClientType
	ClientMetadata
}

// ClientUpdate changes a client; nil fields are kept. A client's type cannot change: a
// public client has no secret to authenticate with, and a confidential one's secret would
// be left behind, so register a new client instead.
type ClientUpdate struct {
	Name                     *string
	RedirectURIs             *[]string
	PostLogoutRedirectURIs   *[]string
	GrantTypes               *[]GrantType
	Scopes                   *[]string
	SkipConsent              *bool
	TokenEndpointAuthMethod  *AuthMethod
	IDTokenSignedResponseAlg *string
}

func metadataOf(c Client) ClientMetadata {
	return ClientMetadata{
		Name:                     c.Name,
		RedirectURIs:             c.RedirectURIs,
		PostLogoutRedirectURIs:   c.PostLogoutRedirectURIs,
		GrantTypes:               c.GrantTypes,
		Scopes:                   c.Scopes,
		SkipConsent:              c.SkipConsent,
		TokenEndpointAuthMethod:  c.TokenEndpointAuthMethod,
		IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg,
	}
}

func (u ClientUpdate) apply(m ClientMetadata) ClientMetadata {
	if u.Name != nil {
		m.Name = *u.Name
	}
	if u.RedirectURIs != nil {
		m.RedirectURIs = *u.RedirectURIs
	}
	if u.PostLogoutRedirectURIs != nil {
		m.PostLogoutRedirectURIs = *u.PostLogoutRedirectURIs
	}
	if u.GrantTypes != nil {
		m.GrantTypes = *u.GrantTypes
	}
	if u.Scopes != nil {
		m.Scopes = *u.Scopes
	}
	if u.SkipConsent != nil {
		m.SkipConsent = *u.SkipConsent
	}
	if u.TokenEndpointAuthMethod != nil {
		m.TokenEndpointAuthMethod = *u.TokenEndpointAuthMethod
	}
	if u.IDTokenSignedResponseAlg != nil {
		m.IDTokenSignedResponseAlg = *u.IDTokenSignedResponseAlg
	}
	return m
}

func metadataError(field, format string, args ...any) *Error {
	return errorf(CodeInvalidClientMetadata, field, format, args...)
}

// normalize checks a client's metadata for its type and returns it cleaned up: the name
// trimmed, lists without repeats (scopes sorted), the default auth method filled in. The
// scopes' existence is checked by the database. It returns invalid_client_metadata or
// invalid_redirect_uri naming the field.
func (m ClientMetadata) normalize(typ ClientType) (ClientMetadata, error) {
	if typ != ClientConfidential && typ != ClientPublic {
		return m, metadataError("type", "The client type must be confidential or public.")
	}
	m.Name = strings.TrimSpace(m.Name)
	if msg := validateText(m.Name, maxClientNameLen, false); msg != "" {
		return m, metadataError("name", "The name %s.", msg)
	}

	switch m.TokenEndpointAuthMethod {
	case "":
		m.TokenEndpointAuthMethod = AuthClientSecretBasic
		if typ == ClientPublic {
			m.TokenEndpointAuthMethod = AuthNone
		}
	case AuthNone:
		if typ != ClientPublic {
			return m, metadataError("token_endpoint_auth_method", "A confidential client authenticates with client_secret_basic or client_secret_post.")
		}
	case AuthClientSecretBasic, AuthClientSecretPost:
		if typ != ClientConfidential {
			return m, metadataError("token_endpoint_auth_method", "A public client has no secret: its token_endpoint_auth_method is none.")
		}
	default:
		return m, metadataError("token_endpoint_auth_method", "The token endpoint auth method must be client_secret_basic, client_secret_post or none.")
	}

	var grants []GrantType
	for _, g := range m.GrantTypes {
		if !slices.Contains(GrantTypes, g) {
			return m, metadataError("grant_types", "The grant types must be among authorization_code, refresh_token, client_credentials and password.")
		}
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	m.GrantTypes = grants
	has := func(g GrantType) bool { return slices.Contains(grants, g) }
	switch {
	case len(grants) == 0:
		return m, metadataError("grant_types", "At least one grant type is required.")
	case typ == ClientPublic && has(GrantClientCredentials):
		return m, metadataError("grant_types", "A public client cannot use client_credentials: it has no credentials.")
	case typ == ClientPublic && has(GrantPassword):
		return m, metadataError("grant_types", "A public client cannot use the password grant.")
	case has(GrantRefreshToken) && !has(GrantAuthorizationCode) && !has(GrantPassword):
		return m, metadataError("grant_types", "refresh_token needs authorization_code or password, the grants that issue refresh tokens.")
	}

	var err error
	if m.RedirectURIs, err = normalizeRedirectURIs("redirect_uris", m.RedirectURIs, typ); err != nil {
		return m, err
	}
	if m.PostLogoutRedirectURIs, err = normalizeRedirectURIs("post_logout_redirect_uris", m.PostLogoutRedirectURIs, typ); err != nil {
		return m, err
	}
	if has(GrantAuthorizationCode) && len(m.RedirectURIs) == 0 {
		return m, errorf(CodeInvalidRedirectURI, "redirect_uris", "The authorization_code grant needs at least one redirect URI.")
	}

	scopes := []string{}
	for _, sc := range m.Scopes {
		if !validScopeToken(sc) {
			return m, metadataError("scopes", "A scope name is malformed.")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	slices.Sort(scopes)
	m.Scopes = scopes
	if slices.Contains(scopes, ScopeOfflineAccess) && !has(GrantRefreshToken) {
		return m, metadataError("scopes", "offline_access asks for a refresh token: the client needs the refresh_token grant.")
	}

	// Consent is what stops an app from passing itself off as another. Any app on a device
	// can receive a redirect to a loopback port or a private-use scheme (RFC 8252 §8.6), so a
	// public client may skip consent only when all its redirect URIs are https.
	if m.SkipConsent && typ == ClientPublic && slices.ContainsFunc(m.RedirectURIs, isClaimableRedirectURI) {
		return m, metadataError("skip_consent", "A public client may skip consent only when all its redirect URIs are https.")
	}

	if m.IDTokenSignedResponseAlg != "" && !slices.Contains(IDTokenAlgs, m.IDTokenSignedResponseAlg) {
		return m, metadataError("id_token_signed_response_alg", "The ID token algorithm must be RS256, ES256 or EdDSA.")
	}
	return m, nil
}

func normalizeRedirectURIs(field string, uris []string, typ ClientType) ([]string, error) {
	out := []string{}
	for _, u := range uris {
		if msg := validateRedirectURI(u, typ); msg != "" {
			return nil, errorf(CodeInvalidRedirectURI, field, "A redirect URI %s.", msg)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	if len(out) > maxRedirectURIs {
		return nil, errorf(CodeInvalidRedirectURI, field, "At most 20 redirect URIs may be registered.")
	}
	return out, nil
}

func grantStrings(gs []GrantType) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = string(g)
	}
	return out
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// setClientScopes stores a client's allowed scopes; one that is not registered is
// invalid_client_metadata.
func setClientScopes(ctx context.Context, q *db.Queries, clientID string, scopes []string) error {
	err := q.SetOAuthClientScopes(ctx, db.SetOAuthClientScopesParams{ClientID: clientID, Scopes: scopes})
	if isViolation(err, foreignKeyViolation, "oauth_client_scopes_scope_fkey") {
		return metadataError("scopes", "A scope is not registered.")
	}
	return err
}

// CreateClient registers a client. For a confidential client it also returns its secret:
// 256 random bits, shown this once and stored only as a digest.
//
// Errors: invalid_client_metadata, invalid_redirect_uri (naming the field);
// server_error, temporarily_unavailable.
func (s *Service) CreateClient(ctx context.Context, actor Actor, in NewClient) (Client, string, error) {
	m, err := in.normalize(in.Type)
	if err != nil {
		return Client{}, "", err
	}
	id, err := s.randomString(clientIDBytes)
	if err != nil {
		return Client{}, "", err
	}
	var secret string
	var secretHash []byte
	if in.Type == ClientConfidential {
		if secret, err = s.randomString(secretBytes); err != nil {
			return Client{}, "", err
		}
		secretHash = s.hashClientSecret(secret)
	}
	var c Client
	err = s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.CreateOAuthClient(ctx, db.CreateOAuthClientParams{
			ClientID:                 id,
			Name:                     m.Name,
			ClientType:               string(in.Type),
			SecretHash:               secretHash,
			RedirectUris:             m.RedirectURIs,
			PostLogoutRedirectUris:   m.PostLogoutRedirectURIs,
			GrantTypes:               grantStrings(m.GrantTypes),
			SkipConsent:              m.SkipConsent,
			TokenEndpointAuthMethod:  string(m.TokenEndpointAuthMethod),
			IDTokenSignedResponseAlg: optionalString(m.IDTokenSignedResponseAlg),
			Now:                      s.now(),
		})
		if err != nil {
			return err
		}
		if err := setClientScopes(ctx, q, id, m.Scopes); err != nil {
			return err
		}
		c = clientFromRow(row, m.Scopes)
		return s.audit(ctx, q, auditEvent{Type: AuditClientCreated, Actor: actor, Details: map[string]any{
			"client_id": id, "name": m.Name, "type": in.Type, "grant_types": m.GrantTypes,
			"redirect_uris": m.RedirectURIs, "scopes": m.Scopes, "skip_consent": m.SkipConsent,
		}})
	})
	if err != nil {
		return Client{}, "", err
	}
	return c, secret, nil
}

// GetClient returns a client by its id.
//
// Errors: not_found; server_error, temporarily_unavailable.
func (s *Service) GetClient(ctx context.Context, id string) (Client, error) {
	row, err := s.q.GetOAuthClient(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Client{}, errNotFound("client")
	}
	if err != nil {
		return Client{}, dbError(err)
	}
	return clientFromRow(row.OauthClient, row.Scopes), nil
}

// ListClients returns a page of clients, newest first: limit (1-100) clients after the
// first skip.
//
// Errors: invalid_request; server_error, temporarily_unavailable.
func (s *Service) ListClients(ctx context.Context, skip, limit int) ([]Client, error) {
	if skip < 0 || skip > 1<<30 {
		return nil, errorf(CodeInvalidRequest, "skip", "skip must be at least 0.")
	}
	if limit < 1 || limit > 100 {
		return nil, errorf(CodeInvalidRequest, "limit", "limit must be between 1 and 100.")
	}
	rows, err := s.q.ListOAuthClients(ctx, db.ListOAuthClientsParams{SkipRows: int32(skip), MaxRows: int32(limit)})
	if err != nil {
		return nil, dbError(err)
	}
	out := make([]Client, len(rows))
	for i, r := range rows {
		out[i] = clientFromRow(r.OauthClient, r.Scopes)
	}
	return out, nil
}

// UpdateClient changes a client's metadata; the result is checked as a whole, as at
// registration. Its codes, consents and tokens are kept: narrowing what a client may do
// applies to its next authorization request and refresh.
//
// Errors: not_found; invalid_client_metadata, invalid_redirect_uri; server_error,
// temporarily_unavailable.
func (s *Service) UpdateClient(ctx context.Context, actor Actor, id string, u ClientUpdate) (Client, error) {
	var c Client
	err := s.inTx(ctx, func(q *db.Queries) error {
		cur, err := q.GetOAuthClientForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound("client")
		}
		if err != nil {
			return err
		}
		old := clientFromRow(cur.OauthClient, cur.Scopes)
		m, err := u.apply(metadataOf(old)).normalize(old.Type)
		if err != nil {
			return err
		}
		row, err := q.UpdateOAuthClient(ctx, db.UpdateOAuthClientParams{
			ClientID:                 id,
			Name:                     m.Name,
			RedirectUris:             m.RedirectURIs,
			PostLogoutRedirectUris:   m.PostLogoutRedirectURIs,
			GrantTypes:               grantStrings(m.GrantTypes),
			SkipConsent:              m.SkipConsent,
			TokenEndpointAuthMethod:  string(m.TokenEndpointAuthMethod),
			IDTokenSignedResponseAlg: optionalString(m.IDTokenSignedResponseAlg),
		})
		if err != nil {
			return err
		}
		if err := setClientScopes(ctx, q, id, m.Scopes); err != nil {
			return err
		}
		c = clientFromRow(row, m.Scopes)
		return s.audit(ctx, q, auditEvent{Type: AuditClientUpdated, Actor: actor, Details: map[string]any{
			"client_id": id, "changes": clientChanges(old, c),
		}})
	})
	return c, err
}

// clientChanges names the fields that differ between two versions of a client, with their
// new values.
func clientChanges(old, cur Client) map[string]any {
	ch := map[string]any{}
	if old.Name != cur.Name {
		ch["name"] = cur.Name
	}
	if !slices.Equal(old.RedirectURIs, cur.RedirectURIs) {
		ch["redirect_uris"] = cur.RedirectURIs
	}
	if !slices.Equal(old.PostLogoutRedirectURIs, cur.PostLogoutRedirectURIs) {
		ch["post_logout_redirect_uris"] = cur.PostLogoutRedirectURIs
	}
	if !slices.Equal(old.GrantTypes, cur.GrantTypes) {
		ch["grant_types"] = cur.GrantTypes
	}
	if !slices.Equal(old.Scopes, cur.Scopes) {
		ch["scopes"] = cur.Scopes
	}
	if old.SkipConsent != cur.SkipConsent {
		ch["skip_consent"] = cur.SkipConsent
	}
	if old.TokenEndpointAuthMethod != cur.TokenEndpointAuthMethod {
		ch["token_endpoint_auth_method"] = cur.TokenEndpointAuthMethod
	}
	if old.IDTokenSignedResponseAlg != cur.IDTokenSignedResponseAlg {
		ch["id_token_signed_response_alg"] = cur.IDTokenSignedResponseAlg
	}
	return ch
}

// DeleteClient deletes a client. Its codes, consents, sessions and tokens are deleted with
// it, so every token it holds stops working at once.
//
// Errors: not_found; server_error, temporarily_unavailable.
func (s *Service) DeleteClient(ctx context.Context, actor Actor, id string) error {
	return s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.DeleteOAuthClient(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound("client")
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, q, auditEvent{Type: AuditClientDeleted, Actor: actor,
			Details: map[string]any{"client_id": row.ClientID, "name": row.Name}})
	})
}

// RotateClientSecret gives a confidential client a new secret, returned this once. The old
// secret stops working at once; tokens already issued are kept.
//
// Errors: not_found; invalid_request (a public client, which has no secret); server_error,
// temporarily_unavailable.
func (s *Service) RotateClientSecret(ctx context.Context, actor Actor, id string) (Client, string, error) {
	secret, err := s.randomString(secretBytes)
	if err != nil {
		return Client{}, "", err
	}
	var c Client
	err = s.inTx(ctx, func(q *db.Queries) error {
		cur, err := q.GetOAuthClientForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound("client")
		}
		if err != nil {
			return err
		}
		if ClientType(cur.OauthClient.ClientType) != ClientConfidential {
			return errorf(CodeInvalidRequest, "type", "A public client has no secret to rotate.")
		}
		row, err := q.RotateOAuthClientSecret(ctx, db.RotateOAuthClientSecretParams{
			ClientID: id, SecretHash: s.hashClientSecret(secret), Now: s.now(),
		})
		if err != nil {
			return err
		}
		c = clientFromRow(row, cur.Scopes)
		return s.audit(ctx, q, auditEvent{Type: AuditClientSecretRotated, Actor: actor,
			Details: map[string]any{"client_id": id}})
	})
	if err != nil {
		return Client{}, "", err
	}
	return c, secret, nil
}

// ClientCredentials is what a token request presents to authenticate its client (RFC 6749
// §2.3.1), as the transport found it.
type ClientCredentials struct {
	// HasBasic is set when the request carried HTTP Basic credentials; BasicUser and
	// BasicPassword are still form-urlencoded, as client_secret_basic sends them.
	HasBasic      bool
	BasicUser     string
	BasicPassword string
	// ClientID and ClientSecret are the body parameters; empty when absent.
	ClientID     string
	ClientSecret string
}

// AuthenticateClient identifies the client of a token request and checks its credentials:
// client_secret_basic, client_secret_post, or none for a public client, each only for a
// client registered with that method. A secret is compared as a digest, in constant time;
// an unknown client costs the same comparison as a wrong secret.
//
// Errors: invalid_request (no client identified, or two methods at once, RFC 6749 §2.3);
// invalid_client (every failed authentication alike: the transport answers 401, with
// WWW-Authenticate: Basic when HasBasic); server_error, temporarily_unavailable.
func (s *Service) AuthenticateClient(ctx context.Context, cred ClientCredentials) (Client, error) {
	var id, secret string
	var method AuthMethod
	switch {
	case cred.HasBasic:
		if cred.ClientSecret != "" {
			return Client{}, errorf(CodeInvalidRequest, "client_secret", "Use one client authentication method, not several.")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(cred.BasicUser)
		secret, err2 = url.QueryUnescape(cred.BasicPassword)
		if err1 != nil || err2 != nil || id == "" {
			return Client{}, errInvalidClient("malformed basic credentials")
		}
		if cred.ClientID != "" && cred.ClientID != id {
			return Client{}, errorf(CodeInvalidRequest, "client_id", "The client_id parameter does not match the authenticated client.")
		}
		method = AuthClientSecretBasic
	case cred.ClientSecret != "":
		if cred.ClientID == "" {
			return Client{}, errorf(CodeInvalidRequest, "client_id", "The client_id parameter is missing.")
		}
		id, secret, method = cred.ClientID, cred.ClientSecret, AuthClientSecretPost
	case cred.ClientID != "":
		id, method = cred.ClientID, AuthNone
	default:
		return Client{}, errorf(CodeInvalidRequest, "client_id", "The client is not identified: send client_id, or authenticate it.")
	}

	var row db.GetOAuthClientRow
	err := pgx.ErrNoRows
	if len(id) <= maxClientIDLen {
		row, err = s.q.GetOAuthClient(ctx, id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		if method != AuthNone {
			subtle.ConstantTimeCompare(s.hashClientSecret(secret), s.dummySecretHash)
		}
		return Client{}, errInvalidClient("unknown client")
	}
	if err != nil {
		return Client{}, dbError(err)
	}
	c := clientFromRow(row.OauthClient, row.Scopes)
	if c.TokenEndpointAuthMethod != method {
		return Client{}, errInvalidClient("the client authenticates with " + string(c.TokenEndpointAuthMethod) + ", not " + string(method))
	}
	if method != AuthNone && subtle.ConstantTimeCompare(s.hashClientSecret(secret), row.OauthClient.SecretHash) != 1 {
		return Client{}, errInvalidClient("wrong client secret")
	}
	return c, nil
}
