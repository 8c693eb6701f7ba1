package service

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Kind is the closed set of error categories. The transport maps each to exactly one HTTP
// status, in one table (internal/httpapi).
type Kind int

// The kinds. TooLarge, UnsupportedMedia and MethodNotAllowed are only raised by the transport,
// about a request's shape; the domain raises the others.
const (
	KindInternal Kind = iota
	KindInvalid
	KindUnauthenticated
	KindForbidden
	KindNotFound
	KindConflict
	KindTooLarge
	KindUnsupportedMedia
	KindMethodNotAllowed
	KindRateLimited
	KindUnavailable
)

// Stable machine codes. Every one is declared in the ErrorCode enum of openapi.yaml, so
// clients can switch on them; a test keeps the two lists equal.
const (
	CodeInvalidRequest      = "invalid_request"
	CodeUsernameTaken       = "username_taken"
	CodeEmailTaken          = "email_taken"
	CodeInvalidCredentials  = "invalid_credentials"
	CodeInvalidToken        = "invalid_token"
	CodeInvalidGrant        = "invalid_grant"
	CodeAccountInactive     = "account_inactive"
	CodeAccountUnverified   = "account_unverified"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodePayloadTooLarge     = "payload_too_large"
	CodeUnsupportedMedia    = "unsupported_media_type"
	CodeInternal            = "internal_error"
	CodeLastAdmin           = "last_admin"
	CodeRefreshTokenReused  = "refresh_token_reused"
	CodeDatabaseUnavailable = "database_unavailable"
	CodeRateLimited         = "rate_limited"
	CodeAccountLocked       = "account_locked"
	CodeServerBusy          = "server_busy"
	// A sensitive change of one's own account without the right current password.
	CodeReauthenticationRequired = "reauthentication_required"
	// A one-time link's token that is malformed, unknown, used, expired or no longer applies.
	CodeInvalidLinkToken = "invalid_link_token"
)

// Codes lists every code the service can produce.
var Codes = []string{
	CodeInvalidRequest, CodeUsernameTaken, CodeEmailTaken,
	CodeInvalidCredentials, CodeInvalidToken, CodeInvalidGrant, CodeAccountInactive, CodeAccountUnverified,
	CodeForbidden, CodeNotFound, CodeMethodNotAllowed, CodePayloadTooLarge, CodeUnsupportedMedia,
	CodeInternal, CodeDatabaseUnavailable, CodeLastAdmin, CodeRefreshTokenReused,
	CodeRateLimited, CodeAccountLocked, CodeServerBusy, CodeReauthenticationRequired, CodeInvalidLinkToken,
}

// FieldError names one invalid request field.
type FieldError struct {
	Field   string
	Message string
}

// Error is the service's one error type. Message is safe to show to a client; Cause is for
// logs only and never leaves the server.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	Fields     []FieldError
	RetryAfter time.Duration
	Cause      error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an Error of the given kind and code with a public message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidFields is an invalid_request error that lists the offending fields.
func InvalidFields(fields ...FieldError) *Error {
	return &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Message: "The request is invalid.", Fields: fields}
}

// Internal wraps an unexpected failure; the cause is logged where the error is mapped.
func Internal(cause error) *Error {
	return &Error{Kind: KindInternal, Code: CodeInternal, Message: "An internal error occurred.", Cause: cause}
}

// errInvalidCredentials is shared by every failed password check, so the answer never tells
// whether the account exists.
func errInvalidCredentials() *Error {
	return Errorf(KindUnauthenticated, CodeInvalidCredentials, "Invalid username or password.")
}

func errInvalidToken(cause error) *Error {
	e := Errorf(KindUnauthenticated, CodeInvalidToken, "A valid bearer token is required.")
	e.Cause = cause
	return e
}

// errInvalidGrant answers every refresh token that cannot be used: malformed, forged,
// expired, revoked, or of a session that has ended. The cause says which, for logs only.
func errInvalidGrant(cause error) *Error {
	e := Errorf(KindUnauthenticated, CodeInvalidGrant, "The refresh token is invalid, expired or revoked.")
	e.Cause = cause
	return e
}

// errRefreshTokenReused answers a refresh token that was already rotated away; by then its
// session has been revoked (RFC 9700 §4.14.2).
func errRefreshTokenReused() *Error {
	return Errorf(KindUnauthenticated, CodeRefreshTokenReused, "The refresh token was already used; the session is revoked.")
}

// NotFound is the one answer for a resource that does not exist or that the caller may not
// see.
func NotFound() *Error {
	return Errorf(KindNotFound, CodeNotFound, "The resource was not found.")
}

func errForbidden(msg string) *Error {
	return Errorf(KindForbidden, CodeForbidden, "%s", msg)
}

// AsError returns err as an *Error, treating anything else as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// constraintErrors maps unique constraints to the conflict they mean.
var constraintErrors = map[string]func() *Error{
	"users_username_key": func() *Error {
		return &Error{Kind: KindConflict, Code: CodeUsernameTaken, Message: "The username is already taken.",
			Fields: []FieldError{{Field: "username", Message: "is already taken"}}}
	},
	"users_email_key": func() *Error {
		return &Error{Kind: KindConflict, Code: CodeEmailTaken, Message: "The email is already registered.",
			Fields: []FieldError{{Field: "email", Message: "is already registered"}}}
	},
}

// dbError translates a database error in one place: no rows is not found, a known unique
// violation is its conflict (chosen by constraint name, never by message text), a lost
// connection is unavailable, and anything else is internal.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return NotFound()
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Code == "23505" {
			if mk, ok := constraintErrors[pgErr.ConstraintName]; ok {
				return mk()
			}
		}
		// Class 08 is a connection failure; 57P01-57P03 mean the server is shutting down
		// or not yet accepting connections; 57014 is a statement cut off by statement_timeout.
		if len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:4] == "57P0" || pgErr.Code == "57014") {
			return unavailable(err)
		}
		return Internal(err)
	}
	// Not reported by the server, so it happened on the way there: a refused or dropped
	// connection, a timed-out acquire, a canceled context. To the client that is the
	// database being unavailable, never a 500 with driver text.
	return unavailable(err)
}

func unavailable(cause error) *Error {
	return &Error{Kind: KindUnavailable, Code: CodeDatabaseUnavailable, Message: "The database is unavailable.",
		RetryAfter: time.Second, Cause: cause}
}
