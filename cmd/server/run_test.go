package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/internal/testredis"
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

func TestEverySubcommandHasHelp(t *testing.T) {
	for name, cmd := range commands {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			t.Run(strings.Join(args, " ")+" prints its usage and does nothing", func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				// No configuration at all: --help must not need any.
				if err := run(context.Background(), args, envFrom(nil), nil, &stdout, &stderr); err != nil {
					t.Fatal(err)
				}
				if stdout.String() != cmd.usage || !strings.HasPrefix(stdout.String(), "Usage: authly "+name) || stderr.Len() > 0 {
					t.Fatalf("help output:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
				}
			})
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, envFrom(nil), nil, &stdout, &bytes.Buffer{}); err != nil || !strings.Contains(stdout.String(), "create-admin") {
		t.Fatalf("top-level help: %v\n%s", err, stdout.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, envFrom(nil), nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}

func TestEveryHelpFlagPrintsTheUsageOfTheAuthlyBinary(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help", "help"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{arg}, envFrom(nil), nil, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if stdout.String() != usage || stderr.Len() > 0 {
			t.Fatalf("%s printed:\n%s\nstderr:\n%s", arg, stdout.String(), stderr.String())
		}
	}
	if !strings.HasPrefix(usage, "Usage: authly ") {
		t.Fatalf("the usage does not name the binary authly:\n%s", usage)
	}
	for name, cmd := range commands {
		if strings.Contains(usage+cmd.usage, "server ") {
			t.Errorf("the usage of %s calls the binary server:\n%s", name, cmd.usage)
		}
	}
}

func TestAnUnknownCommandOrFlagFailsWithTheUsageOnStderr(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"frobnicate", `unknown command "frobnicate"`},
		{"--bogus", `unknown flag "--bogus"`},
		{"-x", `unknown flag "-x"`},
		// -v is "verbose" to Go's tools; Authly does not guess.
		{"-v", `unknown flag "-v"`},
		{"help frobnicate", `unknown command "frobnicate"`},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), strings.Fields(tc.arg), envFrom(nil), nil, &stdout, &stderr)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: got error %v, want %q", tc.arg, err, tc.want)
		}
		if stderr.String() != usage || stdout.Len() > 0 {
			t.Errorf("%s: want the usage on stderr and nothing on stdout, got stdout:\n%s\nstderr:\n%s", tc.arg, stdout.String(), stderr.String())
		}
	}
}

// commandLineMistakes are command lines that must be refused before anything else happens,
// each with the start of its error and the command whose usage goes with it.
var commandLineMistakes = []struct {
	args    []string
	want    string
	command string
}{
	{[]string{"migrate"}, "migrate needs up, down N or version", "migrate"},
	{[]string{"migrate", "down"}, "migrate down needs N", "migrate"},
	{[]string{"migrate", "down", "zero"}, `migrate down: N must be a whole number of at least 1 (got "zero")`, "migrate"},
	{[]string{"migrate", "down", "0"}, `migrate down: N must be a whole number of at least 1 (got "0")`, "migrate"},
	{[]string{"migrate", "down", "-2"}, `migrate down: N must be a whole number of at least 1 (got "-2")`, "migrate"},
	{[]string{"migrate", "down", "1", "2"}, `migrate down: unexpected argument "2"`, "migrate"},
	{[]string{"migrate", "up", "now"}, `migrate up: unexpected argument "now"`, "migrate"},
	{[]string{"migrate", "version", "--all"}, `migrate version: unexpected argument "--all"`, "migrate"},
	{[]string{"migrate", "sideways"}, `migrate: unknown action "sideways"`, "migrate"},
	{[]string{"create-admin"}, "create-admin needs --username and --email", "create-admin"},
	{[]string{"create-admin", "--username", "ops"}, "create-admin needs --email", "create-admin"},
	{[]string{"create-admin", "--username", " ", "--email", "ops@example.com"}, "create-admin needs --username", "create-admin"},
	{[]string{"create-admin", "--username"}, "create-admin: flag needs an argument: -username", "create-admin"},
	{[]string{"create-admin", "--bogus"}, "create-admin: flag provided but not defined: -bogus", "create-admin"},
	{[]string{"create-admin", "--username", "ops", "--email", "ops@example.com", "extra"}, `create-admin: unexpected argument "extra"`, "create-admin"},
	{[]string{"create-admin", "--username", "ops", "--email", "ops@example.com", "--password=hunter2hunter2"}, "create-admin: the password is never a flag", "create-admin"},
	{[]string{"cleanup", "now"}, `cleanup takes no arguments (got "now")`, "cleanup"},
	{[]string{"version", "--short"}, `version takes no arguments (got "--short")`, "version"},
	{[]string{"--version", "extra"}, `version takes no arguments (got "extra")`, "version"},
	{[]string{"serve", "--port=9000"}, `serve takes no arguments (got "--port=9000")`, "serve"},
}

// TestCommandLineMistakesStartNoDatabase runs each mistake on the embedded default, whose
// data directory would appear at the first step towards a database, and then against a
// DATABASE_URL where nothing listens, whose connection error would replace the argument's.
func TestCommandLineMistakesStartNoDatabase(t *testing.T) {
	// A command that wrongly went ahead would serve or wait; it must not hang the test.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nowhere := "postgres://authly:unused@" + freeAddr(t) + "/authly?connect_timeout=5"
	for _, tc := range commandLineMistakes {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			for _, vars := range []map[string]string{
				{"AUTHLY_DATA_DIR": dataDir, "AUTHLY_LISTEN_ADDR": "127.0.0.1:0"},
				{"DATABASE_URL": nowhere, "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_LISTEN_ADDR": "127.0.0.1:0"},
			} {
				var stdout, stderr bytes.Buffer
				err := run(ctx, tc.args, envFrom(vars), strings.NewReader("a long admin passphrase\n"), &stdout, &stderr)
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("got error %v, want one starting with %q", err, tc.want)
				}
				if stderr.String() != commands[tc.command].usage || stdout.Len() > 0 {
					t.Errorf("want the usage of %s on stderr and nothing on stdout, got stdout:\n%s\nstderr:\n%s", tc.command, stdout.String(), stderr.String())
				}
				if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
					t.Fatalf("the data directory was created: %v", err)
				}
			}
		})
	}
}

func TestAPanicInRunIsAnErrorWithoutTheDatabasePassword(t *testing.T) {
	const password = "Panic-Pw-0f3c9a"
	url := "postgres://authly:" + password + "@db.invalid/authly"
	getenv := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return url
		case "AUTHLY_LISTEN_ADDR":
			panic("cannot read " + k + " with " + url)
		}
		return ""
	}
	err := run(context.Background(), []string{"serve"}, getenv, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "panic: cannot read AUTHLY_LISTEN_ADDR with postgres://authly:xxxxx@db.invalid/authly") {
		t.Fatalf("want the panic as an error, got %v", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Fatalf("the error shows the password:\n%v", err)
	}
}
