package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/testdb"
)

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
