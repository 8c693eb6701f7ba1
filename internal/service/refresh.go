package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/logctx"
	"github.com/authly/authly/internal/token"
)

// Refresh rotates a refresh token (RFC 9700 §4.14.2). At once, the presented refresh token
// and the access token issued beside it are invalidated, a new pair is issued in the same
// session, and the session's last use, IP and user agent are recorded. The new tokens never
// outlive the session's idle timeout or absolute lifetime.
//
// A refresh token that was already rotated away is treated as stolen: its whole session is
// revoked, every token in it included, an audit event is recorded, and that much commits
// before the request fails. Of two requests racing with one refresh token exactly one wins,
// and the other is such a reuse.
//
// The usual case is one statement, in one round trip; everything else, reuse included, is
// decided by refreshLocked.
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
	// The new pair is signed as for a session whose absolute end lies beyond it; the statement
	// applies only when the session's real end does.
	pair, ok, err := s.rotate(ctx, s.queries(), presented, now, now.Add(s.sessions.IdleTimeout), client)
	if err == nil && !ok {
		pair, err = s.refreshLocked(ctx, presented, now, client)
	}
	if err != nil {
		return TokenPair{}, err
	}
	s.countIssuedPair()
	return pair, nil
}

// rotate signs a new pair for the presented token's session, capped at absoluteEnd, and
// applies the rotation with q in one statement (RotateRefreshTokenAtOnce). It reports
// ok=false when the statement changed nothing: the token is dead or reused, its session or
// user is no longer usable, or the session ends before the new pair would.
func (s *Service) rotate(ctx context.Context, q *db.Queries, presented token.Verified, now, absoluteEnd time.Time, client Client) (pair TokenPair, ok bool, err error) {
	access, refresh, err := s.issuePair(presented.UserID, presented.SessionID, now, absoluteEnd)
	if err != nil {
		return TokenPair{}, false, err
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
	if err != nil || consumed != 1 {
		return TokenPair{}, false, dbError(err)
	}
	return tokenPair(access, refresh, now), true, nil
}

// refreshLocked decides, in one transaction under the user's row lock, a refresh that rotate
// could not apply at once: it rotates with the new pair capped at the session's absolute end
// when the session is still usable, and otherwise tells a reused token from a dead one.
func (s *Service) refreshLocked(ctx context.Context, presented token.Verified, now time.Time, client Client) (TokenPair, error) {
	var (
		pair    TokenPair
		refused error // set when the transaction commits but the request fails
	)
	err := s.inTx(ctx, func(q *db.Queries) error {
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
			var ok bool
			if pair, ok, err = s.rotate(ctx, q, presented, now, locked.AbsoluteExpiresAt, client); err != nil || ok {
				return err
			}
		}
		refused, err = s.revokeReusedFamily(ctx, q, presented, now, client)
		return err
	})
	if err != nil {
		return TokenPair{}, err
	}
	if refused != nil {
		return TokenPair{}, refused
	}
	return pair, nil
}

// revokeReusedFamily handles, with q, a refresh token that was not consumed. Either it was
// rotated away before, which is reuse: its session and every token in it are revoked, and the
// reuse is counted, logged and audited; or it is simply dead: revoked, or its session or user
// is no longer usable. refused is the answer the request gets once q's transaction commits.
func (s *Service) revokeReusedFamily(ctx context.Context, q *db.Queries, presented token.Verified, now time.Time, client Client) (refused, err error) {
	family, err := q.RevokeReusedRefreshFamily(ctx, db.RevokeReusedRefreshFamilyParams{
		PresentedJti: presented.ID, UserID: presented.UserID, SessionID: presented.SessionID, Now: now,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return errInvalidGrant(errors.New("refresh token revoked, or its session or user unusable")), nil
	}
	if err != nil {
		return nil, err
	}
	s.metrics.RefreshReuse()
	s.metrics.TokensRevoked("reuse", family.InvalidatedTokens)
	logctx.From(ctx, s.log).LogAttrs(ctx, slog.LevelWarn, "refresh token reuse: session revoked",
		slog.String("user_id", presented.UserID.String()), slog.String("session_id", family.SessionID.String()),
		slog.Int64("invalidated_tokens", family.InvalidatedTokens))
	err = s.audit(ctx, q, auditEntry{Type: AuditRefreshTokenReused, UserID: presented.UserID, Client: client,
		Details: map[string]any{
			"session_id":         family.SessionID,
			"session_revoked":    family.RevokedSessions > 0,
			"invalidated_tokens": family.InvalidatedTokens,
		}})
	return errRefreshTokenReused(), err
}

// countIssuedPair records one access and one refresh token issued.
func (s *Service) countIssuedPair() {
	s.metrics.TokensIssued("access", 1)
	s.metrics.TokensIssued("refresh", 1)
}
