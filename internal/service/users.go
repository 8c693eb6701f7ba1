package service

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
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

// Register creates an active, unverified, non-admin user for client.
//
// Errors: invalid (invalid_request with field errors); conflict (username_taken,
// email_taken); unavailable (server_busy, database_unavailable); internal.
func (s *Service) Register(ctx context.Context, in NewUser, client Client) (User, error) {
	return s.createUser(ctx, in, false, client)
}

func (s *Service) createUser(ctx context.Context, in NewUser, admin bool, client Client) (User, error) {
	email, emailErr := normalizeEmail(in.Email)
	if err := Collect(validateUsername(in.Username), emailErr, validatePassword(in.Password, in.Username, in.Email)); err != nil {
		return User{}, err
	}
	hash, err := s.hashPassword(ctx, in.Password, client)
	if err != nil {
		return User{}, err
	}
	u, err := s.queries().CreateUser(ctx, db.CreateUserParams{
		Username:     in.Username,
		Email:        email,
		PasswordHash: hash,
		IsActive:     true,
		IsVerified:   admin,
		IsAdmin:      admin,
	})
	return userFrom(u), dbError(err)
}

// EnsureAdmin creates an active, verified admin unless a user with that username already
// exists, in which case it does nothing and reports created=false.
//
// Errors: invalid; conflict (email_taken, when another user has the email); unavailable;
// internal.
func (s *Service) EnsureAdmin(ctx context.Context, in NewUser) (created bool, err error) {
	_, err = s.queries().GetUserByUsername(ctx, in.Username)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, dbError(err)
	}
	if _, err := s.createUser(ctx, in, true, Client{}); err != nil {
		return false, err
	}
	return true, nil
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

// UpdateUser applies a partial update. Users may change their own username, email and
// password; only admins may change the flags, or anyone else. A change of password,
// is_active or is_admin invalidates every token of the user in the same transaction.
//
// Errors: not found (another user's id, for a non-admin); forbidden (flags, for a
// non-admin); invalid (field errors, last_admin); conflict (username_taken, email_taken);
// unavailable (server_busy, database_unavailable); internal.
func (s *Service) UpdateUser(ctx context.Context, actor Principal, id uuid.UUID, c UserChanges, client Client) (User, error) {
	if !canSee(actor, id) {
		return User{}, NotFound()
	}
	if c.privileged() && !actor.User.IsAdmin {
		return User{}, errForbidden("Only admins may change is_active, is_verified or is_admin.")
	}
	current, err := s.queries().GetUserByID(ctx, id)
	if err != nil {
		return User{}, dbError(err)
	}
	params := db.UpdateUserParams{ID: id, Username: c.Username, IsActive: c.IsActive, IsVerified: c.IsVerified, IsAdmin: c.IsAdmin}
	var fes []*FieldError
	username, email := current.Username, current.Email
	if c.Username != nil {
		fes = append(fes, validateUsername(*c.Username))
		username = *c.Username
	}
	if c.Email != nil {
		normalized, fe := normalizeEmail(*c.Email)
		fes = append(fes, fe)
		params.Email, email = &normalized, normalized
	}
	if c.Password != nil {
		fes = append(fes, validatePassword(*c.Password, username, email))
	}
	if err := Collect(fes...); err != nil {
		return User{}, err
	}
	if c.Password != nil {
		// Hashed before the transaction, so no row lock waits on bcrypt.
		hash, err := s.hashPassword(ctx, *c.Password, client)
		if err != nil {
			return User{}, err
		}
		params.PasswordHash = &hash
	}

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
		if updated, err = q.UpdateUser(ctx, params); err != nil {
			return err
		}
		// Credentials or rights changed: every token issued under the old ones dies now.
		if c.Password != nil || updated.IsActive != before.IsActive || updated.IsAdmin != before.IsAdmin {
			n, err := q.InvalidateUserTokens(ctx, db.InvalidateUserTokensParams{Now: s.now(), UserID: id})
			if err != nil {
				return err
			}
			s.metrics.TokensRevoked("user_changed", n)
		}
		if actor.User.IsAdmin {
			return s.auditUserChange(ctx, q, actor, id, c.auditDetails(), client)
		}
		return nil
	})
	return userFrom(updated), err
}

func errLastAdmin() *Error {
	return &Error{Kind: KindInvalid, Code: CodeLastAdmin, Message: "The last active admin cannot be demoted, deactivated or deleted."}
}

// DeleteUser deletes a user with its sessions and tokens. Users may delete themselves;
// admins anyone but the last active admin.
//
// Errors: not found; invalid (last_admin); unavailable; internal.
func (s *Service) DeleteUser(ctx context.Context, actor Principal, id uuid.UUID, client Client) error {
	if !canSee(actor, id) {
		return NotFound()
	}
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
		// Sessions and tokens go with the user (ON DELETE CASCADE).
		if _, err = q.DeleteUser(ctx, id); err != nil {
			return err
		}
		if actor.User.IsAdmin {
			// The event outlives the user: audit_events.user_id is set to NULL, so the id is
			// kept in the details too.
			return s.auditUserChange(ctx, q, actor, uuid.Nil, map[string]any{"deleted_user_id": id, "username": target.Username}, client)
		}
		return nil
	})
}
