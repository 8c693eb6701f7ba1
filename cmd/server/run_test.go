package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/testredis"
	"github.com/authly/authly/sql/schema"
)

// TestMain gives the tests a PostgreSQL server (testdb) and a Redis server (testredis).
func TestMain(m *testing.M) { os.Exit(testredis.Main(withDatabase{m})) }

// withDatabase runs the tests inside testdb's Main, for testredis.Main.
type withDatabase struct{ m *testing.M }

func (w withDatabase) Run() int { return testdb.Main(w.m) }

func envFrom(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

const (
	secretA = "0123456789abcdef0123456789abcdef-access"
	secretB = "0123456789abcdef0123456789abcdef-refresh"
)

func TestInvalidConfigurationIsReportedAllAtOnce(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), nil, envFrom(map[string]string{
		"DATABASE_URL":                "postgres://example.invalid/authly",
		"JWT_SECRET_KEY":              "short",
		"JWT_REFRESH_SECRET_KEY":      "short",
		"JWT_ALGORITHM":               "none",
		"ACCESS_TOKEN_EXPIRE_MINUTES": "0",
	}), nil, &bytes.Buffer{}, &stderr)
	if err == nil {
		t.Fatal("run accepted an invalid configuration")
	}
	for _, name := range []string{"JWT_SECRET_KEY", "JWT_REFRESH_SECRET_KEY", "JWT_ALGORITHM", "ACCESS_TOKEN_EXPIRE_MINUTES"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "short") {
		t.Error("the error echoes a secret")
	}
}

func TestMissingSecretsWithADatabaseURLAreAnError(t *testing.T) {
	err := run(context.Background(), nil, envFrom(map[string]string{"DATABASE_URL": testdb.URL(t)}), nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET_KEY") {
		t.Fatalf("want an error naming JWT_SECRET_KEY, got %v", err)
	}
}

func TestMigrateCommands(t *testing.T) {
	env := envFrom(map[string]string{"DATABASE_URL": testdb.URL(t), "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB})
	versions := migrationVersions(t)
	latest, previous := versions[len(versions)-1], versions[len(versions)-2]
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "version"}, fmt.Sprintf("version %d", latest)},
		{[]string{"migrate", "down", "1"}, fmt.Sprintf("version %d", previous)},
		{[]string{"migrate", "down", strconv.Itoa(len(versions) - 1)}, "version 0"},
		{[]string{"migrate", "up"}, fmt.Sprintf("version %d", latest)},
	}
	for _, s := range steps {
		var stdout bytes.Buffer
		if err := run(context.Background(), s.args, env, nil, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", s.args, err)
		}
		if got := strings.TrimSpace(stdout.String()); got != s.want {
			t.Fatalf("%v printed %q, want %q", s.args, got, s.want)
		}
	}
	if err := run(context.Background(), []string{"migrate", "down", "zero"}, env, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("migrate down accepted a non-number")
	}
}

// traversableTempDir is a temporary directory the postgres account can reach, which the
// embedded cluster needs when the tests run as root.
func traversableTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "authly-run-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startServe runs serve on the embedded default database and returns its base URL and a
// function that stops it and returns serve's error.
func startServe(t *testing.T, vars map[string]string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- serve(ctx, envFrom(vars), &lockedWriter{w: &logs}, ready) }()
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

// migrationVersions lists the versions of the embedded migrations in ascending order. They
// may have gaps, which golang-migrate steps over.
func migrationVersions(t *testing.T) []int {
	t.Helper()
	names, err := fs.Glob(schema.FS, "*.up.sql")
	if err != nil || len(names) < 2 {
		t.Fatalf("want at least two migrations: %v", err)
	}
	var versions []int
	for _, name := range names {
		v, err := strconv.Atoi(name[:strings.IndexByte(name, '_')])
		if err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return versions
}
