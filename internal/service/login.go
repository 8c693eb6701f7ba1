package service

import (
	"context"
	"errors"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/logctx"
)

// PasswordLogin checks a username (or email) and password and opens a new session. In order:
// the login name's rate limit; a place in line in the bounded bcrypt pool; the lockout, which
// refuses a locked login without spending bcrypt; the password; then the account's state. A
// name that matches no account goes through the same steps, with the same answers, as a wrong
// password for one that does. The quota is the login name's rate limit as this attempt left
// it, also when the login fails; it is zero when that limit is off. Every outcome is counted
// in the login metrics.
//
// A right password stored under an outdated algorithm or cost is hashed again and stored (see
// rehash). An unverified account may log in only in VerifyOff mode.
//
// Errors: rate limited (rate_limited, account_locked); unauthenticated (invalid_credentials)
// for an unknown name or a wrong password, whatever the account's state; forbidden
// (account_inactive, account_unverified) once the password is right; unavailable
// (server_busy, database_unavailable); internal.
func (s *Service) PasswordLogin(ctx context.Context, login, password string, client Client) (pair TokenPair, quota Quota, err error) {
	defer func() { s.metrics.Login(loginOutcome(ctx, err)) }()
	if quota, err = s.limitLogin(ctx, login, client); err != nil {
		return TokenPair{}, quota, err
	}
	// Admission to the bcrypt pool comes first: when the server is too busy to check the
	// password soon, the answer is a fast 503 that has cost no database work.
	reservation, err := s.reservePasswordCheck(ctx, client)
	if err != nil {
		return TokenPair{}, quota, err
	}
	defer reservation.Cancel()
	// An unknown name is counted, locked and hashed below exactly like a known one, so that
	// neither the answers nor their timing reveal it.
	account, attempt, err := s.claimAccount(ctx, login, client)
	if err != nil {
		return TokenPair{}, quota, err
	}
	hash := account.passwordHash
	ok, err := s.checkPassword(ctx, reservation, hash, password, client)
	if err != nil {
		s.refundLoginAttempt(ctx, attempt)
		return TokenPair{}, quota, err
	}
	if !ok {
		reason := reasonWrongPassword
		if hash == nil {
			reason = reasonUnknownUser
		}
		s.loginFailed(ctx, attempt, reason, client)
		return TokenPair{}, quota, errInvalidCredentials()
	}
	// The password is right, so the count of failures starts again: here for an account
	// that cannot log in, and in openSession's own statement otherwise. And telling the
	// caller about the account's state leaks nothing.
	mustVerify := !account.isVerified && s.verification != VerifyOff
	if !account.isActive || mustVerify {
		if err := s.resetLoginFailures(ctx, attempt); err != nil {
			return TokenPair{}, quota, err
		}
	}
	if !account.isActive {
		s.auditLoginFailure(ctx, account.id, reasonAccountInactive, client)
		return TokenPair{}, quota, Errorf(KindForbidden, CodeAccountInactive, "The account is inactive.")
	}
	if mustVerify {
		s.auditLoginFailure(ctx, account.id, reasonAccountUnverified, client)
		return TokenPair{}, quota, Errorf(KindForbidden, CodeAccountUnverified, "The account has not been verified.")
	}
	pair, err = s.openSession(ctx, account.id, client)
	if err == nil && s.hasher.NeedsRehash(hash) {
		s.rehash(ctx, account.id, hash, password, client)
	}
	return pair, quota, err
}

// rehash replaces a stored hash made with another algorithm or cost than the configured one,
// now that a login has proved the password, so that a change of AUTHLY_PASSWORD_HASH or
// AUTHLY_BCRYPT_COST reaches every account that logs in. It is best effort: when the hash pool
// is busy, or the password changed meanwhile, the old hash stays, still valid, until the next
// login. Failures are logged, never returned: the login has succeeded.
func (s *Service) rehash(ctx context.Context, userID uuid.UUID, oldHash []byte, password string, client Client) {
	log := logctx.From(ctx, s.log)
	newHash, err := s.hasher.Hash(ctx, []byte(password))
	if err != nil {
		log.LogAttrs(ctx, slog.LevelInfo, "password hash not upgraded; the next login tries again", slog.Any("err", err))
		return
	}
	n, err := s.queries().RehashUserPassword(ctx, db.RehashUserPasswordParams{ID: userID, OldHash: string(oldHash), NewHash: string(newHash)})
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "storing an upgraded password hash", slog.Any("err", err))
		return
	}
	if n == 1 {
		s.metrics.PasswordRehashed(s.hasher.Hasher().Algorithm())
	}
}

