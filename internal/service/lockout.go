package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/logctx"
)

// LockoutPolicy is the progressive account lockout (AUTHLY_LOCKOUT_*). After Threshold
// consecutive failed logins the login is locked for Duration, and each further failure
// doubles the lock, up to MaxDuration. A right password resets the count; failures older
// than ResetAfter lapse. A zero Threshold turns lockout off; other zero fields take their
// defaults.
type LockoutPolicy struct {
	Threshold   int
	Duration    time.Duration
	MaxDuration time.Duration
	ResetAfter  time.Duration
}

// Lockout defaults, as AUTHLY_LOCKOUT_* document them.
const (
	DefaultLockoutThreshold   = 5
	DefaultLockoutDuration    = time.Minute
	DefaultLockoutMaxDuration = time.Hour
	DefaultLockoutResetAfter  = 24 * time.Hour
)

func (p LockoutPolicy) withDefaults() LockoutPolicy {
	if p.Threshold <= 0 {
		return LockoutPolicy{}
	}
	if p.Duration <= 0 {
		p.Duration = DefaultLockoutDuration
	}
	if p.MaxDuration <= 0 {
		p.MaxDuration = max(DefaultLockoutMaxDuration, p.Duration)
	}
	p.MaxDuration = max(p.MaxDuration, p.Duration)
	if p.ResetAfter <= 0 {
		p.ResetAfter = max(DefaultLockoutResetAfter, p.MaxDuration)
	}
	p.ResetAfter = max(p.ResetAfter, p.MaxDuration)
	return p
}

func (p LockoutPolicy) off() bool { return p.Threshold <= 0 }

// loginAccount is what a login needs of the account its name matches.
type loginAccount struct {
	id                   uuid.UUID // uuid.Nil when the name matches no account
	passwordHash         []byte    // nil when the name matches no account
	isActive, isVerified bool
}

// loginNames splits a login into the username or the email it is: an email when it contains
// '@' (usernames cannot), a username otherwise. The other is nil.
func loginNames(login string) (username, email *string) {
	if strings.Contains(login, "@") {
		email := strings.ToLower(login)
		return nil, &email
	}
	return &login, nil
}

// loginAttempt is one password check counted against a login before it runs. Accounts are
// counted in users, and login names that match no account in login_failures, under the same
// rule, so the two answer alike.
type loginAttempt struct {
	userID   uuid.UUID // the account; uuid.Nil for a name that matches none
	name     string    // the lower-cased login name, for a name that matches no account
	attempts int32     // the failure count, this attempt included; 0 when lockout is off
	// lockedUntil is set when this attempt, if it fails, locks the login.
	lockedUntil *time.Time
}

// errAccountLocked answers a login while it is locked, whether or not the name has an
// account.
func errAccountLocked(retryAfter time.Duration) *Error {
	return &Error{Kind: KindRateLimited, Code: CodeAccountLocked,
		Message:    "Too many failed logins; the account is locked for now.",
		RetryAfter: max(retryAfter, time.Second)}
}

// claimLoginAttempt finds the account login names and counts an attempt on it, or on the
// name when it matches no account, before the password is checked, in one statement. A
// locked login is refused without counting and without bcrypt, for accounts and unknown
// names alike, so the two paths cost the same. Lockout must be on.
//
// Errors: rate limited (account_locked); unavailable; internal.
func (s *Service) claimLoginAttempt(ctx context.Context, login string, client Client) (loginAccount, loginAttempt, error) {
	p := s.lockout
	now := s.now()
	username, email := loginNames(login)
	row, err := s.queries().ClaimLoginAttempt(ctx, db.ClaimLoginAttemptParams{
		Username: username, Email: email, LoginName: strings.ToLower(login),
		Now: now, ForgetBefore: now.Add(-p.ResetAfter),
		Threshold: int32(p.Threshold), BaseLockSeconds: p.Duration.Seconds(), MaxLockSeconds: p.MaxDuration.Seconds(),
	})
	if err != nil {
		return loginAccount{}, loginAttempt{}, dbError(err)
	}
	var account loginAccount
	a := loginAttempt{attempts: row.Attempts, lockedUntil: row.LockedUntil}
	if row.AccountID != nil {
		account = loginAccount{id: *row.AccountID, passwordHash: []byte(deref(row.PasswordHash)),
			isActive: deref(row.IsActive), isVerified: deref(row.IsVerified)}
		a.userID = account.id
	} else {
		a.name = strings.ToLower(login)
	}
	if !row.Claimed {
		return loginAccount{}, loginAttempt{}, s.refuseLocked(ctx, a, now, client)
	}
	return account, a, nil
}

