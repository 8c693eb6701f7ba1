package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/authly/authly/internal/service"
)

const createAdminUsage = `Usage: authly create-admin --username NAME --email ADDRESS

Creates an active, verified admin. The password is read from AUTHLY_ADMIN_PASSWORD or,
when that is unset, from the first line of standard input; it is never a flag, so it
stays out of shell history and process listings. An existing username is left as it is.
`

var createAdminCommand = command{usage: createAdminUsage, run: createAdminCmd}

// createAdminCmd creates an admin from flags and a password that is never a flag.
func createAdminCmd(ctx context.Context, inv invocation) error {
	username, email, err := parseCreateAdmin(inv.args)
	if err != nil {
		return err
	}
	password := inv.getenv("AUTHLY_ADMIN_PASSWORD")
	if password == "" && inv.stdin != nil {
		line, err := bufio.NewReader(inv.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password from standard input: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if password == "" {
		return errors.New("create-admin: give the password in AUTHLY_ADMIN_PASSWORD or on standard input")
	}
	// The bootstrap variables would create a second admin here; this command creates one.
	svc, closeAll, err := openService(ctx, func(k string) string {
		if strings.HasPrefix(k, "AUTHLY_ADMIN_") {
			return ""
		}
		return inv.getenv(k)
	}, inv.stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	created, err := svc.EnsureAdmin(ctx, service.NewUser{Username: username, Email: email, Password: password})
	if err != nil {
		return fmt.Errorf("create-admin: %s", describe(err))
	}
	if !created {
		fmt.Fprintf(inv.stdout, "user %q already exists; nothing changed\n", username)
		return nil
	}
	fmt.Fprintf(inv.stdout, "created admin %q\n", username)
	return nil
}

// parseCreateAdmin reads --username and --email, both required, and refuses anything else.
// The rules for a username and an email are the service's, checked when it creates the user.
func parseCreateAdmin(args []string) (username, email string, err error) {
	fs := flag.NewFlagSet("create-admin", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error is returned, and run prints the usage with it
	fs.StringVar(&username, "username", "", "the admin's username")
	fs.StringVar(&email, "email", "", "the admin's email")
	for _, arg := range args {
		if name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "="); strings.HasPrefix(arg, "-") && name == "password" {
			return "", "", usageErrorf("create-admin: the password is never a flag; give it in AUTHLY_ADMIN_PASSWORD or on standard input")
		}
	}
	if err := fs.Parse(args); err != nil {
		return "", "", usageErrorf("create-admin: %v", err)
	}
	var missing []string
	if strings.TrimSpace(username) == "" {
		missing = append(missing, "--username")
	}
	if strings.TrimSpace(email) == "" {
		missing = append(missing, "--email")
	}
	switch {
	case fs.NArg() > 0:
		return "", "", usageErrorf("create-admin: unexpected argument %q", fs.Arg(0))
	case len(missing) > 0:
		return "", "", usageErrorf("create-admin needs %s", strings.Join(missing, " and "))
	}
	return username, email, nil
}

// describe renders a service error for a terminal: its message and field errors, never
// its internal cause.
func describe(err error) string {
	e := service.AsError(err)
	msg := e.Message
	for _, f := range e.Fields {
		msg += fmt.Sprintf("; %s %s", f.Field, f.Message)
	}
	return msg
}