// OutcomeClientClosed is the outcome of a request whose client went away before it was
// answered, and which failed because of it: the client's doing, not the server's, so it is
// kept apart from the server's own failures in metrics and logs.
const OutcomeClientClosed = "client_closed_request"

// loginOutcome labels a login for metrics: "success", the error's code, a closed set, or
// OutcomeClientClosed for a login that the end of its request cut short.
func loginOutcome(ctx context.Context, err error) string {
	if err == nil {
		return "success"
	}
	e := AsError(err)
	if (e.Kind == KindInternal || e.Kind == KindUnavailable) && errors.Is(ctx.Err(), context.Canceled) {
		return OutcomeClientClosed
	}
	return e.Code
}

// claimAccount finds the account a login names and, when lockout is on, counts the attempt
// in the same statement (claimLoginAttempt).
//
// Errors: rate limited (account_locked); unavailable; internal.
func (s *Service) claimAccount(ctx context.Context, login string, client Client) (loginAccount, loginAttempt, error) {
	if s.lockout.off() {
		account, err := s.findLoginAccount(ctx, login)
		return account, loginAttempt{userID: account.id}, err
	}
	return s.claimLoginAttempt(ctx, login, client)
}

// findLoginAccount looks up the account a login names, without counting an attempt: for when
// lockout is off.
func (s *Service) findLoginAccount(ctx context.Context, login string) (loginAccount, error) {
	var (
		user db.User
		err  error
	)
	if username, email := loginNames(login); email != nil {
		user, err = s.queries().GetUserByEmail(ctx, *email)
	} else {
		user, err = s.queries().GetUserByUsername(ctx, *username)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return loginAccount{}, nil
	case err != nil:
		return loginAccount{}, dbError(err)
	}
	return loginAccount{id: user.ID, passwordHash: []byte(user.PasswordHash), isActive: user.IsActive, isVerified: user.IsVerified}, nil
}

// openSession creates a session with its first token pair, revokes the user's oldest
// sessions beyond the cap and records the login: three statements in one transaction, sent
// in one round trip. The first also updates the user's row, which locks it until the end, so
// concurrent logins of one user see each other's sessions when the cap is enforced (see
// LockUserSession). The session's absolute end is fixed here; no rotation moves it.
func (s *Service) openSession(ctx context.Context, userID uuid.UUID, client Client) (TokenPair, error) {
	now := s.now()
	sessionID := uuid.New()
	absoluteEnd := now.Add(s.sessions.MaxLifetime)
	access, refresh, err := s.issuePair(userID, sessionID, now, absoluteEnd)
	if err != nil {
		return TokenPair{}, err
	}
	var pipeline database.Pipeline
	q := db.New(&pipeline)
	// Queuing a statement only fails for a statement that returns rows; each error is still
	// checked, and each statement's own outcome is checked when the pipeline runs.
	err = q.CreateSessionWithTokens(ctx, db.CreateSessionWithTokensParams{
		Now:                      now,
		UserID:                   userID,
		SessionID:                sessionID,
		SessionExpiresAt:         refresh.ExpiresAt,
		SessionAbsoluteExpiresAt: absoluteEnd,
		UserAgent:                truncate(client.UserAgent, maxUserAgent),
		Ip:                       client.IP,
		AccessJti:                access.ID,
		AccessExpiresAt:          access.ExpiresAt,
		RefreshJti:               refresh.ID,
		RefreshExpiresAt:         refresh.ExpiresAt,
	})
	if err != nil {
		return TokenPair{}, dbError(err)
	}
	if err := s.enforceSessionLimit(ctx, q, userID, now, client); err != nil {
		return TokenPair{}, dbError(err)
	}
	err = s.audit(ctx, q, auditEntry{Type: AuditLoginSucceeded, UserID: userID, Client: client,
		Details: map[string]any{"session_id": sessionID}})
	if err != nil {
		return TokenPair{}, Internal(err)
	}
	if err := s.store.RunPipeline(ctx, &pipeline); err != nil {
		return TokenPair{}, dbError(err)
	}
	s.countIssuedPair()
	return tokenPair(access, refresh, now), nil
}
