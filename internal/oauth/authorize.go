package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
)

// ResponseTypeCode is the one response_type: the authorization code flow. The implicit
// flow is gone from OAuth 2.1.
const ResponseTypeCode = "code"

// Limits on an authorization request.
const (
	maxStateLen     = 2048
	maxNonceLen     = 512
	maxResources    = 10
	maxResourceLen  = 2000
	maxMaxAgeSecond = 1 << 30
)

// AuthorizationParams are the parameters of an authorization request, as the query string
// sent them: RFC 6749 §4.1.1, RFC 7636 §4.3, OpenID Connect Core §3.1.2.1 and RFC 8707 §2.
// ParamsFromQuery fills them from a parsed query.
type AuthorizationParams struct {
	ResponseType        string
	ResponseMode        string
	ClientID            string
	RedirectURI         string
	Scope               string
	State               string
	CodeChallenge       string
	CodeChallengeMethod string
	Nonce               string
	Prompt              string
	MaxAge              string
	Resources           []string // resource may appear several times
	Request             string
	RequestURI          string
	// Repeated names the parameters other than resource that appeared more than once: a
	// request must not repeat one (RFC 6749 §3.1).
	Repeated []string
}

// singleParams are the parameters that may appear at most once, as ParamsFromQuery reads
// them.
var singleParams = []string{
	"response_type", "response_mode", "client_id", "redirect_uri", "scope", "state",
	"code_challenge", "code_challenge_method", "nonce", "prompt", "max_age", "request", "request_uri",
}

// ParamsFromQuery reads an authorization request's parameters from its query. Parameters it
// does not know are ignored, as RFC 6749 §3.1 requires.
func ParamsFromQuery(v url.Values) AuthorizationParams {
	p := AuthorizationParams{
		ResponseType:        v.Get("response_type"),
		ResponseMode:        v.Get("response_mode"),
		ClientID:            v.Get("client_id"),
		RedirectURI:         v.Get("redirect_uri"),
		Scope:               v.Get("scope"),
		State:               v.Get("state"),
		CodeChallenge:       v.Get("code_challenge"),
		CodeChallengeMethod: v.Get("code_challenge_method"),
		Nonce:               v.Get("nonce"),
		Prompt:              v.Get("prompt"),
		MaxAge:              v.Get("max_age"),
		Resources:           v["resource"],
		Request:             v.Get("request"),
		RequestURI:          v.Get("request_uri"),
	}
	for _, name := range singleParams {
		if len(v[name]) > 1 {
			p.Repeated = append(p.Repeated, name)
		}
	}
	return p
}

// Prompt is the prompt parameter of OpenID Connect Core §3.1.2.1.
type Prompt struct {
	None          bool // no page may be shown: answer login_required or consent_required instead
	Login         bool // the user must sign in again
	Consent       bool // the user must be asked again
	SelectAccount bool // the user may pick an account: a browser holds one session, so this shows the login page
}

// AuthorizationRequest is a validated authorization request.
type AuthorizationRequest struct {
	Client Client
	// RedirectURI is the one the request named, which the token request must repeat; for
	// a loopback redirect URI it carries the port the request chose.
	RedirectURI   string
	Scopes        []string
	State         string
	CodeChallenge string // S256
	Nonce         string
	Prompt        Prompt
	// MaxAge, when set, is the longest time since the user last signed in that the client
	// accepts.
	MaxAge    *time.Duration
	Resources []string
}

