package oauth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// The built-in scopes, which the migration registers and nobody can delete.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
)

// Limits on scopes.
const (
	maxScopeNameLen        = 64
	maxScopeDescriptionLen = 200
	maxScopesPerRequest    = 50
)

// Scope is an entry of the scope registry.
type Scope struct {
	Name        string
	Description string
	BuiltIn     bool
	CreatedAt   time.Time
}

func scopeFromRow(r db.OauthScope) Scope {
	return Scope{Name: r.Name, Description: r.Description, BuiltIn: r.BuiltIn, CreatedAt: r.CreatedAt}
}

// validScopeToken reports whether t is a scope-token of RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ), here at most maxScopeNameLen long.
func validScopeToken(t string) bool {
	if t == "" || len(t) > maxScopeNameLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ParseScope splits a scope parameter (RFC 6749 §3.3) into its scope-tokens, in order and
// without repeats. Tokens are separated by spaces; extra spaces are tolerated. A token of
// other characters is invalid_scope.
func ParseScope(raw string) ([]string, error) {
	scopes := []string{}
	for t := range strings.SplitSeq(raw, " ") {
		if t == "" {
			continue
		}
		if !validScopeToken(t) {
			return nil, errorf(CodeInvalidScope, "scope", "The scope parameter is malformed.")
		}
		if !slices.Contains(scopes, t) {
			scopes = append(scopes, t)
		}
		if len(scopes) > maxScopesPerRequest {
			return nil, errorf(CodeInvalidScope, "scope", "Too many scopes were requested.")
		}
	}
	return scopes, nil
}

// FormatScope joins scopes into a scope parameter.
func FormatScope(scopes []string) string { return strings.Join(scopes, " ") }

// CheckScopes returns the scopes of raw that the client may be granted, in the order
// requested, or invalid_scope. A client may ask only for scopes the admin allowed it, and
// every allowed scope is registered, so an unknown scope is refused the same way: the
// answer does not tell which scopes exist. An empty request is granted no scope.
func (c Client) CheckScopes(raw string) ([]string, error) {
	requested, err := ParseScope(raw)
	if err != nil {
		return nil, err
	}
	for _, sc := range requested {
		if !slices.Contains(c.Scopes, sc) {
			return nil, errorf(CodeInvalidScope, "scope", "A requested scope is unknown or not allowed for this client.")
		}
	}
	return requested, nil
}

// NarrowScopes returns the scopes of raw when they are all among granted, for a refresh
// that asks for less than was granted (RFC 6749 §6); an empty request keeps granted.
func NarrowScopes(granted []string, raw string) ([]string, error) {
	requested, err := ParseScope(raw)
	if err != nil {
		return nil, err
	}
	if len(requested) == 0 {
		return slices.Clone(granted), nil
	}
	for _, sc := range requested {
		if !slices.Contains(granted, sc) {
			return nil, errorf(CodeInvalidScope, "scope", "A requested scope exceeds what was granted.")
		}
	}
	return requested, nil
}

// CreateScope registers a scope that an admin may then allow to clients.
//
// Errors: invalid_request (a malformed name or description); scope_exists; server_error,
// temporarily_unavailable.
func (s *Service) CreateScope(ctx context.Context, actor Actor, name, description string) (Scope, error) {
	if !validScopeToken(name) {
		return Scope{}, errorf(CodeInvalidRequest, "name",
			"A scope name is 1 to 64 printable ASCII characters, without spaces, quotes or backslashes.")
	}
	if msg := validateText(description, maxScopeDescriptionLen, true); msg != "" {
		return Scope{}, errorf(CodeInvalidRequest, "description", "The description %s.", msg)
	}
	var sc Scope
	err := s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.CreateOAuthScope(ctx, db.CreateOAuthScopeParams{Name: name, Description: description, Now: s.now()})
		if isViolation(err, uniqueViolation, "oauth_scopes_pkey") {
			return errorf(CodeScopeExists, "name", "A scope with this name already exists.")
		}
		if err != nil {
			return err
		}
		sc = scopeFromRow(row)
		return s.audit(ctx, q, auditEvent{Type: AuditScopeCreated, Actor: actor,
			Details: map[string]any{"scope": name}})
	})
	return sc, err
}

// ListScopes returns the registry: built-in scopes first, then by name.
//
// Errors: server_error, temporarily_unavailable.
func (s *Service) ListScopes(ctx context.Context) ([]Scope, error) {
	rows, err := s.q.ListOAuthScopes(ctx)
	if err != nil {
		return nil, dbError(err)
	}
	out := make([]Scope, len(rows))
	for i, r := range rows {
		out[i] = scopeFromRow(r)
	}
	return out, nil
}

// DeleteScope removes a scope from the registry and from every consent. A built-in scope
// cannot be deleted, nor one that a client is allowed: change those clients first.
//
// Errors: not_found; scope_built_in; scope_in_use; server_error, temporarily_unavailable.
func (s *Service) DeleteScope(ctx context.Context, actor Actor, name string) error {
	return s.inTx(ctx, func(q *db.Queries) error {
		sc, err := q.GetOAuthScope(ctx, name)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound("scope")
		}
		if err != nil {
			return err
		}
		if sc.BuiltIn {
			return errorf(CodeScopeBuiltIn, "name", "A built-in scope cannot be deleted.")
		}
		_, err = q.DeleteOAuthScope(ctx, name)
		if isViolation(err, foreignKeyViolation, "oauth_client_scopes_scope_fkey") {
			return errorf(CodeScopeInUse, "name", "The scope is allowed to at least one client; remove it from those clients first.")
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, q, auditEvent{Type: AuditScopeDeleted, Actor: actor,
			Details: map[string]any{"scope": name}})
	})
}

// validateText checks free text such as a name or a description, and says what is wrong:
// valid UTF-8, no control characters, at most maxLen characters, and not blank unless
// blank is allowed.
func validateText(v string, maxLen int, blankOK bool) string {
	if !utf8.ValidString(v) {
		return "must be valid UTF-8"
	}
	if !blankOK && strings.TrimSpace(v) == "" {
		return "must not be empty"
	}
	if utf8.RuneCountInString(v) > maxLen {
		return "is too long"
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "must not contain control characters"
		}
	}
	return ""
}
