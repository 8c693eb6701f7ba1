package service

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authly/authly/internal/gen/db"
)

// NewUser is a registration request.
type NewUser struct {
	Username string
	Email    string
	Password string
}

// Register creates an active, unverified, non-admin user.
//
// Errors: invalid (invalid_request with field errors); conflict (username_taken,
// email_taken); unavailable; internal.
func (s *Service) Register(ctx context.Context, in NewUser) (db.User, error) {
	return s.createUser(ctx, in, false)
}

func (s *Service) createUser(ctx context.Context, in NewUser, admin bool) (db.User, error) {
	email, emailErr := normalizeEmail(in.Email)
	if err := collect(validateUsername(in.Username), emailErr, validatePassword(in.Password, in.Username, in.Email)); err != nil {
		return db.User{}, err
	}
	hash, err := s.hashPassword(in.Password)
	if err != nil {
		return db.User{}, err
	}
	u, err := s.q.CreateUser(ctx, db.CreateUserParams{
		Username:     in.Username,
		Email:        email,
		PasswordHash: hash,
		IsActive:     true,
		IsVerified:   admin,
		IsAdmin:      admin,
	})
	return u, dbError(err)
}

// EnsureAdmin creates an active, verified admin unless a user with that username already
// exists, in which case it does nothing and reports created=false.
//
// Errors: invalid; conflict (email_taken, when another user has the email); unavailable;
// internal.
func (s *Service) EnsureAdmin(ctx context.Context, in NewUser) (created bool, err error) {
	_, err = s.q.GetUserByUsername(ctx, in.Username)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, dbError(err)
	}
	if _, err := s.createUser(ctx, in, true); err != nil {
		return false, err
	}
	return true, nil
}

// VerifyUser marks a user verified. Only admins may.
//
// Errors: forbidden; not found; unavailable; internal.
func (s *Service) VerifyUser(ctx context.Context, actor Principal, id uuid.UUID) (db.User, error) {
	if !actor.User.IsAdmin {
		return db.User{}, errForbidden("Admin rights are required.")
	}
	var u db.User
	err := s.inTx(ctx, func(q *db.Queries) error {
		var err error
		if u, err = q.SetUserVerified(ctx, id); err != nil {
			return err
		}
		return s.auditUserChange(ctx, q, actor, id, map[string]any{"is_verified": true})
	})
	return u, err
}
