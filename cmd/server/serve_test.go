package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/testdb"
)

// startServe runs serve with vars and returns its base URL and a function that stops it and
// returns serve's error.
func startServe(t *testing.T, vars map[string]string) (string, func() error) {
	t.Helper()
	return startServeLogging(t, vars, io.Discard)
}

// startServeLogging is startServe writing the server's log to logs, which may be read once
// the server has stopped.
func startServeLogging(t *testing.T, vars map[string]string, logs io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, envFrom(vars), &lockedWriter{w: logs}, ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, func() error {
			cancel()
			select {
			case err := <-done:
				return err
			case <-time.After(60 * time.Second):
				t.Fatal("serve did not stop")
				return nil
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("serve failed to start: %v", err)
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	return "", nil
}

func TestServeOnTheEmbeddedDatabase(t *testing.T) {
	dataDir := filepath.Join(traversableTempDir(t), "data")
	vars := map[string]string{
		"AUTHLY_DATA_DIR":       dataDir,
		"AUTHLY_LISTEN_ADDR":    "127.0.0.1:0",
		"AUTHLY_BCRYPT_COST":    "4",
		"AUTHLY_ADMIN_USERNAME": "admin",
		"AUTHLY_ADMIN_EMAIL":    "admin@example.com",
		"AUTHLY_ADMIN_PASSWORD": "admin-password-for-tests",
	}
	base, stop := startServe(t, vars)
	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %v %v", err, resp)
	}
	resp.Body.Close()
	login := func() int {
		resp, err := http.Post(base+"/api/v1/auth/token", "application/x-www-form-urlencoded",
			strings.NewReader("grant_type=password&username=admin&password=admin-password-for-tests"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode
	}
	if code := login(); code != http.StatusOK {
		t.Fatalf("bootstrap admin login: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v on shutdown", err)
	}
	info, err := os.Stat(filepath.Join(dataDir, "secrets.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("development secrets file: %v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("the embedded cluster still runs after shutdown: %v", err)
	}

	// A second start reuses the cluster, the secrets and the admin: tokens survive.
	base, stop = startServe(t, vars)
	if code := login(); code != http.StatusOK {
		t.Fatalf("login after restart: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// startPassword marks the database password in the start-up failures below.
const startPassword = "St4rt Pw'7c34"

// TestAFailedStartNeverShowsTheDatabasePassword starts the server on database settings that
// fail, at validation, at the first connection or at the server, and looks for the password
// in every log line, at the most verbose level and in both formats, and in the error.
func TestAFailedStartNeverShowsTheDatabasePassword(t *testing.T) {
	closed := freeAddr(t)
	test, err := url.Parse(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	noSuchDatabase := *test
	noSuchDatabase.User = url.UserPassword("authly", startPassword)
	noSuchDatabase.Path = "/no_such_database"
	userinfo := url.UserPassword("authly", startPassword).String()
	quoted := `'St4rt Pw\'7c34'`

	for _, tc := range []struct {
		name, databaseURL, want string
	}{
		{"a URL with a port that is not a number", "postgres://" + userinfo + "@127.0.0.1:port/authly", "DATABASE_URL: "},
		{"a URL with a password that is not escaped", "postgres://authly:" + startPassword + "@127.0.0.1/authly", "DATABASE_URL: "},
		{"a URL with golang-migrate's scheme", "pgx5://" + userinfo + "@127.0.0.1/authly", "DATABASE_URL: "},
		{"keyword/value pairs with spaces around = and a bad port", "host=127.0.0.1 port=abc user=authly password = " + quoted, "DATABASE_URL: "},
		{"a URL where nothing listens", "postgres://" + userinfo + "@" + closed + "/authly", "cannot reach PostgreSQL"},
		{"keyword/value pairs where nothing listens", "host=127.0.0.1 port=" + closed[strings.LastIndexByte(closed, ':')+1:] + " user=authly password=" + quoted + " dbname=authly", "cannot reach PostgreSQL"},
		{"a URL naming a role and a database the server lacks", noSuchDatabase.String(), "cannot reach PostgreSQL"},
	} {
		for _, format := range []string{"json", "text"} {
			t.Run(tc.name+" in the "+format+" log", func(t *testing.T) {
				var logs bytes.Buffer
				err := run(context.Background(), []string{"serve"}, envFrom(map[string]string{
					"DATABASE_URL":           tc.databaseURL,
					"JWT_SECRET_KEY":         secretA,
					"JWT_REFRESH_SECRET_KEY": secretB,
					"AUTHLY_LISTEN_ADDR":     "127.0.0.1:0",
					"AUTHLY_LOG_LEVEL":       "debug",
					"AUTHLY_LOG_FORMAT":      format,
				}), nil, &bytes.Buffer{}, &logs)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want a start-up error with %q, got %v", tc.want, err)
				}
				assertNoPassword(t, "the error", err.Error())
				lines := bufio.NewScanner(&logs)
				for n := 1; lines.Scan(); n++ {
					assertNoPassword(t, fmt.Sprintf("log line %d", n), lines.Text())
				}
			})
		}
	}
}

// assertNoPassword fails when text holds startPassword, or the part of it before the space,
// as written, escaped for a URL, or quoted.
func assertNoPassword(t *testing.T, what, text string) {
	t.Helper()
	for _, spelling := range []string{"St4rt", "7c34", url.QueryEscape(startPassword)} {
		if strings.Contains(text, spelling) {
			t.Errorf("%s shows the password (%q):\n%s", what, spelling, text)
		}
	}
}

// keywordValue rewrites a postgres:// URL as keyword/value pairs, each value quoted.
func keywordValue(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	quote := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	pairs := []string{"host=" + quote(u.Hostname()), "dbname=" + quote(strings.TrimPrefix(u.Path, "/"))}
	if u.Port() != "" {
		pairs = append(pairs, "port="+u.Port())
	}
	if u.User != nil {
		pairs = append(pairs, "user="+quote(u.User.Username()))
		if p, ok := u.User.Password(); ok {
			pairs = append(pairs, "password="+quote(p))
		}
	}
	for k, vs := range u.Query() {
		for _, v := range vs {
			pairs = append(pairs, k+"="+quote(v))
		}
	}
	return strings.Join(pairs, " ")
}

// TestKeywordValueDatabaseURLWorksEndToEnd migrates, serves and migrates again on a
// DATABASE_URL of keyword/value pairs against the real test server.
func TestKeywordValueDatabaseURLWorksEndToEnd(t *testing.T) {
	raw := testdb.URL(t)
	conn := keywordValue(t, raw)
	vars := map[string]string{
		"DATABASE_URL": conn, "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB,
		"AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_BCRYPT_COST": "4",
	}
	versions := migrationVersions(t)
	latest, previous := versions[len(versions)-1], versions[len(versions)-2]
	migrate := func(args ...string) string {
		t.Helper()
		var stdout bytes.Buffer
		if err := run(context.Background(), append([]string{"migrate"}, args...), envFrom(vars), nil, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("migrate %v: %v", args, err)
		}
		return strings.TrimSpace(stdout.String())
	}
	if got := migrate("down", "1"); got != fmt.Sprintf("version %d", previous) {
		t.Fatalf("migrate down 1 printed %q", got)
	}

	// serve applies the migration that was rolled back, then answers.
	var logs bytes.Buffer
	base, stop := startServeLogging(t, vars, &logs)
	resp, err := http.Post(base+"/api/v1/users", "application/json",
		strings.NewReader(`{"username":"keyvalue","email":"keyvalue@example.com","password":"a fine long passphrase"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("registration on a keyword/value DATABASE_URL: %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := migrate("version"); got != fmt.Sprintf("version %d", latest) {
		t.Fatalf("after serve, migrate version printed %q", got)
	}
	if u, _ := url.Parse(raw); u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" && strings.Contains(logs.String(), p) {
			t.Fatalf("the log shows the database password:\n%s", logs.String())
		}
	}
}
