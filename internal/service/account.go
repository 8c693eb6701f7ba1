package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/logctx"
	"github.com/authly/authly/internal/mail"
	"github.com/authly/authly/internal/ratelimit"
)

// Verification is how an account's email address gets verified (AUTHLY_REQUIRE_VERIFICATION).
type Verification string

// The verification modes.
const (
	// VerifyByEmail: registration emails a verification link; an account logs in once its
	// address is verified, by that link or by an admin. The default.
	VerifyByEmail Verification = "email"
	// VerifyByAdmin: no verification mail; an account logs in once an admin verifies it.
	VerifyByAdmin Verification = "admin"
	// VerifyOff: accounts log in unverified. Registration sends no link, but a user may ask
	// for one, and is_verified tells applications whether the address was confirmed.
	VerifyOff Verification = "off"
)

// DefaultPublicURL is where emailed links point when Deps.PublicURL is empty.
const DefaultPublicURL = "http://127.0.0.1:8000"

// LinkPurpose names what a one-time link does; it is also the token's purpose in
// account_tokens.
type LinkPurpose string

// The one-time links, each with its lifetime and the page it opens.
const (
	LinkVerifyEmail   LinkPurpose = "verify_email"
	LinkPasswordReset LinkPurpose = "password_reset"
	LinkEmailChange   LinkPurpose = "email_change"
)

// Lifetimes of the one-time links.
const (
	VerifyEmailLinkTTL   = 24 * time.Hour
	PasswordResetLinkTTL = 30 * time.Minute
	EmailChangeLinkTTL   = 24 * time.Hour
)

// Pages are the paths, under the public URL, of the pages the emailed links open.
var Pages = map[LinkPurpose]string{
	LinkVerifyEmail:   "/verify-email",
	LinkPasswordReset: "/reset-password",
	LinkEmailChange:   "/confirm-email-change",
}

func (p LinkPurpose) ttl() time.Duration {
	switch p {
	case LinkPasswordReset:
		return PasswordResetLinkTTL
	case LinkEmailChange:
		return EmailChangeLinkTTL
	}
	return VerifyEmailLinkTTL
}

// MailLimits bound the requests that send mail to an address given by anyone: password reset
// requests and verification resends (AUTHLY_RATE_LIMIT_MAIL_*). A zero Limit is off.
type MailLimits struct {
	Address ratelimit.Limit // per email address, lower-cased, whether or not an account has it
	IP      ratelimit.Limit // per client IP
}

// The names of the mail limits in the rate limit store and in audit details.
const (
	limitMailAddress = "mail_address"
	limitMailIP      = "mail_ip"
)

// linkTokenBytes is the randomness of a one-time token: 256 bits, far beyond guessing.
const linkTokenBytes = 32

// maxLinkTokenLen bounds a token as presented; a real one is 43 characters.
const maxLinkTokenLen = 128

