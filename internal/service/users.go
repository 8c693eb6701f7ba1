package service

import (
	"context"
	"errors"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/mail"
)

// User is an account as the domain shows it: never its password hash or its brute-force
// state, which stay in the database layer.
type User struct {
	ID         uuid.UUID
	Username   string
	Email      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastLogin  *time.Time
	IsActive   bool
	IsVerified bool
	IsAdmin    bool
}

// userFrom is the domain's view of a users row.
func userFrom(u db.User) User {
	return User{
		ID:         u.ID,
		Username:   u.Username,
		Email:      u.Email,
		CreatedAt:  u.CreatedAt,
		UpdatedAt:  u.UpdatedAt,
		LastLogin:  u.LastLogin,
		IsActive:   u.IsActive,
		IsVerified: u.IsVerified,
		IsAdmin:    u.IsAdmin,
	}
}

// NewUser is a registration request.
type NewUser struct {
	Username string
	Email    string
	Password string
}

// Register creates an active, unverified, non-admin user for client. In VerifyByEmail mode it
// queues, in the same transaction, the mail with the link that verifies the address.
//
// Errors: invalid (invalid_request with field errors); conflict (username_taken,
// email_taken); unavailable (server_busy, database_unavailable); internal.
func (s *Service) Register(ctx context.Context, in NewUser, client Client) (User, error) {
	var u db.User
	err := s.createUser(ctx, in, false, client, func(q *db.Queries, created db.User) error {
		u = created
		err := s.audit(ctx, q, auditEntry{Type: AuditUserRegistered, UserID: u.ID, Client: client,
			Details: map[string]any{"username": u.Username, "email": u.Email}})
		if err != nil || s.verification != VerifyByEmail {
			return err
		}
		return s.queueVerification(ctx, q, u, client)
	})
	return userFrom(u), err
}

// createUser validates and hashes in, then creates the user and runs then on it, in one
// transaction.
func (s *Service) createUser(ctx context.Context, in NewUser, admin bool, client Client, then func(q *db.Queries, u db.User) error) error {
	email, emailErr := normalizeEmail(in.Email)
	if err := Collect(validateUsername(in.Username), emailErr, validatePassword(in.Password, in.Username, in.Email)); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, in.Password, client)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(q *db.Queries) error {
		u, err := q.CreateUser(ctx, db.CreateUserParams{
			Username:     in.Username,
			Email:        email,
			PasswordHash: hash,
			IsActive:     true,
			IsVerified:   admin,
			IsAdmin:      admin,
		})
		if err != nil {
			return err
		}
		return then(q, u)
	})
}

// Where an admin account created by EnsureAdmin comes from, as its admin_created audit event
// records it.
const (
	AdminFromBootstrap = "bootstrap"    // AUTHLY_ADMIN_* at start
	AdminFromCommand   = "create_admin" // the create-admin command
)

// AdminConflict is why EnsureAdmin refused to go on: the username exists, but not as the
// admin it was asked for.
type AdminConflict struct {
	Username string
	// NotAdmin: the user exists and is not an admin. Otherwise it is an admin with another
	// email, Email.
	NotAdmin bool
	Email    string
}

func (e *AdminConflict) Error() string {
	if e.NotAdmin {
		return "the user " + e.Username + " exists and is not an admin"
	}
	return "the admin " + e.Username + " exists with another email, " + e.Email
}

// EnsureAdmin creates an active, verified admin, from (AdminFromBootstrap or
// AdminFromCommand), and records it in the audit log. When the username exists already as an
// admin with that email, it does nothing and reports created=false. When it exists otherwise,
// as a user who is not an admin or as an admin with another email, it changes nothing and
// returns an *AdminConflict: an existing account is never promoted, nor its email replaced,
// behind its owner's back.
//
// Errors: *AdminConflict; invalid; conflict (email_taken, when another user has the email);
// unavailable; internal.
func (s *Service) EnsureAdmin(ctx context.Context, in NewUser, from string) (created bool, err error) {
	existing, err := s.queries().GetUserByUsername(ctx, in.Username)
	switch {
	case err == nil && !existing.IsAdmin:
		return false, &AdminConflict{Username: existing.Username, NotAdmin: true}
	case err == nil && !strings.EqualFold(existing.Email, strings.TrimSpace(in.Email)):
		return false, &AdminConflict{Username: existing.Username, Email: existing.Email}
	case err == nil:
		return false, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return false, dbError(err)
	}
	err = s.createUser(ctx, in, true, Client{}, func(q *db.Queries, u db.User) error {
		return s.audit(ctx, q, auditEntry{Type: AuditAdminCreated, UserID: u.ID,
			Details: map[string]any{"source": from, "username": u.Username, "email": u.Email}})
	})
	return err == nil, err
}

