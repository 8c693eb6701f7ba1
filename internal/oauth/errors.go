package oauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrorCode is the machine code of an Error. The set is closed: Codes lists every one.
type ErrorCode string

// Protocol errors: RFC 6749 §4.1.2.1 (authorization endpoint) and §5.2 (token endpoint),
// OpenID Connect Core §3.1.2.6, and RFC 8707 §2.
const (
	CodeInvalidRequest          ErrorCode = "invalid_request"
	CodeInvalidClient           ErrorCode = "invalid_client"
	CodeInvalidGrant            ErrorCode = "invalid_grant"
	CodeUnauthorizedClient      ErrorCode = "unauthorized_client"
	CodeUnsupportedGrantType    ErrorCode = "unsupported_grant_type"
	CodeInvalidScope            ErrorCode = "invalid_scope"
	CodeAccessDenied            ErrorCode = "access_denied"
	CodeUnsupportedResponseType ErrorCode = "unsupported_response_type"
	CodeServerError             ErrorCode = "server_error"
	CodeTemporarilyUnavailable  ErrorCode = "temporarily_unavailable"
	CodeLoginRequired           ErrorCode = "login_required"
	CodeConsentRequired         ErrorCode = "consent_required"
	CodeInteractionRequired     ErrorCode = "interaction_required"
	CodeRequestNotSupported     ErrorCode = "request_not_supported"
	CodeRequestURINotSupported  ErrorCode = "request_uri_not_supported"
	CodeInvalidTarget           ErrorCode = "invalid_target"
)

// Management errors, of the calls that administer clients and scopes. The first two are
// RFC 7591 §3.2.2's.
const (
	CodeInvalidClientMetadata ErrorCode = "invalid_client_metadata"
	CodeInvalidRedirectURI    ErrorCode = "invalid_redirect_uri"
	CodeNotFound              ErrorCode = "not_found"
	CodeScopeExists           ErrorCode = "scope_exists"
	CodeScopeInUse            ErrorCode = "scope_in_use"
	CodeScopeBuiltIn          ErrorCode = "scope_built_in"
)

// Codes lists every code an Error can carry.
var Codes = []ErrorCode{
	CodeInvalidRequest, CodeInvalidClient, CodeInvalidGrant, CodeUnauthorizedClient,
	CodeUnsupportedGrantType, CodeInvalidScope, CodeAccessDenied, CodeUnsupportedResponseType,
	CodeServerError, CodeTemporarilyUnavailable, CodeLoginRequired, CodeConsentRequired,
	CodeInteractionRequired, CodeRequestNotSupported, CodeRequestURINotSupported, CodeInvalidTarget,
	CodeInvalidClientMetadata, CodeInvalidRedirectURI, CodeNotFound, CodeScopeExists,
	CodeScopeInUse, CodeScopeBuiltIn,
}

// Error is the package's one error type. Code and Description are safe to send to a client:
// a description never holds a secret, a code, a token or a value the request sent, and uses
// only the characters RFC 6749 allows in error_description. Cause is for logs only.
//
// At the authorization endpoint, RedirectURI says what to do with the error: when it is
// empty the error is shown to the user and the browser is never redirected (an unknown
// client, or a redirect URI that is not registered: RFC 6749 §4.1.2.1); otherwise the
// browser is sent there with RedirectURL.
type Error struct {
	Code        ErrorCode
	Description string
	// Field names the request parameter or client field at fault, when one is.
	Field string
	// RedirectURI and State are set on authorization endpoint errors that go back to the
	// client.
	RedirectURI string
	State       string
	Cause       error
	// issuer goes into the redirect as iss.
	issuer string
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.Cause)
	}
	return string(e.Code) + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Cause }

// Redirectable reports whether the error goes back to the client's redirect URI rather than
// being shown to the user.
func (e *Error) Redirectable() bool { return e.RedirectURI != "" }

