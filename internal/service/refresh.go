package service

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// Refresh rotates a refresh token (RFC 9700 §4.14.2). In one transaction the presented
// refresh token and the access token issued beside it are invalidated, a new pair is issued
// in the same session, and the session's last use, IP and user agent are recorded. The new
// tokens never outlive the session's idle timeout or absolute lifetime.
//
// A refresh token that was already rotated away is treated as stolen: its whole session is
// revoked, every token in it included, an audit event is recorded, and that much commits
// before the request fails. Of two requests racing with one refresh token exactly one wins,
// and the other is such a reuse.
//
// The usual case takes one statement (rotateAtOnce); everything else, reuse included, takes
// the transaction below.
//
// Errors: unauthenticated (invalid_grant) for a refresh token that is malformed, forged,
// expired or revoked, or whose session or user can no longer be used; unauthenticated
// (refresh_token_reused) for a reused one; unavailable; internal.
func (s *Service) Refresh(ctx context.Context, raw string, client Client) (TokenPair, error) {
	presented, err := s.tokens.Verify(token.Refresh, raw)
	if err != nil {
		return TokenPair{}, errInvalidGrant(err)
	}
	now := s.now()
	if pair, ok, err := s.rotateAtOnce(ctx, presented, now, client); err != nil || ok {
		if err == nil {
			s.countIssuedPair()
		}
		return pair, err
	}
	var (
		pair    TokenPair
		refused error // set when the transaction commits but the request fails
	)
	err = s.inTx(ctx, func(q *db.Queries) error {
		// Every change to this user's sessions and tokens waits here for the one before.
		locked, err := q.LockUserSession(ctx, db.LockUserSessionParams{UserID: presented.UserID, SessionID: presented.SessionID})
		if errors.Is(err, pgx.ErrNoRows) {
			refused = errInvalidGrant(errors.New("the token's user or session no longer exists"))
			return nil
		}
		if err != nil {
			return err
		}
		if locked.IsActive && now.Before(locked.AbsoluteExpiresAt) {
			access, refresh, err := s.issuePair(presented.UserID, presented.SessionID, now, locked.AbsoluteExpiresAt)
			if err != nil {
				return err
			}
			consumed, err := q.RotateRefreshTokenAtOnce(ctx, db.RotateRefreshTokenAtOnceParams{
				Now:              now,
				PresentedJti:     presented.ID,
				UserID:           presented.UserID,
				SessionID:        presented.SessionID,
				IdleCutoff:       s.idleCutoff(now),
				AccessJti:        access.ID,
				AccessExpiresAt:  access.ExpiresAt,
				RefreshJti:       refresh.ID,
				RefreshExpiresAt: refresh.ExpiresAt,
				Ip:               client.IP,
				UserAgent:        truncate(client.UserAgent, maxUserAgent),
			})
			if err != nil {
				return err
			}
			if consumed == 1 {
				pair = tokenPair(access, refresh, now)
				return nil
			}
		}
		// The token was not consumed. Either it was rotated away before, which is reuse,
		// or it is simply dead: revoked, or its session or user is no longer usable.
		family, err := q.RevokeReusedRefreshFamily(ctx, db.RevokeReusedRefreshFamilyParams{
			PresentedJti: presented.ID, UserID: presented.UserID, SessionID: presented.SessionID, Now: now,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			refused = errInvalidGrant(errors.New("refresh token revoked, or its session or user unusable"))
			return nil
		}
		if err != nil {
			return err
		}
		refused = errRefreshTokenReused()
		s.metrics.RefreshReuse()
		s.metrics.TokensRevoked("reuse", family.InvalidatedTokens)
		loggerFrom(ctx, s.log).LogAttrs(ctx, slog.LevelWarn, "refresh token reuse: session revoked",
			slog.String("user_id", presented.UserID.String()), slog.String("session_id", family.SessionID.String()),
			slog.Int64("invalidated_tokens", family.InvalidatedTokens))
		return s.audit(ctx, q, auditEvent{Type: AuditRefreshTokenReused, UserID: presented.UserID, Client: client,
			Details: map[string]any{
				"session_id":         family.SessionID,
				"session_revoked":    family.RevokedSessions > 0,
				"invalidated_tokens": family.InvalidatedTokens,
			}})
	})
	if err != nil {
		return TokenPair{}, err
	}
	if refused != nil {
		return TokenPair{}, refused
	}
	s.countIssuedPair()
	return pair, nil
}

// countIssuedPair records one access and one refresh token issued.
func (s *Service) countIssuedPair() {
	s.metrics.TokensIssued("access", 1)
	s.metrics.TokensIssued("refresh", 1)
}
