package service

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
)

// errReauthenticationRequired answers a sensitive change of one's own account without the
// right current password (ASVS 5.0 V6.2.3, V7.5): a bearer token alone, which may be stolen,
// is not enough to change the password or the email, or to delete the account.
func errReauthenticationRequired(msg string) *Error {
	return Errorf(KindForbidden, CodeReauthenticationRequired, "%s", msg)
}

// reauthenticate checks the caller's current password before a sensitive change of its own
// account. A missing password is refused without counting anything; a wrong one counts as a
// failed login of the account, under the same lockout, and is audited as such; a right one
// starts the count again. The password check runs in the hash pool like a login's.
//
// Errors: forbidden (reauthentication_required); rate limited (account_locked); unavailable
// (server_busy, database_unavailable); internal.
func (s *Service) reauthenticate(ctx context.Context, actor Principal, current *string, client Client) error {
	if current == nil || *current == "" {
		return errReauthenticationRequired("This change needs your current password in current_password.")
	}
	reservation, err := s.reservePasswordCheck(ctx, client)
	if err != nil {
		return err
	}
	defer reservation.Cancel()
	// The username never contains '@', so it names the account and nothing else.
	account, attempt, err := s.claimAccount(ctx, actor.User.Username, client)
	if err != nil {
		return err
	}
	hash := account.passwordHash
	if account.id != actor.User.ID {
		hash = nil // renamed meanwhile: compare against the dummy, and fail
	}
	ok, err := s.checkPassword(ctx, reservation, hash, *current, client)
	if err != nil {
		s.refundLoginAttempt(ctx, attempt)
		return err
	}
	if !ok {
		s.loginFailed(ctx, attempt, reasonReauthenticationFailed, client)
		return errReauthenticationRequired("The current password is wrong.")
	}
	return s.resetLoginFailures(ctx, attempt)
}

// endedSessions counts what endSessions changed.
type endedSessions struct {
	RevokedSessions   int64
	InvalidatedTokens int64
}

// endSessions revokes every session of the user, except keep when it is not nil, with reason,
// and invalidates every live token outside keep, with q in the caller's transaction, which must
// hold the user's row locked. Sessions, not only their tokens, end, so that they leave the
// user's list of sessions and stop counting against the session cap.
func (s *Service) endSessions(ctx context.Context, q *db.Queries, userID uuid.UUID, keep *uuid.UUID, reason string, now time.Time) (endedSessions, error) {
	row, err := q.EndUserSessions(ctx, db.EndUserSessionsParams{Now: now, Reason: reason, UserID: userID, KeepSessionID: keep})
	if err != nil {
		return endedSessions{}, err
	}
	s.metrics.TokensRevoked(reason, row.InvalidatedTokens)
	return endedSessions{RevokedSessions: row.RevokedSessions, InvalidatedTokens: row.InvalidatedTokens}, nil
}