// VerifyUser marks a user verified. Only admins may.
//
// Errors: forbidden; not found; unavailable; internal.
func (s *Service) VerifyUser(ctx context.Context, actor Principal, id uuid.UUID, client Client) (User, error) {
	if !actor.User.IsAdmin {
		return User{}, errForbidden("Admin rights are required.")
	}
	var u db.User
	err := s.inTx(ctx, func(q *db.Queries) error {
		var err error
		if u, err = q.SetUserVerified(ctx, id); err != nil {
			return err
		}
		return s.auditUserChange(ctx, q, actor, id, map[string]any{"is_verified": true}, client)
	})
	return userFrom(u), err
}

// ListUsers returns a page of users, newest first. Only admins may.
//
// Errors: forbidden; unavailable; internal.
func (s *Service) ListUsers(ctx context.Context, actor Principal, skip, limit int) ([]User, error) {
	if !actor.User.IsAdmin {
		return nil, errForbidden("Admin rights are required.")
	}
	if skip < 0 || limit < 1 || limit > 100 {
		return nil, InvalidFields(FieldError{Field: "limit", Message: "must be from 1 to 100, with skip at least 0"})
	}
	rows, err := s.queries().ListUsers(ctx, db.ListUsersParams{SkipRows: int32(min(skip, math.MaxInt32)), MaxRows: int32(limit)})
	if err != nil {
		return nil, dbError(err)
	}
	users := make([]User, len(rows))
	for i, r := range rows {
		users[i] = userFrom(r)
	}
	return users, nil
}

// GetUser returns a user to itself or to an admin. Anyone else gets not found, exactly as
// for an id that does not exist, so ids cannot be probed.
//
// Errors: not found; unavailable; internal.
func (s *Service) GetUser(ctx context.Context, actor Principal, id uuid.UUID) (User, error) {
	if !canSee(actor, id) {
		return User{}, NotFound()
	}
	u, err := s.queries().GetUserByID(ctx, id)
	return userFrom(u), dbError(err)
}

// canSee reports whether actor may see or change user id: itself, or anyone for an admin.
func canSee(actor Principal, id uuid.UUID) bool {
	return actor.User.IsAdmin || actor.User.ID == id
}

// UserChanges is a partial update; nil fields stay as they are.
type UserChanges struct {
	Username   *string
	Email      *string
	Password   *string
	IsActive   *bool
	IsVerified *bool
	IsAdmin    *bool
	// CurrentPassword re-authenticates a user changing its own email or password.
	CurrentPassword *string
}

// auditDetails names the changed fields with their new values; a new password is only
// noted, never recorded.
func (c UserChanges) auditDetails() map[string]any {
	d := map[string]any{}
	if c.Username != nil {
		d["username"] = *c.Username
	}
	if c.Email != nil {
		d["email"] = *c.Email
	}
	if c.Password != nil {
		d["password"] = "changed"
	}
	for name, v := range map[string]*bool{"is_active": c.IsActive, "is_verified": c.IsVerified, "is_admin": c.IsAdmin} {
		if v != nil {
			d[name] = *v
		}
	}
	return d
}

func (c UserChanges) privileged() bool {
	return c.IsActive != nil || c.IsVerified != nil || c.IsAdmin != nil
}

// UpdateResult is what UpdateUser did.
type UpdateResult struct {
	User User
	// EmailChangePending: a user asked to change its own email; a confirmation link went to
	// the new address, and User still has the old one until it is followed.
	EmailChangePending bool
}

// Reasons a change of account ends a user's sessions, in sessions.revoked_reason.
const (
	reasonAccountDeactivated = "account_deactivated"
	reasonRoleChanged        = "role_changed"
	reasonPasswordChanged    = "password_changed"
	reasonPasswordReset      = "password_reset"
	reasonAccountDeleted     = "account_deleted"
)

// sessionEndReason says why a change from before to after ends the user's sessions, or "" when
// it does not: a deactivation, an un-verification, a change of role, or a new password.
func sessionEndReason(before, after db.User, passwordChanged bool) string {
	switch {
	case before.IsActive && !after.IsActive:
		return reasonAccountDeactivated
	case before.IsVerified && !after.IsVerified:
		return reasonAccountUnverified
	case before.IsAdmin != after.IsAdmin:
		return reasonRoleChanged
	case passwordChanged:
		return reasonPasswordChanged
	}
	return ""
}

