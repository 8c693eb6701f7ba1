package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// CodeExchange is the authorization_code grant's part of a token request (RFC 6749 §4.1.3,
// RFC 7636 §4.5).
type CodeExchange struct {
	Code         string
	RedirectURI  string
	CodeVerifier string
}

// Grant is what a redeemed authorization code grants: the tokens the token endpoint issues
// from it.
type Grant struct {
	ClientID         string
	UserID           uuid.UUID
	Scopes           []string
	Nonce            string // for the ID token; empty when the request sent none
	AuthTime         time.Time
	AMR              []string
	BrowserSessionID *uuid.UUID
	Resources        []string // RFC 8707: the audiences the tokens are for
	RedirectURI      string
	// SessionID is the session the IssueFunc opened for the tokens.
	SessionID uuid.UUID
}

// IssueFunc issues the tokens of a grant, inside the transaction that redeems its code: it
// opens their session (with the grant's client and scope) through tx and returns its id,
// which is recorded on the code so that a replay of the code can revoke it. An error rolls
// everything back and leaves the code unused.
type IssueFunc func(ctx context.Context, tx pgx.Tx, g Grant) (sessionID uuid.UUID, err error)

// RedeemCode redeems an authorization code for the client that the token request
// authenticated, once. In one transaction it consumes the code, only if it is unused,
// unexpired and of an active user; checks that it was issued to this client, for this
// redirect URI, and that the PKCE verifier matches its challenge; calls issue; and records
// the session issue returns. A nil issue records no session.
//
// A code presented after it was redeemed is refused, and the session issued from it is
// revoked with its tokens (RFC 6749 §4.1.2): that commits and is audited even though the
// request fails, and the error's Cause is a *CodeReuse saying what was revoked.
//
// Errors: unauthorized_client (the client may not use the grant); invalid_request (a
// missing or malformed parameter); invalid_grant (every code that cannot be redeemed,
// alike); an error of issue; server_error, temporarily_unavailable.
func (s *Service) RedeemCode(ctx context.Context, client Client, ex CodeExchange, actor Actor, issue IssueFunc) (Grant, error) {
	if err := client.CheckGrant(string(GrantAuthorizationCode)); err != nil {
		return Grant{}, err
	}
	switch {
	case ex.Code == "":
		return Grant{}, errorf(CodeInvalidRequest, "code", "The code parameter is missing.")
	case ex.RedirectURI == "":
		return Grant{}, errorf(CodeInvalidRequest, "redirect_uri", "The redirect_uri parameter is missing.")
	case ex.CodeVerifier == "":
		return Grant{}, errorf(CodeInvalidRequest, "code_verifier", "The code_verifier parameter is missing.")
	case !ValidCodeVerifier(ex.CodeVerifier):
		return Grant{}, errorf(CodeInvalidRequest, "code_verifier", "The code_verifier must be 43 to 128 characters of letters, digits and - . _ ~.")
	case !isSecretSyntax(ex.Code):
		return Grant{}, errInvalidGrant("malformed code")
	}
	codeHash := hashValue(ex.Code)
	now := s.now()

	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Grant{}, dbError(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	q := s.q.WithTx(tx)

	row, err := q.RedeemOAuthAuthorizationCode(ctx, db.RedeemOAuthAuthorizationCodeParams{CodeHash: codeHash, Now: now})
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, s.refuseCode(ctx, tx, q, codeHash, client, actor, now)
	}
	if err != nil {
		return Grant{}, dbError(err)
	}
	// Each binding is checked apart and in constant time where it compares a value the
	// client chose; a failure rolls back, and the code stays redeemable by its own client.
	switch {
	case subtle.ConstantTimeCompare([]byte(row.ClientID), []byte(client.ID)) != 1:
		return Grant{}, errInvalidGrant("the code was issued to another client")
	case subtle.ConstantTimeCompare([]byte(row.RedirectUri), []byte(ex.RedirectURI)) != 1:
		return Grant{}, errInvalidGrant("the redirect_uri differs from the authorization request's")
	case !VerifyPKCE(row.CodeChallenge, ex.CodeVerifier):
		return Grant{}, errInvalidGrant("the code_verifier does not match the code_challenge")
	}

	scopes, err := ParseScope(row.Scope)
	if err != nil {
		return Grant{}, serverError(fmt.Errorf("stored scope: %w", err))
	}
	g := Grant{
		ClientID:         row.ClientID,
		UserID:           row.UserID,
		Scopes:           scopes,
		AuthTime:         row.AuthTime,
		AMR:              row.Amr,
		BrowserSessionID: row.BrowserSessionID,
		Resources:        row.Resources,
		RedirectURI:      row.RedirectUri,
	}
	if row.Nonce != nil {
		g.Nonce = *row.Nonce
	}
	if issue != nil {
		sid, err := issue(ctx, tx, g)
		if err != nil {
			return Grant{}, dbError(err)
		}
		g.SessionID = sid
		if err := q.SetOAuthAuthorizationCodeSession(ctx, db.SetOAuthAuthorizationCodeSessionParams{
			CodeHash: codeHash, SessionID: &sid,
		}); err != nil {
			return Grant{}, dbError(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Grant{}, dbError(err)
	}
	return g, nil
}

// refuseCode answers a code that RedeemCode could not consume. A code that was already
// redeemed is a replay: the session issued from it is revoked, the event audited, and that
// committed before the refusal.
func (s *Service) refuseCode(ctx context.Context, tx pgx.Tx, q *db.Queries, codeHash []byte, client Client, actor Actor, now time.Time) error {
	code, err := q.GetOAuthAuthorizationCodeForUpdate(ctx, codeHash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return errInvalidGrant("unknown code")
	case err != nil:
		return dbError(err)
	case code.UsedAt == nil && !code.ExpiresAt.After(now):
		return errInvalidGrant("expired code")
	case code.UsedAt == nil:
		return errInvalidGrant("the code's user is not active")
	}

	reuse := &CodeReuse{ClientID: code.ClientID, UserID: code.UserID, SessionID: code.SessionID}
	if code.SessionID != nil {
		r, err := q.RevokeOAuthCodeSession(ctx, db.RevokeOAuthCodeSessionParams{
			UserID: code.UserID, SessionID: *code.SessionID, Now: now,
		})
		if err != nil {
			return dbError(err)
		}
		reuse.RevokedSessions, reuse.InvalidatedTokens = r.RevokedSessions, r.InvalidatedTokens
	}
	details := map[string]any{
		"client_id":          code.ClientID,
		"presented_by":       client.ID,
		"revoked_sessions":   reuse.RevokedSessions,
		"invalidated_tokens": reuse.InvalidatedTokens,
	}
	if code.SessionID != nil {
		details["session_id"] = *code.SessionID
	}
	if err := s.audit(ctx, q, auditEvent{Type: AuditCodeReused, UserID: code.UserID, Actor: actor, Details: details}); err != nil {
		return dbError(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError(err)
	}
	e := errInvalidGrant("")
	e.Cause = reuse
	return e
}
