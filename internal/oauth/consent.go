package oauth

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// Consent is what a user has allowed a client.
type Consent struct {
	UserID     uuid.UUID
	ClientID   string
	ClientName string // filled by ListConsents
	Scopes     []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Covers reports whether the consent already allows every one of scopes, so that a request
// for them, or for fewer, needs no new consent.
func (c Consent) Covers(scopes []string) bool {
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			return false
		}
	}
	return true
}

// Missing returns the scopes the consent does not yet allow, in the order given.
func (c Consent) Missing(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func consentFromRow(r db.OauthConsent) Consent {
	return Consent{UserID: r.UserID, ClientID: r.ClientID, Scopes: r.Scopes, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// GetConsent returns a user's live consent to a client.
//
// Errors: not_found (none, or revoked); server_error, temporarily_unavailable.
func (s *Service) GetConsent(ctx context.Context, userID uuid.UUID, clientID string) (Consent, error) {
	return getConsent(ctx, s.q, userID, clientID)
}

func getConsent(ctx context.Context, q *db.Queries, userID uuid.UUID, clientID string) (Consent, error) {
	row, err := q.GetOAuthConsent(ctx, db.GetOAuthConsentParams{UserID: userID, ClientID: clientID})
	if errors.Is(err, pgx.ErrNoRows) {
		return Consent{}, errNotFound("consent")
	}
	if err != nil {
		return Consent{}, dbError(err)
	}
	return consentFromRow(row), nil
}

// GrantConsent remembers that a user allowed a client scopes, which must all be allowed to
// the client. They are added to what the user already allowed it; after a revocation they
// replace it.
//
// Errors: not_found (the client); invalid_scope; server_error, temporarily_unavailable.
func (s *Service) GrantConsent(ctx context.Context, userID uuid.UUID, clientID string, scopes []string) (Consent, error) {
	c, err := s.GetClient(ctx, clientID)
	if err != nil {
		return Consent{}, err
	}
	if _, err := c.CheckScopes(FormatScope(scopes)); err != nil {
		return Consent{}, err
	}
	var out Consent
	err = s.inTx(ctx, func(q *db.Queries) error {
		var err error
		out, err = grantConsent(ctx, q, userID, clientID, scopes, s.now())
		return err
	})
	return out, err
}

func grantConsent(ctx context.Context, q *db.Queries, userID uuid.UUID, clientID string, scopes []string, now time.Time) (Consent, error) {
	sorted := slices.Clone(scopes)
	if sorted == nil {
		sorted = []string{}
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	row, err := q.GrantOAuthConsent(ctx, db.GrantOAuthConsentParams{UserID: userID, ClientID: clientID, Scopes: sorted, Now: now})
	if err != nil {
		return Consent{}, err
	}
	return consentFromRow(row), nil
}

// ListConsents returns the clients a user has allowed, with what, most recently granted
// first.
//
// Errors: server_error, temporarily_unavailable.
func (s *Service) ListConsents(ctx context.Context, userID uuid.UUID) ([]Consent, error) {
	rows, err := s.q.ListOAuthConsents(ctx, userID)
	if err != nil {
		return nil, dbError(err)
	}
	out := make([]Consent, len(rows))
	for i, r := range rows {
		out[i] = Consent{UserID: userID, ClientID: r.ClientID, ClientName: r.ClientName, Scopes: r.Scopes,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	}
	return out, nil
}

// RevokedConsent counts what RevokeConsent ended.
type RevokedConsent struct {
	RevokedSessions   int64
	InvalidatedTokens int64
}

// RevokeConsent withdraws a user's consent to a client and, in the same transaction, every
// session and token the client holds for the user: the client loses access at once, and
// its next authorization request asks the user again.
//
// Errors: not_found (no live consent); server_error, temporarily_unavailable.
func (s *Service) RevokeConsent(ctx context.Context, actor Actor, userID uuid.UUID, clientID string) (RevokedConsent, error) {
	var out RevokedConsent
	err := s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.RevokeOAuthConsent(ctx, db.RevokeOAuthConsentParams{UserID: userID, ClientID: clientID, Now: s.now()})
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound("consent")
		}
		if err != nil {
			return err
		}
		out = RevokedConsent{RevokedSessions: row.RevokedSessions, InvalidatedTokens: row.InvalidatedTokens}
		return s.audit(ctx, q, auditEvent{Type: AuditConsentRevoked, UserID: userID, Actor: actor, Details: map[string]any{
			"client_id": clientID, "revoked_sessions": row.RevokedSessions, "invalidated_tokens": row.InvalidatedTokens,
		}})
	})
	return out, err
}
