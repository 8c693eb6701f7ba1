package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/testdb"
)

func TestEverySubcommandHasHelp(t *testing.T) {
	for name, cmd := range commands {
		t.Run(name+" --help prints its usage and does nothing", func(t *testing.T) {
			var stdout bytes.Buffer
			// No configuration at all: --help must not need any.
			if err := run(context.Background(), []string{name, "--help"}, envFrom(nil), nil, &stdout, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if stdout.String() != cmd.usage || !strings.Contains(stdout.String(), "Usage: server "+name) {
				t.Fatalf("help output:\n%s", stdout.String())
			}
		})
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, envFrom(nil), nil, &stdout, &bytes.Buffer{}); err != nil || !strings.Contains(stdout.String(), "create-admin") {
		t.Fatalf("top-level help: %v\n%s", err, stdout.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, envFrom(nil), nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}

func TestVersionCommand(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envFrom(nil), nil, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(stdout.String()); got != "authly "+version {
		t.Fatalf("version printed %q", got)
	}
}

func TestCreateAdmin(t *testing.T) {
	url := testdb.URL(t)
	vars := map[string]string{"DATABASE_URL": url, "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_BCRYPT_COST": "4"}
	const password = "a long admin passphrase"
	createAdmin := func(args []string, stdin string, extra map[string]string) (string, error) {
		env := map[string]string{}
		for k, v := range vars {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"create-admin"}, args...), envFrom(env), strings.NewReader(stdin), &stdout, &stderr)
		if strings.Contains(stdout.String()+stderr.String(), password) {
			t.Fatal("create-admin printed the password")
		}
		return stdout.String(), err
	}

	out, err := createAdmin([]string{"--username", "ops", "--email", "ops@example.com"}, password+"\n", nil)
	if err != nil || !strings.Contains(out, `created admin "ops"`) {
		t.Fatalf("from stdin: %v %q", err, out)
	}
	out, err = createAdmin([]string{"--username", "ops", "--email", "ops@example.com"}, password+"\n", nil)
	if err != nil || !strings.Contains(out, "already exists") {
		t.Fatalf("again: %v %q", err, out)
	}
	if _, err = createAdmin([]string{"--username", "ops2", "--email", "ops2@example.com"}, "", map[string]string{"AUTHLY_ADMIN_PASSWORD": password}); err != nil {
		t.Fatalf("from the environment: %v", err)
	}
	refusals := []struct {
		name  string
		args  []string
		stdin string
	}{
		{"no password anywhere", []string{"--username", "ops3", "--email", "ops3@example.com"}, ""},
		{"no email", []string{"--username", "ops3"}, password},
		{"a password given as a flag", []string{"--username", "ops3", "--email", "ops3@example.com", "--password", password}, ""},
		{"a weak password", []string{"--username", "ops3", "--email", "ops3@example.com"}, "password"},
	}
	for _, tc := range refusals {
		if _, err := createAdmin(tc.args, tc.stdin, nil); err == nil {
			t.Errorf("%s was accepted", tc.name)
		}
	}

	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var admins int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE is_admin AND is_verified AND is_active").Scan(&admins); err != nil || admins != 2 {
		t.Fatalf("admins: %d %v", admins, err)
	}
}
