package main

import (
	"errors"
	"fmt"

	"github.com/authly/authly/internal/service"
)

// promoteHint says how an existing account becomes an admin, which Authly never does behind
// its owner's back at start or from the command line.
const promoteHint = `have an admin promote it with PUT /api/v1/users/{id} and {"is_admin": true}`

// bootstrapAdminError explains why AUTHLY_ADMIN_* could not be applied, naming the variable to
// change and what to do; the server does not start.
func bootstrapAdminError(err error, username, email string) error {
	var conflict *service.AdminConflict
	switch {
	case errors.As(err, &conflict) && conflict.NotAdmin:
		return fmt.Errorf("AUTHLY_ADMIN_USERNAME: the user %q already exists and is not an admin; Authly does not promote an existing "+
			"account at start. Set AUTHLY_ADMIN_USERNAME to a name no account has, or unset AUTHLY_ADMIN_USERNAME, AUTHLY_ADMIN_EMAIL "+
			"and AUTHLY_ADMIN_PASSWORD and %s", username, promoteHint)
	case errors.As(err, &conflict):
		return fmt.Errorf("AUTHLY_ADMIN_USERNAME: the admin %q already exists with the email %s, not AUTHLY_ADMIN_EMAIL (%s). "+
			"Set AUTHLY_ADMIN_EMAIL to %s, or unset AUTHLY_ADMIN_USERNAME, AUTHLY_ADMIN_EMAIL and AUTHLY_ADMIN_PASSWORD",
			username, conflict.Email, email, conflict.Email)
	case service.AsError(err).Code == service.CodeEmailTaken:
		return fmt.Errorf("AUTHLY_ADMIN_EMAIL: another account already has %s; choose another address for the admin %q", email, username)
	}
	return fmt.Errorf("bootstrapping the admin from AUTHLY_ADMIN_*: %s", describe(err))
}

// createAdminError explains why create-admin changed nothing, naming the flag to change.
func createAdminError(err error, username, email string) error {
	var conflict *service.AdminConflict
	switch {
	case errors.As(err, &conflict) && conflict.NotAdmin:
		return fmt.Errorf("create-admin: the user %q already exists and is not an admin; nothing changed. "+
			"Choose another --username, or %s", username, promoteHint)
	case errors.As(err, &conflict):
		return fmt.Errorf("create-admin: the admin %q already exists with the email %s, not %s; nothing changed. "+
			"Give --email %s to confirm it, or choose another --username", username, conflict.Email, email, conflict.Email)
	}
	return fmt.Errorf("create-admin: %s", describe(err))
}
