// Package testdb gives each test its own fresh PostgreSQL database cloned from
// a migrated template.
//
// The server comes from AUTHLY_TEST_DATABASE_URL when set: a postgres:// URL
// whose user may create databases and roles. Otherwise Main starts a
// throwaway pgcluster for the test binary, so tests never skip for want of a
// database. The template is migrated once per server with every migration in
// sql/schema, and each test clones it, which costs a file copy rather than a
// migration run.
//
// A package that uses testdb declares
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
package testdb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver pgtestdb connects with
	"github.com/peterldowns/pgtestdb"
	"github.com/peterldowns/pgtestdb/migrators/golangmigrator"

	"github.com/authly/authly/internal/pgcluster"
	"github.com/authly/authly/sql/schema"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "AUTHLY_TEST_DATABASE_URL"

// tempPrefix marks the throwaway clusters' directories, so a later run can
// find the ones whose test binary was killed before cleaning up.
const tempPrefix = "authly-testdb-"

// Main sets these before any test runs and only reads them afterwards. A test
// binary has exactly one server, which is why they are package state.
var (
	server  *pgtestdb.Config
	cluster *pgcluster.Cluster
)

var migrator = golangmigrator.New(".", golangmigrator.WithFS(schema.FS))

// Main wraps a test binary's TestMain: it obtains the server, runs the tests,
// then stops the throwaway cluster, if any, and removes its directory. It
// returns the exit code for os.Exit.
func Main(m *testing.M) int {
	// Parsed early so that -v can show the cluster's start-up timings.
	flag.Parse()
	if raw := os.Getenv(EnvURL); raw != "" {
		conf, err := configFromURL(raw)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testdb: %s: %v\n", EnvURL, err)
			return 1
		}
		server = conf
		return m.Run()
	}

	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx := context.Background()
	removeAbandoned(ctx, logger)

	dir, err := os.MkdirTemp("", tempPrefix)
	if err == nil {
		err = claim(dir)
	}
	if err == nil {
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{
			DataDir:   filepath.Join(dir, "data"),
			Logger:    logger,
			Ephemeral: true,
		})
	}
	if err != nil {
		if dir != "" {
			os.RemoveAll(dir)
		}
		fmt.Fprintf(os.Stderr, "testdb: starting a throwaway PostgreSQL: %v\n"+
			"(or set %s to a postgres:// URL whose user may create databases and roles)\n", err, EnvURL)
		return 1
	}
	server = &pgtestdb.Config{
		DriverName: "pgx",
		Host:       "127.0.0.1",
		Port:       strconv.Itoa(cluster.Port()),
		User:       "postgres",
		Database:   "postgres",
		Options:    "sslmode=disable",
	}

	code := m.Run()
	if err := cluster.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "testdb: %v\n", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "testdb: %v\n", err)
	}
	return code
}

// URL returns a connection string to a brand-new database for this test,
// cloned from the migrated template. The database is dropped when the test
// ends, unless it failed, so that it can be inspected; every connection to it
// must be closed by then.
func URL(t testing.TB) string {
	t.Helper()
	return urlFor(t, server)
}

func urlFor(t testing.TB, conf *pgtestdb.Config) string {
	t.Helper()
	if conf == nil {
		t.Fatal("testdb: no database server; this package's tests need\n\n" +
			"\tfunc TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }")
	}
	return pgtestdb.Custom(t, *conf, migrator).URL()
}

// Pool returns a pool connected to URL(t), closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, URL(t))
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	// Registered after URL's cleanup, so it runs first and the database can
	// then be dropped.
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return pool
}

// Cluster returns the throwaway cluster, for tests that stop or restart the
// server, or nil when the server comes from AUTHLY_TEST_DATABASE_URL.
func Cluster() *pgcluster.Cluster { return cluster }

// configFromURL turns a postgres:// URL into pgtestdb's connection fields,
// which it joins back without escaping, so the user information stays
// escaped here.
func configFromURL(raw string) (*pgtestdb.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("want a postgres:// URL, got scheme %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("the URL names no host")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	database := strings.TrimPrefix(u.Path, "/")
	if database == "" {
		database = "postgres"
	}
	var user, password string
	if u.User != nil {
		user = url.User(u.User.Username()).String()
		if p, ok := u.User.Password(); ok {
			password = strings.TrimPrefix(url.UserPassword("", p).String(), ":")
		}
	}
	return &pgtestdb.Config{
		DriverName: "pgx",
		Host:       host,
		Port:       port,
		User:       user,
		Password:   password,
		Database:   database,
		Options:    u.RawQuery,
	}, nil
}

// claim records this process as the owner of a throwaway cluster directory
// and lets the postgres user, which runs the server when we are root, reach
// the data directory inside it.
func claim(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// removeAbandoned stops and deletes the throwaway clusters of test binaries
// that died without cleaning up, such as one killed by `go test -timeout`;
// pg_ctl detaches the server, so it would otherwise run on indefinitely.
func removeAbandoned(ctx context.Context, logger *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, dir := range dirs {
		if !abandoned(dir) {
			continue
		}
		logger.Info("removing an abandoned test cluster", "dir", dir)
		if err := pgcluster.StopOrphan(ctx, filepath.Join(dir, "data")); err != nil {
			logger.Warn("could not stop an abandoned test cluster", "dir", dir, "err", err)
			continue
		}
		os.RemoveAll(dir)
	}
}

// abandoned reports whether the process that claimed dir is gone. A directory
// not yet claimed belongs to a binary still starting, unless it is old.
func abandoned(dir string) bool {
	content, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
	if err != nil {
		info, statErr := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist) && statErr == nil && time.Since(info.ModTime()) > time.Hour
	}
	pid, err := strconv.Atoi(string(content))
	if err != nil {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
