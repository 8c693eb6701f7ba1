package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/testdb"
)

func TestCleanupCommandPrintsWhatItDeleted(t *testing.T) {
	url := testdb.URL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// One user with an expired session holding two expired tokens, and a live session
	// holding a live token; and the failed-login counts of two names with no account, one
	// that lapsed a day after its last failure (the default AUTHLY_LOCKOUT_RESET_AFTER) and
	// one that has not.
	_, err = pool.Exec(ctx, `
		INSERT INTO login_failures (login_name, failed_attempts, last_failed_at)
		VALUES ('ghost', 3, now() - interval '2 days'), ('spectre', 2, now() - interval '1 hour')`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
		WITH u AS (
			INSERT INTO users (username, email, password_hash) VALUES ('ops', 'ops@example.com', 'x') RETURNING id
		), expired AS (
			INSERT INTO sessions (user_id, expires_at, absolute_expires_at)
			SELECT id, now() - interval '1 day', now() - interval '1 day' FROM u RETURNING id, user_id
		), live AS (
			INSERT INTO sessions (user_id, expires_at, absolute_expires_at)
			SELECT id, now() + interval '1 day', now() + interval '1 day' FROM u RETURNING id, user_id
		)
		INSERT INTO tokens (token_jti, token_type, user_id, session_id, expires_at)
		SELECT 'expired-access', 'access', user_id, id, now() - interval '1 day' FROM expired
		UNION ALL SELECT 'expired-refresh', 'refresh', user_id, id, now() - interval '1 day' FROM expired
		UNION ALL SELECT 'live-refresh', 'refresh', user_id, id, now() + interval '1 day' FROM live`)
	if err != nil {
		t.Fatal(err)
	}

	env := envFrom(map[string]string{"DATABASE_URL": url, "JWT_SECRET_KEY": secretA, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_BCRYPT_COST": "4"})
	for _, want := range []string{
		"deleted 2 expired tokens, 1 expired session and 1 lapsed login-failure count",
		"deleted 0 expired tokens, 0 expired sessions and 0 lapsed login-failure counts",
	} {
		var stdout bytes.Buffer
		if err := run(ctx, []string{"cleanup"}, env, nil, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(stdout.String()); got != want {
			t.Fatalf("cleanup printed %q, want %q", got, want)
		}
	}
	var tokens, sessions int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tokens), (SELECT count(*) FROM sessions)`).Scan(&tokens, &sessions); err != nil {
		t.Fatal(err)
	}
	if tokens != 1 || sessions != 1 {
		t.Fatalf("%d tokens and %d sessions left, want the live ones", tokens, sessions)
	}
	var names string
	if err := pool.QueryRow(ctx, `SELECT string_agg(login_name, ',') FROM login_failures`).Scan(&names); err != nil || names != "spectre" {
		t.Fatalf("login failures left: %q %v, want the live one", names, err)
	}
}