// refuseLocked answers an attempt on a locked login, with how long the lock has left.
func (s *Service) refuseLocked(ctx context.Context, a loginAttempt, now time.Time, client Client) error {
	var (
		lockedUntil *time.Time
		err         error
	)
	if a.userID != uuid.Nil {
		lockedUntil, err = s.queries().GetUserLockedUntil(ctx, a.userID)
	} else {
		lockedUntil, err = s.queries().GetLoginNameLockedUntil(ctx, a.name)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The account was deleted in between: there is nothing left to log in to.
		return errInvalidCredentials()
	}
	if err != nil {
		return dbError(err)
	}
	var left time.Duration
	if lockedUntil != nil {
		left = lockedUntil.Sub(now)
	}
	s.auditLoginFailure(ctx, a.userID, reasonLocked, client)
	return errAccountLocked(left)
}

// refundLoginAttempt takes back an attempt whose password was never checked, because the
// bcrypt pool was busy or the request ended. A failure to do so is logged: it costs the user
// one attempt at most.
func (s *Service) refundLoginAttempt(ctx context.Context, a loginAttempt) {
	if a.attempts == 0 {
		return
	}
	// The request's context may be what ended; the refund still belongs in the database.
	ctx = context.WithoutCancel(ctx)
	var err error
	if a.userID != uuid.Nil {
		err = s.queries().RefundUserLoginAttempt(ctx, db.RefundUserLoginAttemptParams{UserID: a.userID, ClaimedAttempts: a.attempts})
	} else {
		err = s.queries().RefundLoginNameAttempt(ctx, db.RefundLoginNameAttemptParams{LoginName: a.name, ClaimedAttempts: a.attempts})
	}
	if err != nil {
		logctx.From(ctx, s.log).ErrorContext(ctx, "taking back an unchecked login attempt", "err", err)
	}
}

// loginFailed records a failed password check. When the failure locks the login, that is
// recorded too.
func (s *Service) loginFailed(ctx context.Context, a loginAttempt, reason string, client Client) {
	s.auditLoginFailure(ctx, a.userID, reason, client)
	if a.lockedUntil == nil {
		return
	}
	s.metrics.Lockout()
	details := map[string]any{
		"failed_attempts": a.attempts,
		"locked_seconds":  ceilSeconds(a.lockedUntil.Sub(s.now())),
	}
	if a.userID == uuid.Nil {
		details["reason"] = reasonUnknownUser
	}
	s.auditOutsideTx(ctx, auditEntry{Type: AuditAccountLocked, UserID: a.userID, Client: client, Details: details})
}

// resetLoginFailures starts an account's count again after a right password.
func (s *Service) resetLoginFailures(ctx context.Context, a loginAttempt) error {
	if a.attempts == 0 {
		return nil
	}
	return dbError(s.queries().ResetUserLoginFailures(ctx, a.userID))
}

// UnlockUser clears a user's lock and failed-login count. Only admins may. Unlocking an
// account that is not locked changes nothing and succeeds.
//
// Errors: forbidden; not found; unavailable; internal.
func (s *Service) UnlockUser(ctx context.Context, actor Principal, id uuid.UUID, client Client) (User, error) {
	if !actor.User.IsAdmin {
		return User{}, errForbidden("Admin rights are required.")
	}
	var u db.User
	err := s.inTx(ctx, func(q *db.Queries) error {
		before, err := q.GetUserByIDForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if u, err = q.UnlockUser(ctx, id); err != nil {
			return err
		}
		wasLocked := before.LockedUntil != nil && before.LockedUntil.After(s.now())
		return s.audit(ctx, q, auditEntry{Type: AuditAccountUnlocked, UserID: id, Client: client,
			Details: map[string]any{"actor_id": actor.User.ID, "was_locked": wasLocked, "failed_attempts": before.FailedLoginAttempts}})
	})
	return userFrom(u), err
}

// deref returns what p points to, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