// UpdateUser applies a partial update. Users may change their own username, email and
// password; only admins may change the flags, or anyone else.
//
// Changing one's own email or password needs the current password (c.CurrentPassword): a
// stolen access token alone must not take the account over. A wrong one counts towards the
// lockout. One's own new email takes effect only when the link sent to it is followed
// (EmailChangePending); a new password takes effect at once and ends every other session of
// the user, keeping the caller's. An admin acting on another user needs no password, and the
// change is audited as user_changed.
//
// A deactivation, an un-verification, a change of is_admin or a new password revokes the
// user's sessions and their tokens in the same transaction, with the reason; a new password
// and a changed email are announced to the account's address.
//
// Errors: not found (another user's id, for a non-admin); forbidden (flags, for a non-admin;
// reauthentication_required); invalid (field errors, last_admin); conflict (username_taken,
// email_taken); rate limited (account_locked); unavailable (server_busy,
// database_unavailable); internal.
func (s *Service) UpdateUser(ctx context.Context, actor Principal, id uuid.UUID, c UserChanges, client Client) (UpdateResult, error) {
	if !canSee(actor, id) {
		return UpdateResult{}, NotFound()
	}
	if c.privileged() && !actor.User.IsAdmin {
		return UpdateResult{}, errForbidden("Only admins may change is_active, is_verified or is_admin.")
	}
	self := actor.User.ID == id
	current, err := s.queries().GetUserByID(ctx, id)
	if err != nil {
		return UpdateResult{}, dbError(err)
	}
	params := db.UpdateUserParams{ID: id, Username: c.Username, IsActive: c.IsActive, IsVerified: c.IsVerified, IsAdmin: c.IsAdmin}
	var fes []*FieldError
	username, email := current.Username, current.Email
	var newEmail string
	if c.Username != nil {
		fes = append(fes, validateUsername(*c.Username))
		username = *c.Username
	}
	if c.Email != nil {
		normalized, fe := normalizeEmail(*c.Email)
		fes = append(fes, fe)
		newEmail = normalized
		if !self {
			params.Email, email = &normalized, normalized
		}
	}
	if c.Password != nil {
		fes = append(fes, validatePassword(*c.Password, username, email))
	}
	if err := Collect(fes...); err != nil {
		return UpdateResult{}, err
	}
	// One's own email change waits for its confirmation; an unchanged address is no change.
	pendingEmail := self && c.Email != nil && !strings.EqualFold(newEmail, current.Email)
	if self && (c.Password != nil || pendingEmail) {
		if err := s.reauthenticate(ctx, actor, c.CurrentPassword, client); err != nil {
			return UpdateResult{}, err
		}
	}
	if c.Password != nil {
		// Hashed before the transaction, so no row lock waits on the hash pool.
		hash, err := s.hashPassword(ctx, *c.Password, client)
		if err != nil {
			return UpdateResult{}, err
		}
		params.PasswordHash = &hash
	}

	now := s.now()
	var updated db.User
	mayRemoveAdmin := (c.IsAdmin != nil && !*c.IsAdmin) || (c.IsActive != nil && !*c.IsActive)
	err = s.inTx(ctx, func(q *db.Queries) error {
		// The admin rows are locked before the target row, in id order, so that two admins
		// demoting each other queue up instead of deadlocking.
		var admins []uuid.UUID
		if mayRemoveAdmin {
			if admins, err = q.LockActiveAdmins(ctx); err != nil {
				return err
			}
		}
		before, err := q.GetUserByIDForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if mayRemoveAdmin && before.IsAdmin && before.IsActive && len(admins) <= 1 {
			return errLastAdmin()
		}
		if pendingEmail {
			// Refused now rather than when the link is followed, if the address is taken.
			if other, err := q.GetUserByEmail(ctx, newEmail); err == nil && other.ID != id {
				return constraintErrors["users_email_key"]()
			} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if updated, err = q.UpdateUser(ctx, params); err != nil {
			return err
		}
		ended := endedSessions{}
		if reason := sessionEndReason(before, updated, c.Password != nil); reason != "" {
			// Rights or credentials changed: every session opened under the old ones ends
			// now, except the one a user changes its own password from.
			var keep *uuid.UUID
			if self && reason == reasonPasswordChanged {
				keep = &actor.SessionID
			}
			if ended, err = s.endSessions(ctx, q, id, keep, reason, now); err != nil {
				return err
			}
		}
		if c.Password != nil {
			// A reset link asked for under the old password must not undo the new one.
			if _, err := q.DeleteUserAccountTokens(ctx, db.DeleteUserAccountTokensParams{UserID: id, Purpose: string(LinkPasswordReset)}); err != nil {
				return err
			}
			if err := s.queuePasswordChangedNotice(ctx, q, updated, now, client); err != nil {
				return err
			}
		}
		if params.Email != nil && !strings.EqualFold(before.Email, updated.Email) {
			if err := s.queueEmailChangedNotice(ctx, q, updated, before.Email, updated.Email, now, client); err != nil {
				return err
			}
		}
		if pendingEmail {
			if err := s.queueLinkMail(ctx, q, LinkEmailChange, mail.KindEmailChangeConfirm, updated, newEmail, client); err != nil {
				return err
			}
		}
		return s.auditUpdate(ctx, q, actor, self, id, c, pendingEmail, newEmail, ended, client)
	})
	return UpdateResult{User: userFrom(updated), EmailChangePending: pendingEmail && err == nil}, err
}

// auditUpdate records an update: an admin's change of another account as user_changed; one's
// own new password as password_changed and asked-for email as email_change_requested (a
// username alone is not a security event); and an admin's change of its own flags as
// user_changed too.
func (s *Service) auditUpdate(ctx context.Context, q *db.Queries, actor Principal, self bool, id uuid.UUID, c UserChanges,
	pendingEmail bool, newEmail string, ended endedSessions, client Client) error {
	sessions := map[string]any{"revoked_sessions": ended.RevokedSessions, "invalidated_tokens": ended.InvalidatedTokens}
	if !self {
		details := map[string]any{"actor_id": actor.User.ID, "changes": c.auditDetails(), "reauthenticated": false}
		maps.Copy(details, sessions)
		return s.audit(ctx, q, auditEntry{Type: AuditUserChanged, UserID: id, Client: client, Details: details})
	}
	if c.privileged() {
		details := map[string]any{"actor_id": actor.User.ID, "changes": c.auditDetails()}
		maps.Copy(details, sessions)
		if err := s.audit(ctx, q, auditEntry{Type: AuditUserChanged, UserID: id, Client: client, Details: details}); err != nil {
			return err
		}
	}
	if c.Password != nil {
		details := map[string]any{"kept_session_id": actor.SessionID}
		maps.Copy(details, sessions)
		if err := s.audit(ctx, q, auditEntry{Type: AuditPasswordChanged, UserID: id, Client: client, Details: details}); err != nil {
			return err
		}
	}
	if pendingEmail {
		return s.audit(ctx, q, auditEntry{Type: AuditEmailChangeRequested, UserID: id, Client: client,
			Details: map[string]any{"new_email": newEmail}})
	}
	return nil
}

func errLastAdmin() *Error {
	return &Error{Kind: KindInvalid, Code: CodeLastAdmin, Message: "The last active admin cannot be demoted, deactivated or deleted."}
}

// DeleteUser deletes another user with its sessions and tokens, as an admin; anyone but the
// last active admin. Deleting one's own account needs the current password: it goes through
// DeleteOwnAccount, and DeleteUser refuses it.
//
// Errors: not found; forbidden (reauthentication_required, for one's own account); invalid
// (last_admin); unavailable; internal.
func (s *Service) DeleteUser(ctx context.Context, actor Principal, id uuid.UUID, client Client) error {
	if !canSee(actor, id) {
		return NotFound()
	}
	if actor.User.ID == id {
		return errReauthenticationRequired("Deleting your own account needs your current password.")
	}
	return s.deleteUser(ctx, actor, id, client)
}

// DeleteOwnAccount deletes the caller's account, with its sessions and tokens, once its
// current password is confirmed; a wrong one counts towards the lockout. The last active
// admin cannot delete itself.
//
// Errors: forbidden (reauthentication_required); rate limited (account_locked); invalid
// (last_admin); unavailable (server_busy, database_unavailable); internal.
func (s *Service) DeleteOwnAccount(ctx context.Context, actor Principal, currentPassword *string, client Client) error {
	if err := s.reauthenticate(ctx, actor, currentPassword, client); err != nil {
		return err
	}
	return s.deleteUser(ctx, actor, actor.User.ID, client)
}

func (s *Service) deleteUser(ctx context.Context, actor Principal, id uuid.UUID, client Client) error {
	return s.inTx(ctx, func(q *db.Queries) error {
		// Admins first, then the target, in the same order as UpdateUser.
		admins, err := q.LockActiveAdmins(ctx)
		if err != nil {
			return err
		}
		target, err := q.GetUserByIDForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if target.IsAdmin && target.IsActive && len(admins) <= 1 {
			return errLastAdmin()
		}
		ended, err := s.endSessions(ctx, q, id, nil, reasonAccountDeleted, s.now())
		if err != nil {
			return err
		}
		// The rows of the sessions and tokens go with the user (ON DELETE CASCADE).
		if _, err = q.DeleteUser(ctx, id); err != nil {
			return err
		}
		// The event outlives the user: audit_events.user_id is set to NULL, so the id is kept
		// in the details too.
		details := map[string]any{"deleted_user_id": id, "username": target.Username,
			"revoked_sessions": ended.RevokedSessions, "invalidated_tokens": ended.InvalidatedTokens}
		if actor.User.ID == id {
			return s.audit(ctx, q, auditEntry{Type: AuditUserDeleted, Client: client, Details: details})
		}
		return s.auditUserChange(ctx, q, actor, uuid.Nil, details, client)
	})
}