// newLinkToken returns a random token for a link, URL-safe, and the hash that is stored.
func newLinkToken() (token string, hash []byte, err error) {
	b := make([]byte, linkTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashLinkToken(token), nil
}

// hashLinkToken is what account_tokens stores of a token. A fast hash is enough: the token
// has 256 random bits, so there is nothing to guess from its hash.
func hashLinkToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// errInvalidLinkToken is the one answer for a link token that is malformed, unknown, used,
// expired, or no longer applies, so the answer never tells which.
func errInvalidLinkToken() *Error {
	return Errorf(KindInvalid, CodeInvalidLinkToken, "The link is invalid, expired or already used; ask for a new one.")
}

// wellFormedLinkToken reports whether a presented token could be one Authly made.
func wellFormedLinkToken(token string) bool {
	if token == "" || len(token) > maxLinkTokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

// link returns the absolute URL of the page for purpose, carrying token.
func (s *Service) link(purpose LinkPurpose, token string) string {
	return s.publicURL + Pages[purpose] + "?token=" + url.QueryEscape(token)
}

// issueLink withdraws the user's outstanding links of purpose and stores a new token, with q
// in the caller's transaction. It returns the token and when it expires.
func (s *Service) issueLink(ctx context.Context, q *db.Queries, purpose LinkPurpose, userID uuid.UUID, email string) (string, time.Time, error) {
	token, hash, err := newLinkToken()
	if err != nil {
		return "", time.Time{}, Internal(err)
	}
	if _, err := q.DeleteUserAccountTokens(ctx, db.DeleteUserAccountTokensParams{UserID: userID, Purpose: string(purpose)}); err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	expires := now.Add(purpose.ttl())
	err = q.CreateAccountToken(ctx, db.CreateAccountTokenParams{
		TokenHash: hash, Purpose: string(purpose), UserID: userID, Email: email, CreatedAt: now, ExpiresAt: expires,
	})
	return token, expires, err
}

// queueMail renders m and writes it to the outbox with q, in the caller's transaction, and
// records a mail_queued audit event naming its kind and recipient, never its link.
func (s *Service) queueMail(ctx context.Context, q *db.Queries, userID uuid.UUID, m mail.Message, client Client) error {
	id, err := s.outbox.Enqueue(ctx, q, m)
	if err != nil {
		return err
	}
	return s.audit(ctx, q, auditEntry{Type: AuditMailQueued, UserID: userID, Client: client,
		Details: map[string]any{"kind": string(m.Kind), "to": m.To, "mail_id": id}})
}

// queueLinkMail issues a link of purpose for the user and queues the mail of kind carrying it.
func (s *Service) queueLinkMail(ctx context.Context, q *db.Queries, purpose LinkPurpose, kind mail.Kind, u db.User, to string, client Client) error {
	token, expires, err := s.issueLink(ctx, q, purpose, u.ID, to)
	if err != nil {
		return err
	}
	return s.queueMail(ctx, q, u.ID, mail.Message{
		Kind: kind, To: to, DiscardAfter: expires,
		Data: mail.Data{Username: u.Username, Link: s.link(purpose, token), ValidFor: purpose.ttl(), NewEmail: to, OldEmail: u.Email},
	}, client)
}

// queueVerification queues the verification mail for u's current address.
func (s *Service) queueVerification(ctx context.Context, q *db.Queries, u db.User, client Client) error {
	token, expires, err := s.issueLink(ctx, q, LinkVerifyEmail, u.ID, u.Email)
	if err != nil {
		return err
	}
	return s.queueMail(ctx, q, u.ID, mail.Message{
		Kind: mail.KindVerifyEmail, To: u.Email, DiscardAfter: expires,
		Data: mail.Data{Username: u.Username, Link: s.link(LinkVerifyEmail, token), ValidFor: VerifyEmailLinkTTL},
	}, client)
}

// queuePasswordChangedNotice tells u that its password changed at now.
func (s *Service) queuePasswordChangedNotice(ctx context.Context, q *db.Queries, u db.User, now time.Time, client Client) error {
	return s.queueMail(ctx, q, u.ID, mail.Message{Kind: mail.KindPasswordChangedNotice, To: u.Email,
		Data: mail.Data{Username: u.Username, At: now}}, client)
}

// queueEmailChangedNotice tells the old address that the account's email became newEmail.
func (s *Service) queueEmailChangedNotice(ctx context.Context, q *db.Queries, u db.User, oldEmail, newEmail string, now time.Time, client Client) error {
	return s.queueMail(ctx, q, u.ID, mail.Message{Kind: mail.KindEmailChangedNotice, To: oldEmail,
		Data: mail.Data{Username: u.Username, NewEmail: newEmail, OldEmail: oldEmail, At: now}}, client)
}

// LinkInfo is what a valid link token is for, for the page that asks a person to confirm.
type LinkInfo struct {
	Username string
	Email    string // the address the link was sent to: the new one for an email change
}

// CheckLink reports, without using it, whether token is a live link of purpose, so that the
// page a link opens can say at once that it is invalid. It changes nothing: mail scanners
// open links too.
//
// Errors: invalid (invalid_link_token); unavailable; internal.
func (s *Service) CheckLink(ctx context.Context, purpose LinkPurpose, token string) (LinkInfo, error) {
	if !wellFormedLinkToken(token) {
		return LinkInfo{}, errInvalidLinkToken()
	}
	row, err := s.queries().FindAccountToken(ctx, db.FindAccountTokenParams{TokenHash: hashLinkToken(token), Purpose: string(purpose), Now: s.now()})
	if errors.Is(err, pgx.ErrNoRows) {
		return LinkInfo{}, errInvalidLinkToken()
	}
	if err != nil {
		return LinkInfo{}, dbError(err)
	}
	return LinkInfo{Username: row.Username, Email: row.Email}, nil
}

// consumeLink uses token with q: it is deleted, so it works once. A token that is malformed,
// unknown, used or expired is invalid_link_token.
func (s *Service) consumeLink(ctx context.Context, q *db.Queries, purpose LinkPurpose, token string) (db.ConsumeAccountTokenRow, error) {
	if !wellFormedLinkToken(token) {
		return db.ConsumeAccountTokenRow{}, errInvalidLinkToken()
	}
	row, err := q.ConsumeAccountToken(ctx, db.ConsumeAccountTokenParams{TokenHash: hashLinkToken(token), Purpose: string(purpose), Now: s.now()})
	if errors.Is(err, pgx.ErrNoRows) {
		return row, errInvalidLinkToken()
	}
	return row, err
}

// VerifyEmail verifies an account's address with the token of its verification link. The link
// works once, for 24 hours, and only while the account still has the address it was sent to.
//
// Errors: invalid (invalid_link_token); unavailable; internal.
func (s *Service) VerifyEmail(ctx context.Context, token string, client Client) error {
	return s.inTx(ctx, func(q *db.Queries) error {
		link, err := s.consumeLink(ctx, q, LinkVerifyEmail, token)
		if err != nil {
			return err
		}
		u, err := q.MarkEmailVerified(ctx, db.MarkEmailVerifiedParams{ID: link.UserID, Email: link.Email})
		if errors.Is(err, pgx.ErrNoRows) {
			return errInvalidLinkToken() // the address changed since the link was sent
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, q, auditEntry{Type: AuditEmailVerified, UserID: u.ID, Client: client,
			Details: map[string]any{"method": "link", "email": u.Email}})
	})
}

// Deferred starts work a request does after its answer: the caller calls it once the answer
// has been sent, so that neither the answer nor the time it takes depends on what the work
// finds. It may be called at most once; not calling it drops the work.
type Deferred func()

// ResendVerification asks for a new verification link for the account with email. The answer
// is the same whether or not such an account exists and needs one, and so is its timing: the
// lookup and the mail are the returned Deferred, to start after answering. A new link replaces
// the older ones. In VerifyByAdmin mode nothing is sent. The request counts against the
// address's and the client IP's mail limits, whether or not an account has the address.
//
// Errors: invalid (invalid_request); rate limited (rate_limited).
func (s *Service) ResendVerification(ctx context.Context, email string, client Client) (Deferred, error) {
	address, err := s.limitMailRequest(ctx, email, client)
	if err != nil {
		return nil, err
	}
	if s.verification == VerifyByAdmin {
		return func() {}, nil
	}
	return s.deferred.later(ctx, s.log, "resending a verification link", func(ctx context.Context) error {
		return s.inTx(ctx, func(q *db.Queries) error {
			u, err := q.GetUserByEmail(ctx, address)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil || u.IsVerified || !u.IsActive {
				return err
			}
			return s.queueVerification(ctx, q, u, client)
		})
	}), nil
}

// RequestPasswordReset emails a password reset link, valid 30 minutes, to the account with
// email. The answer is the same whether or not such an account exists, and so is its timing:
// the lookup and the mail are the returned Deferred, to start after answering. Inactive
// accounts get no link. A new link replaces the older ones. The request counts against the
// address's and the client IP's mail limits, whether or not an account has the address.
//
// Errors: invalid (invalid_request); rate limited (rate_limited).
func (s *Service) RequestPasswordReset(ctx context.Context, email string, client Client) (Deferred, error) {
	address, err := s.limitMailRequest(ctx, email, client)
	if err != nil {
		return nil, err
	}
	return s.deferred.later(ctx, s.log, "requesting a password reset", func(ctx context.Context) error {
		return s.inTx(ctx, func(q *db.Queries) error {
			u, err := q.GetUserByEmail(ctx, address)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil || !u.IsActive {
				return err
			}
			if err := s.queueLinkMail(ctx, q, LinkPasswordReset, mail.KindPasswordReset, u, u.Email, client); err != nil {
				return err
			}
			return s.audit(ctx, q, auditEntry{Type: AuditPasswordResetRequested, UserID: u.ID, Client: client})
		})
	}), nil
}

// limitMailRequest checks an address given by anyone and counts the request against the mail
// limits of the address and of the client IP. It returns the address lower-cased.
//
// Errors: invalid (invalid_request); rate limited (rate_limited).
func (s *Service) limitMailRequest(ctx context.Context, email string, client Client) (string, error) {
	address, fe := normalizeEmail(email)
	if fe != nil {
		return "", InvalidFields(*fe)
	}
	if _, err := s.limit(ctx, limitMailIP, client.IP, s.mailLimits.IP, client); err != nil {
		return "", err
	}
	if _, err := s.limit(ctx, limitMailAddress, address, s.mailLimits.Address, client); err != nil {
		return "", err
	}
	return address, nil
}

// ResetPassword sets a new password with the token of a reset link. The password follows the
// usual rules; a refused one leaves the link usable. The reset revokes every session of the
// account, withdraws every other reset link, clears the lockout, tells the account's address
// that its password changed, and, in VerifyByEmail mode, marks the address verified, since
// following the link proved it.
//
// Errors: invalid (invalid_link_token; invalid_request with field errors); unavailable
// (server_busy, database_unavailable); internal.
func (s *Service) ResetPassword(ctx context.Context, token, newPassword string, client Client) error {
	info, err := s.CheckLink(ctx, LinkPasswordReset, token)
	if err != nil {
		return err
	}
	if fe := validatePassword(newPassword, info.Username, info.Email); fe != nil {
		return Collect(fe)
	}
	// Hashed before the transaction, so no row lock waits on the hash pool.
	hash, err := s.hashPassword(ctx, newPassword, client)
	if err != nil {
		return err
	}
	now := s.now()
	return s.inTx(ctx, func(q *db.Queries) error {
		link, err := s.consumeLink(ctx, q, LinkPasswordReset, token)
		if err != nil {
			return err
		}
		u, err := q.SetUserPassword(ctx, db.SetUserPasswordParams{ID: link.UserID, PasswordHash: hash, ClearLockout: true})
		if err != nil {
			return err
		}
		if s.verification == VerifyByEmail && !u.IsVerified && strings.EqualFold(u.Email, link.Email) {
			if u, err = q.MarkEmailVerified(ctx, db.MarkEmailVerifiedParams{ID: u.ID, Email: u.Email}); err != nil {
				return err
			}
		}
		if _, err := q.DeleteUserAccountTokens(ctx, db.DeleteUserAccountTokensParams{UserID: u.ID, Purpose: string(LinkPasswordReset)}); err != nil {
			return err
		}
		ended, err := s.endSessions(ctx, q, u.ID, nil, reasonPasswordReset, now)
		if err != nil {
			return err
		}
		if err := s.queuePasswordChangedNotice(ctx, q, u, now, client); err != nil {
			return err
		}
		return s.audit(ctx, q, auditEntry{Type: AuditPasswordReset, UserID: u.ID, Client: client, Details: map[string]any{
			"revoked_sessions": ended.RevokedSessions, "invalidated_tokens": ended.InvalidatedTokens, "lockout_cleared": true}})
	})
}

// ConfirmEmailChange makes an email change take effect with the token of the confirmation link
// sent to the new address: the account gets the new address, verified, and the old address
// gets a notice.
//
// Errors: invalid (invalid_link_token); conflict (email_taken, when another account took the
// address meanwhile; the link then stays usable); unavailable; internal.
func (s *Service) ConfirmEmailChange(ctx context.Context, token string, client Client) error {
	now := s.now()
	return s.inTx(ctx, func(q *db.Queries) error {
		link, err := s.consumeLink(ctx, q, LinkEmailChange, token)
		if err != nil {
			return err
		}
		before, err := q.GetUserByIDForUpdate(ctx, link.UserID)
		if err != nil {
			return err
		}
		u, err := q.SetUserEmail(ctx, db.SetUserEmailParams{ID: before.ID, Email: link.Email})
		if err != nil {
			return err
		}
		// A verification link sent to the old address is of no use any more.
		if _, err := q.DeleteUserAccountTokens(ctx, db.DeleteUserAccountTokensParams{UserID: u.ID, Purpose: string(LinkVerifyEmail)}); err != nil {
			return err
		}
		if err := s.audit(ctx, q, auditEntry{Type: AuditEmailChanged, UserID: u.ID, Client: client,
			Details: map[string]any{"old_email": before.Email, "new_email": u.Email}}); err != nil {
			return err
		}
		if strings.EqualFold(before.Email, u.Email) {
			return nil
		}
		return s.queueEmailChangedNotice(ctx, q, u, before.Email, u.Email, now, client)
	})
}

// maxDeferred bounds the deferred work in progress at once. Beyond it, a request's deferred
// work is dropped and logged: the mail limits normally stop a flood long before.
const maxDeferred = 32

// deferredTimeout bounds one piece of deferred work.
const deferredTimeout = 30 * time.Second

// deferredWork runs the work of requests whose answer must not depend on it, after answering.
type deferredWork struct {
	slots chan struct{}
	wg    sync.WaitGroup
}

// later returns a Deferred that runs fn on its own goroutine, with a context that outlives the
// request but keeps its logger. Failures are logged.
func (d *deferredWork) later(ctx context.Context, log *slog.Logger, what string, fn func(ctx context.Context) error) Deferred {
	log = logctx.From(ctx, log)
	ctx = context.WithoutCancel(ctx)
	var once sync.Once
	return func() {
		once.Do(func() {
			select {
			case d.slots <- struct{}{}:
			default:
				log.LogAttrs(ctx, slog.LevelWarn, "too much deferred work; dropped", slog.String("work", what))
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer func() { <-d.slots }()
				ctx, cancel := context.WithTimeout(ctx, deferredTimeout)
				defer cancel()
				if err := fn(ctx); err != nil {
					log.LogAttrs(ctx, slog.LevelError, "deferred work failed", slog.String("work", what), slog.Any("err", err))
				}
			}()
		})
	}
}

// WaitDeferred waits until the work deferred by earlier requests has finished, or ctx ends.
// The server calls it while shutting down, after the last request.
func (s *Service) WaitDeferred(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.deferred.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