// ValidateAuthorizationRequest checks an authorization request. Its errors are of two
// kinds (RFC 6749 §4.1.2.1):
//   - a missing, repeated or unknown client_id, or a missing, repeated or unregistered
//     redirect_uri: the error is shown to the user, and the browser is never redirected,
//     since the redirect URI cannot be trusted (Redirectable is false);
//   - anything else: the browser goes back to the client with the error (RedirectURL).
//
// redirect_uri is required even when the client registered only one: OpenID Connect
// requires it, and the token request must then repeat it. PKCE with S256 is required of
// every client, confidential ones too (OAuth 2.1 §4.1.1, RFC 9700 §2.1.1).
//
// Errors: shown to the user: invalid_request, invalid_client. Redirected: invalid_request,
// unauthorized_client, unsupported_response_type, invalid_scope, invalid_target,
// request_not_supported, request_uri_not_supported. Either way: server_error,
// temporarily_unavailable.
func (s *Service) ValidateAuthorizationRequest(ctx context.Context, p AuthorizationParams) (AuthorizationRequest, error) {
	shown := func(code ErrorCode, field, desc string) (AuthorizationRequest, error) {
		return AuthorizationRequest{}, errorf(code, field, "%s", desc)
	}
	if slices.Contains(p.Repeated, "client_id") {
		return shown(CodeInvalidRequest, "client_id", "The client_id parameter was repeated.")
	}
	if p.ClientID == "" {
		return shown(CodeInvalidRequest, "client_id", "The client_id parameter is missing.")
	}
	if len(p.ClientID) > maxClientIDLen {
		return shown(CodeInvalidClient, "client_id", "The client is not registered.")
	}
	client, err := s.GetClient(ctx, p.ClientID)
	var oe *Error
	if errors.As(err, &oe) && oe.Code == CodeNotFound {
		return shown(CodeInvalidClient, "client_id", "The client is not registered.")
	}
	if err != nil {
		return AuthorizationRequest{}, err
	}
	if slices.Contains(p.Repeated, "redirect_uri") {
		return shown(CodeInvalidRequest, "redirect_uri", "The redirect_uri parameter was repeated.")
	}
	if p.RedirectURI == "" {
		return shown(CodeInvalidRequest, "redirect_uri", "The redirect_uri parameter is missing.")
	}
	redirectURI, ok := matchRedirectURI(client.RedirectURIs, p.RedirectURI, client.Type)
	if !ok {
		return shown(CodeInvalidRequest, "redirect_uri", "The redirect_uri is not registered for this client.")
	}

	// From here on the redirect URI is the client's own: errors go back to it, with the
	// state when the state itself is sound.
	req := AuthorizationRequest{Client: client, RedirectURI: redirectURI}
	stateOK := !slices.Contains(p.Repeated, "state") && len(p.State) <= maxStateLen
	if stateOK {
		req.State = p.State
	}
	redirected := func(code ErrorCode, field, desc string) (AuthorizationRequest, error) {
		return AuthorizationRequest{}, s.redirectError(req, code, field, desc)
	}
	if !stateOK {
		return redirected(CodeInvalidRequest, "state", "The state parameter is repeated or too long.")
	}
	for _, name := range singleParams {
		if slices.Contains(p.Repeated, name) {
			return redirected(CodeInvalidRequest, name, "A parameter was repeated: "+name+".")
		}
	}
	if p.Request != "" {
		return redirected(CodeRequestNotSupported, "request", "Request objects are not supported.")
	}
	if p.RequestURI != "" {
		return redirected(CodeRequestURINotSupported, "request_uri", "Request objects are not supported.")
	}
	switch p.ResponseType {
	case ResponseTypeCode:
	case "":
		return redirected(CodeInvalidRequest, "response_type", "The response_type parameter is missing.")
	default:
		return redirected(CodeUnsupportedResponseType, "response_type", "Only response_type=code is supported.")
	}
	if p.ResponseMode != "" && p.ResponseMode != "query" {
		return redirected(CodeInvalidRequest, "response_mode", "Only response_mode=query is supported.")
	}
	if !client.HasGrant(GrantAuthorizationCode) {
		return redirected(CodeUnauthorizedClient, "response_type", "The client is not allowed to use the authorization code flow.")
	}

	switch {
	case p.CodeChallenge == "":
		return redirected(CodeInvalidRequest, "code_challenge", "PKCE is required: send code_challenge and code_challenge_method=S256.")
	case p.CodeChallengeMethod != PKCEMethodS256:
		return redirected(CodeInvalidRequest, "code_challenge_method", "Only code_challenge_method=S256 is supported.")
	case !ValidS256Challenge(p.CodeChallenge):
		return redirected(CodeInvalidRequest, "code_challenge", "The code_challenge is not a BASE64URL-encoded SHA-256 digest.")
	}
	req.CodeChallenge = p.CodeChallenge

	scopes, err := client.CheckScopes(p.Scope)
	if err != nil {
		e := AsError(err)
		return redirected(e.Code, e.Field, e.Description)
	}
	req.Scopes = scopes

	if len(p.Nonce) > maxNonceLen {
		return redirected(CodeInvalidRequest, "nonce", "The nonce is too long.")
	}
	req.Nonce = p.Nonce

	if req.Prompt, ok = parsePrompt(p.Prompt); !ok {
		return redirected(CodeInvalidRequest, "prompt", "The prompt parameter must be none, or any of login, consent and select_account.")
	}
	if p.MaxAge != "" {
		n, err := strconv.Atoi(p.MaxAge)
		if err != nil || n < 0 || n > maxMaxAgeSecond || strconv.Itoa(n) != p.MaxAge {
			return redirected(CodeInvalidRequest, "max_age", "The max_age parameter must be a number of seconds.")
		}
		d := time.Duration(n) * time.Second
		req.MaxAge = &d
	}

	if len(p.Resources) > maxResources {
		return redirected(CodeInvalidTarget, "resource", "Too many resource parameters.")
	}
	for _, r := range p.Resources {
		if !validResource(r) {
			return redirected(CodeInvalidTarget, "resource", "A resource must be an absolute URI without a fragment.")
		}
		if !slices.Contains(req.Resources, r) {
			req.Resources = append(req.Resources, r)
		}
	}
	return req, nil
}