// RedirectURL is where the browser is sent with a redirectable authorization error: the
// redirect URI with error, error_description, state and iss (RFC 6749 §4.1.2.1, RFC 9207).
// It is empty for an error that must not be redirected.
func (e *Error) RedirectURL() string {
	if !e.Redirectable() {
		return ""
	}
	v := url.Values{}
	v.Set("error", string(e.Code))
	if e.Description != "" {
		v.Set("error_description", e.Description)
	}
	if e.State != "" {
		v.Set("state", e.State)
	}
	if e.issuer != "" {
		v.Set("iss", e.issuer)
	}
	return appendQuery(e.RedirectURI, v)
}

// appendQuery adds v to the query of uri, keeping the query a registered redirect URI
// already has (RFC 6749 §3.1.2).
func appendQuery(uri string, v url.Values) string {
	sep := "?"
	switch {
	case strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&"):
		sep = ""
	case strings.Contains(uri, "?"):
		sep = "&"
	}
	return uri + sep + v.Encode()
}

// AsError returns err as an *Error, treating anything else as a server error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return serverError(err)
}

func errorf(code ErrorCode, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Description: fmt.Sprintf(format, args...)}
}

func serverError(cause error) *Error {
	return &Error{Code: CodeServerError, Description: "The authorization server encountered an unexpected error.", Cause: cause}
}

func unavailable(cause error) *Error {
	return &Error{Code: CodeTemporarilyUnavailable, Description: "The authorization server is temporarily unavailable.", Cause: cause}
}

func errNotFound(what string) *Error {
	return &Error{Code: CodeNotFound, Description: "The " + what + " was not found."}
}

// errInvalidGrant answers every authorization code that cannot be redeemed: unknown,
// expired, used, of another client, redirect URI or verifier, or of a user who is no longer
// active. The cause says which, for logs only: the client learns nothing about a code it
// should not hold.
func errInvalidGrant(cause string) *Error {
	return &Error{Code: CodeInvalidGrant,
		Description: "The authorization code is invalid, expired, already used, or was issued for another request.",
		Cause:       errors.New(cause)}
}

// errInvalidClient answers every failed client authentication alike.
func errInvalidClient(cause string) *Error {
	return &Error{Code: CodeInvalidClient, Description: "Client authentication failed.", Cause: errors.New(cause)}
}

// CodeReuse is the Cause of the invalid_grant that answers an authorization code presented
// after it was redeemed. By then the session issued from the first redemption has been
// revoked and its tokens invalidated (RFC 6749 §4.1.2), and an audit event recorded; the
// caller may use it to log or to revoke more.
type CodeReuse struct {
	ClientID string
	UserID   uuid.UUID
	// SessionID is the session of the tokens issued from the code; nil when none was
	// recorded, or it has since been deleted.
	SessionID         *uuid.UUID
	RevokedSessions   int64
	InvalidatedTokens int64
}

func (r *CodeReuse) Error() string {
	return fmt.Sprintf("authorization code reused: %d sessions revoked, %d tokens invalidated", r.RevokedSessions, r.InvalidatedTokens)
}

// dbError translates a database error in one place: no rows is not found, a connection
// that failed or a server shutting down is temporarily unavailable, and anything else is a
// server error. Constraint violations that mean something are translated where they can
// happen.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotFound("resource")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is a connection failure; 57P01-57P03 mean the server is shutting down or
		// not yet accepting connections; 57014 is a statement cut off by statement_timeout.
		if len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:4] == "57P0" || pgErr.Code == "57014") {
			return unavailable(err)
		}
		return serverError(err)
	}
	// Not reported by the server, so it happened on the way there: a refused or dropped
	// connection, a timed-out acquire, a canceled context.
	return unavailable(err)
}

// isViolation reports whether err is the violation of the named constraint.
func isViolation(err error, sqlState, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlState && pgErr.ConstraintName == constraint
}

// Stable SQLSTATEs.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)
