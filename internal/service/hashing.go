package service

import (
	"context"
	"errors"
	"time"

	"github.com/authly/authly/internal/hashpool"
)

// serverBusyAuditInterval bounds server_busy audit events to one per interval across every
// instance: under a flood the metrics count each refusal, and the audit log only notes that
// it happened.
const serverBusyAuditInterval = time.Minute

// errServerBusy answers a request whose bcrypt work the pool refused: at once, with a
// Retry-After, instead of a queue that grows without bound.
func errServerBusy(retryAfter time.Duration, cause error) *Error {
	return &Error{Kind: KindUnavailable, Code: CodeServerBusy, Message: "The server is busy; retry shortly.",
		RetryAfter: max(retryAfter, time.Second), Cause: cause}
}

// hashPassword hashes a new password in the bcrypt pool.
//
// Errors: unavailable (server_busy); internal.
func (s *Service) hashPassword(ctx context.Context, password string, client Client) (string, error) {
	h, err := s.hasher.Hash(ctx, []byte(password))
	if err != nil {
		return "", s.hashError(ctx, "hash", err, client)
	}
	return string(h), nil
}

// reservePasswordCheck takes a place in line in the bcrypt pool for a password check, or
// refuses at once when the wait would be too long, before the caller does any other work for
// the check. The caller must end the reservation: checkPassword does, and so does Cancel.
//
// Errors: unavailable (server_busy); internal.
func (s *Service) reservePasswordCheck(ctx context.Context, client Client) (*hashpool.Reservation, error) {
	r, err := s.hasher.Reserve(ctx)
	if err != nil {
		return nil, s.hashError(ctx, "compare", err, client)
	}
	return r, nil
}

// checkPassword compares a password with a stored hash on its reservation in the bcrypt pool.
// A nil hash, for a login name with no account, compares against the dummy hash and always
// fails, so both cost the same. A password longer than bcrypt's 72 bytes never matches: no
// stored password is that long, and bcrypt would compare only its first 72 bytes.
//
// Errors: unavailable (server_busy); internal.
func (s *Service) checkPassword(ctx context.Context, r *hashpool.Reservation, hash []byte, password string, client Client) (bool, error) {
	known := hash != nil
	if !known {
		hash = s.dummyHash
	}
	ok, err := r.Compare(ctx, hash, []byte(password))
	if err != nil {
		return false, s.hashError(ctx, "compare", err, client)
	}
	return ok && known && len(password) <= maxPasswordBytes, nil
}

// hashError maps a pool error: a refusal is server_busy, recorded in the audit log with the
// client at most once per serverBusyAuditInterval; anything else is internal.
func (s *Service) hashError(ctx context.Context, operation string, err error, client Client) error {
	if !errors.Is(err, hashpool.ErrBusy) {
		return Internal(err)
	}
	s.metrics.HashRejected()
	// The shared store decides which instance audits; this instance asks it at most once per
	// interval, so that a flood of refusals costs no round trip to Redis each.
	if s.busyAudit.allow(s.now(), serverBusyAuditInterval) && s.firstIn(ctx, "audit:server_busy", serverBusyAuditInterval) {
		stats := s.hasher.Stats()
		s.auditOutsideTx(ctx, auditEntry{Type: AuditServerBusy, Client: client, Details: map[string]any{
			"operation": operation, "workers": stats.Workers, "waiting": stats.Waiting, "rejected_total": stats.Rejected,
		}})
	}
	return errServerBusy(s.hasher.RetryAfter(), err)
}
