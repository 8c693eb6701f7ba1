package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/authly/authly/internal/gen/db"
)

// cleanupBatchSize bounds the rows one cleanup statement deletes, so that no statement holds
// many row locks or runs long, however much has expired.
const cleanupBatchSize = 1000

// CleanupResult counts what one cleanup pass deleted.
type CleanupResult struct {
	Tokens   int64
	Sessions int64
	// LoginFailures counts lockout rows of unknown login names whose failures had lapsed.
	LoginFailures int64
	// AccountTokens counts expired one-time link tokens (verification, reset, email change).
	AccountTokens int64
}

// byTable is what the pass deleted by table, as the cleanup metrics count it.
func (r CleanupResult) byTable() map[string]int64 {
	return map[string]int64{"tokens": r.Tokens, "sessions": r.Sessions, "login_failures": r.LoginFailures, "account_tokens": r.AccountTokens}
}

// Cleanup deletes expired tokens, then expired sessions, then the lockout state of unknown
// login names whose failures have lapsed, then expired one-time link tokens, at most 1000 rows
// per statement, until none is
// left. Several instances may run it at once: each skips the rows another holds. Revoked
// sessions and their tokens stay until they expire, so that a reused refresh token is still
// recognised as reuse.
//
// Errors: unavailable; internal; the context's error when it ends between batches.
func (s *Service) Cleanup(ctx context.Context) (CleanupResult, error) {
	now := s.now()
	var res CleanupResult
	deleteAll := func(total *int64, deleteBatch func() (int64, error)) error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := deleteBatch()
			if err != nil {
				return dbError(err)
			}
			*total += n
			if n < cleanupBatchSize {
				return nil
			}
		}
	}
	// Tokens first: a session expires with its newest token, so by the time a session is
	// deleted its tokens are gone and the cascade has next to nothing to do.
	err := deleteAll(&res.Tokens, func() (int64, error) {
		return s.queries().DeleteExpiredTokens(ctx, db.DeleteExpiredTokensParams{Now: now, BatchSize: cleanupBatchSize})
	})
	if err != nil {
		return res, err
	}
	err = deleteAll(&res.Sessions, func() (int64, error) {
		return s.queries().DeleteExpiredSessions(ctx, db.DeleteExpiredSessionsParams{Now: now, BatchSize: cleanupBatchSize})
	})
	if err != nil {
		return res, err
	}
	// A lapsed row answers exactly as no row would, so deleting it changes no answer.
	err = deleteAll(&res.LoginFailures, func() (int64, error) {
		return s.queries().DeleteLapsedLoginFailures(ctx, db.DeleteLapsedLoginFailuresParams{
			Now: now, ForgetBefore: now.Add(-s.lockout.ResetAfter), BatchSize: cleanupBatchSize})
	})
	if err != nil {
		return res, err
	}
	err = deleteAll(&res.AccountTokens, func() (int64, error) {
		return s.queries().DeleteExpiredAccountTokens(ctx, db.DeleteExpiredAccountTokensParams{Now: now, BatchSize: cleanupBatchSize})
	})
	return res, err
}

// RunCleanup runs Cleanup at once and then every interval, until ctx ends. A failed pass is
// logged and retried at the next tick.
func (s *Service) RunCleanup(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		res, err := s.Cleanup(ctx)
		s.metrics.Cleanup(res.byTable())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.LogAttrs(ctx, slog.LevelError, "cleanup failed", slog.Any("err", err),
				slog.Int64("deleted_tokens", res.Tokens), slog.Int64("deleted_sessions", res.Sessions),
				slog.Int64("deleted_login_failures", res.LoginFailures))
		case res.Tokens > 0 || res.Sessions > 0 || res.LoginFailures > 0 || res.AccountTokens > 0:
			s.log.LogAttrs(ctx, slog.LevelInfo, "cleanup",
				slog.Int64("deleted_tokens", res.Tokens), slog.Int64("deleted_sessions", res.Sessions),
				slog.Int64("deleted_login_failures", res.LoginFailures), slog.Int64("deleted_account_tokens", res.AccountTokens))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