// redirectError is an error that goes back to the request's redirect URI.
func (s *Service) redirectError(req AuthorizationRequest, code ErrorCode, field, desc string) *Error {
	return &Error{Code: code, Field: field, Description: desc, RedirectURI: req.RedirectURI, State: req.State, issuer: s.issuer}
}

func parsePrompt(raw string) (Prompt, bool) {
	var p Prompt
	for v := range strings.SplitSeq(raw, " ") {
		switch v {
		case "":
		case "none":
			p.None = true
		case "login":
			p.Login = true
		case "consent":
			p.Consent = true
		case "select_account":
			p.SelectAccount = true
		default:
			return Prompt{}, false
		}
	}
	// none excludes every other value (OpenID Connect Core §3.1.2.1).
	if p.None && (p.Login || p.Consent || p.SelectAccount) {
		return Prompt{}, false
	}
	return p, true
}

// validResource reports whether r is a resource indicator of RFC 8707 §2: an absolute URI
// without a fragment.
func validResource(r string) bool {
	if r == "" || len(r) > maxResourceLen || strings.Contains(r, "#") {
		return false
	}
	for i := 0; i < len(r); i++ {
		if r[i] <= ' ' || r[i] == 0x7f {
			return false
		}
	}
	u, err := url.Parse(r)
	return err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "" || u.Path != "")
}

// Step is what the authorization endpoint does next.
type Step int

const (
	// StepLogin: show the login page, then come back with the new browser session.
	StepLogin Step = iota + 1
	// StepConsent: ask the user to allow Decision.ConsentScopes, then Approve or Deny.
	StepConsent
	// StepIssue: Approve at once, without a page.
	StepIssue
)

// Decision is the answer of Decide.
type Decision struct {
	Step Step
	// ConsentScopes are, at StepConsent, the requested scopes the user has not allowed the
	// client yet; every requested scope when the request says prompt=consent.
	ConsentScopes []string
}

// Decide tells the authorization endpoint what to do with a valid request, given the
// browser's session (nil when it has none). justSignedIn is set when the browser comes back
// from the login page that this request sent it to, which satisfies prompt=login and
// max_age. With prompt=none, a step that needs a page is an error instead.
//
// Errors (redirected): login_required, consent_required; server_error,
// temporarily_unavailable.
func (s *Service) Decide(ctx context.Context, req AuthorizationRequest, sess *BrowserSession, justSignedIn bool) (Decision, error) {
	if s.needsLogin(req, sess, justSignedIn) {
		if req.Prompt.None {
			return Decision{}, s.redirectError(req, CodeLoginRequired, "prompt", "The user is not signed in.")
		}
		return Decision{Step: StepLogin}, nil
	}
	// A client trusted to skip consent still shows the page when the request itself asks
	// for it with prompt=consent.
	if req.Client.SkipConsent && !req.Prompt.Consent {
		return Decision{Step: StepIssue}, nil
	}
	missing := req.Scopes
	if !req.Prompt.Consent {
		consent, err := s.GetConsent(ctx, sess.UserID, req.Client.ID)
		var oe *Error
		switch {
		case err == nil:
			missing = consent.Missing(req.Scopes)
		case errors.As(err, &oe) && oe.Code == CodeNotFound:
		default:
			return Decision{}, s.asRedirectError(req, err)
		}
		// A client that has never been allowed anything is asked even for no scope, so
		// that the user sees who is asking.
		if err == nil && len(missing) == 0 {
			return Decision{Step: StepIssue}, nil
		}
	}
	if req.Prompt.None {
		return Decision{}, s.redirectError(req, CodeConsentRequired, "prompt", "The user has not allowed this client these scopes.")
	}
	return Decision{Step: StepConsent, ConsentScopes: slices.Clone(missing)}, nil
}

func (s *Service) needsLogin(req AuthorizationRequest, sess *BrowserSession, justSignedIn bool) bool {
	switch {
	case sess == nil:
		return true
	case justSignedIn:
		return false
	case req.Prompt.Login || req.Prompt.SelectAccount:
		return true
	case req.MaxAge != nil && s.now().Sub(sess.AuthTime) > *req.MaxAge:
		return true
	}
	return false
}

