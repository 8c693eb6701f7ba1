package service

import (
	"context"
	"time"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/token"
)

// rotateAtOnce is the usual rotation in one statement, so in one round trip to the database
// instead of four (BEGIN, lock, rotate, COMMIT). The new pair is signed first, as for a
// session whose absolute end lies beyond it; the statement applies only when the session's
// real end does, and then yields exactly the pair the transactional path would issue.
//
// It reports ok=false when the statement changed nothing: the token is dead or reused, its
// session or user is no longer usable, or the session ends before the new pair would. Refresh
// then runs the transactional path, which decides each of those cases as it always has.
func (s *Service) rotateAtOnce(ctx context.Context, presented token.Verified, now time.Time, client Client) (pair TokenPair, ok bool, err error) {
	access, refresh, err := s.issuePair(presented.UserID, presented.SessionID, now, now.Add(s.sessions.IdleTimeout))
	if err != nil {
		return TokenPair{}, false, err
	}
	consumed, err := s.q.RotateRefreshTokenAtOnce(ctx, db.RotateRefreshTokenAtOnceParams{
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
		return TokenPair{}, false, dbError(err)
	}
	if consumed != 1 {
		return TokenPair{}, false, nil
	}
	return tokenPair(access, refresh, now), true, nil
}
