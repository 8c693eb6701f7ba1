package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// tempParent returns a directory to put a data directory in. Unlike
// t.TempDir, whose parent is 0700, it is reachable by the postgres user that
// runs the server when the tests run as root.
func tempParent(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	began := time.Now()
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start (ephemeral=%v) took %v", opts.Ephemeral, time.Since(began).Round(time.Millisecond))
	// Cleanups run after t.Context is cancelled, hence a fresh context.
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

func queryInt(t *testing.T, url, query string) int {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func showSetting(t *testing.T, url, name string) string {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var value string
	if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&value); err != nil {
		t.Fatalf("current_setting(%s): %v", name, err)
	}
	return value
}

func TestStartServesTheAuthlyDatabaseOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{DataDir: filepath.Join(tempParent(t), "data"), Ephemeral: true})

	want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.Port()) + "/authly?sslmode=disable"
	if got := c.URL("authly"); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got := queryInt(t, c.URL("authly"), "SELECT 40 + 2"); got != 42 {
		t.Errorf("SELECT 40 + 2 = %d", got)
	}
	for name, want := range map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "",
		"max_connections":         "200",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"server_encoding":         "UTF8",
		"lc_collate":              "C",
	} {
		if got := showSetting(t, c.URL("authly"), name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestStopThenStartReusesTheDataDirectory(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	c := startCluster(t, Options{DataDir: dataDir})
	if got := showSetting(t, c.URL("authly"), "fsync"); got != "on" {
		t.Errorf("a durable cluster runs with fsync = %q", got)
	}
	execSQL(t, c.URL("authly"), "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")

	ctx := t.Context()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if conn, err := pgx.Connect(ctx, c.URL("authly")); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}

	again := startCluster(t, Options{DataDir: dataDir})
	if got := queryInt(t, again.URL("authly"), "SELECT n FROM kept"); got != 7 {
		t.Errorf("row written before the stop reads %d, want 7", got)
	}
}

func TestRestartKeepsThePort(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{DataDir: filepath.Join(tempParent(t), "data"), Ephemeral: true})
	port := c.Port()
	ctx := t.Context()

	conn, err := pgx.Connect(ctx, c.URL("authly"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("a connection opened before Restart still works")
	}
	if c.Port() != port {
		t.Errorf("port changed from %d to %d", port, c.Port())
	}
	if got := queryInt(t, c.URL("authly"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d after Restart", got)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatalf("StartServer on a running server: %v", err)
	}
	if got := queryInt(t, c.URL("authly"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d after StartServer", got)
	}
}

func TestStartRecoversAfterThePostmasterWasKilled(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempParent(t), "data")
	startCluster(t, Options{DataDir: dataDir})
	pid := postmasterPID(t, dataDir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)

	again := startCluster(t, Options{DataDir: dataDir})
	if got := queryInt(t, again.URL("authly"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d after a crash", got)
	}
}

func TestStartRejectsADataDirThePostgresUserCannotReach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to the postgres user")
	}
	t.Parallel()
	locked := t.TempDir() // its parent is 0700 and owned by root
	_, err := Start(t.Context(), Options{DataDir: filepath.Join(locked, "data")})
	if err == nil {
		t.Fatal("Start succeeded in a directory the postgres user cannot enter")
	}
	for _, want := range []string{"not reachable by the postgres user", filepath.Dir(locked), "chmod o+x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFindBinDirSaysWhatToInstall(t *testing.T) {
	t.Parallel()
	_, err := findBinDir("", nil)
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	for _, want := range []string{"apt-get install postgresql", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFindBinDirPrefersTheHighestVersion(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, version := range []string{"9.6", "15", "12"} {
		bin := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A directory on PATH missing one binary is skipped.
	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, "initdb"), nil, 0o755); err != nil {
		t.Fatal(err)
	}

	got, err := findBinDir(partial, []string{filepath.Join(root, "*", "bin")})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin"); got != want {
		t.Errorf("findBinDir = %s, want %s", got, want)
	}
}

func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	content, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(content), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