// asRedirectError turns a failure while handling a valid request into an error that goes
// back to the client, as RFC 6749 §4.1.2.1 does for server_error and
// temporarily_unavailable.
func (s *Service) asRedirectError(req AuthorizationRequest, err error) *Error {
	e := *AsError(err)
	e.RedirectURI, e.State, e.issuer = req.RedirectURI, req.State, s.issuer
	return &e
}

// AuthorizationResponse is a successful authorization: the browser goes to RedirectURL,
// which carries the code, the state and iss (RFC 6749 §4.1.2, RFC 9207). Code is a secret:
// never log it, nor RedirectURL.
type AuthorizationResponse struct {
	Code        string
	RedirectURL string
	ExpiresAt   time.Time
}

// Approve issues an authorization code for req to the user of sess and returns the redirect
// to the client. consented is set when the user has just allowed the request on the consent
// page: that consent is then remembered. Otherwise the client must need no consent, or the
// user's remembered consent must cover the request. The grant is audited.
//
// Errors (redirected): consent_required; server_error, temporarily_unavailable.
func (s *Service) Approve(ctx context.Context, req AuthorizationRequest, sess BrowserSession, consented bool, actor Actor) (AuthorizationResponse, error) {
	code, err := s.randomString(secretBytes)
	if err != nil {
		return AuthorizationResponse{}, s.asRedirectError(req, err)
	}
	now := s.now()
	expires := now.Add(s.codeTTL)
	err = s.inTx(ctx, func(q *db.Queries) error {
		how := "remembered"
		switch {
		case req.Client.SkipConsent:
			how = "not_required"
		case consented:
			how = "given"
			if _, err := grantConsent(ctx, q, sess.UserID, req.Client.ID, req.Scopes, now); err != nil {
				return err
			}
		default:
			consent, err := getConsent(ctx, q, sess.UserID, req.Client.ID)
			var oe *Error
			if errors.As(err, &oe) && oe.Code == CodeNotFound || err == nil && !consent.Covers(req.Scopes) {
				return s.redirectError(req, CodeConsentRequired, "", "The user has not allowed this client these scopes.")
			}
			if err != nil {
				return err
			}
		}
		var nonce *string
		if req.Nonce != "" {
			nonce = &req.Nonce
		}
		amr := sess.AMR
		if amr == nil {
			amr = []string{}
		}
		resources := req.Resources
		if resources == nil {
			resources = []string{}
		}
		browserSession := sess.ID
		if err := q.CreateOAuthAuthorizationCode(ctx, db.CreateOAuthAuthorizationCodeParams{
			CodeHash:         hashValue(code),
			ClientID:         req.Client.ID,
			UserID:           sess.UserID,
			RedirectUri:      req.RedirectURI,
			Scope:            FormatScope(req.Scopes),
			CodeChallenge:    req.CodeChallenge,
			Nonce:            nonce,
			AuthTime:         sess.AuthTime,
			Amr:              amr,
			BrowserSessionID: &browserSession,
			Resources:        resources,
			Now:              now,
			ExpiresAt:        expires,
		}); err != nil {
			return err
		}
		return s.audit(ctx, q, auditEvent{Type: AuditAuthorizationGranted, UserID: sess.UserID, Actor: actor, Details: map[string]any{
			"client_id": req.Client.ID, "scope": FormatScope(req.Scopes), "consent": how, "browser_session_id": sess.ID,
		}})
	})
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) && oe.Redirectable() {
			return AuthorizationResponse{}, oe
		}
		return AuthorizationResponse{}, s.asRedirectError(req, err)
	}
	v := url.Values{}
	v.Set("code", code)
	if req.State != "" {
		v.Set("state", req.State)
	}
	if s.issuer != "" {
		v.Set("iss", s.issuer)
	}
	return AuthorizationResponse{Code: code, RedirectURL: appendQuery(req.RedirectURI, v), ExpiresAt: expires}, nil
}

// Deny records that the user refused the request and returns the access_denied error that
// goes back to the client (RFC 6749 §4.1.2.1); server_error instead if the refusal could not
// be recorded.
func (s *Service) Deny(ctx context.Context, req AuthorizationRequest, userID uuid.UUID, actor Actor) *Error {
	err := s.inTx(ctx, func(q *db.Queries) error {
		return s.audit(ctx, q, auditEvent{Type: AuditAuthorizationDenied, UserID: userID, Actor: actor, Details: map[string]any{
			"client_id": req.Client.ID, "scope": FormatScope(req.Scopes),
		}})
	})
	if err != nil {
		return s.asRedirectError(req, err)
	}
	return s.redirectError(req, CodeAccessDenied, "", "The user denied the request.")
}
