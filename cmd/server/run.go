package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/config"
	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/pgcluster"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

const usage = `Usage: authly [command] [arguments]
       authly --help | --version

Commands:
  serve                 serve the API (the default)
  migrate up            apply every pending migration
  migrate down N        roll back N migrations
  migrate version       print the applied migration version
  create-admin          create an active, verified admin
  cleanup               delete expired tokens, sessions and lapsed login failures once, and print the counts
  keys list             list the token-signing keys
  keys rotate           make the next signing key sign now
  keys revoke KID       withdraw a signing key that may be compromised
  version               print the version

"authly COMMAND --help" prints a command's usage. Configuration comes from the
environment; see README.md.
`

// invocation is one run of a command: its arguments (after the command's name), its
// environment and its streams.
type invocation struct {
	args   []string
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand of the binary. run checks its arguments before anything else, so
// that a mistyped command line never starts a database or touches one.
type command struct {
	usage string
	run   func(ctx context.Context, inv invocation) error
}

var commands = map[string]command{
	"serve":        serveCommand,
	"migrate":      migrateCommand,
	"create-admin": createAdminCommand,
	"cleanup":      cleanupCommand,
	"keys":         keysCommand,
	"version":      versionCommand,
}

// usageError is a mistake in the command line. run prints the usage with it, on stderr.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// noArguments refuses any argument to a command that takes none.
func noArguments(name string, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments (got %q)", name, args[0])
	}
	return nil
}

// run is the whole program, testable: it takes its arguments, environment and streams
// instead of reading globals, and returns when ctx ends.
//
// The error it returns never shows the password of DATABASE_URL or AUTHLY_REDIS_URL, even
// when a library quoted the connection string, and neither does a panic's, which run turns
// into an error.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	redact := config.NewRedactor(getenv)
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n\n%s", v, debug.Stack())
		}
		err = redact.Error(err)
	}()

	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	if isVersion(name) {
		name = "version"
	}
	if isHelp(name) && len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if isHelp(name) {
		// "authly help COMMAND" is "authly COMMAND --help".
		name, args = args[0], []string{"--help"}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprint(stderr, usage)
		if strings.HasPrefix(name, "-") {
			return fmt.Errorf("unknown flag %q", name)
		}
		return fmt.Errorf("unknown command %q", name)
	}
	if slices.ContainsFunc(args, isHelp) {
		fmt.Fprint(stdout, cmd.usage)
		return nil
	}
	err = cmd.run(ctx, invocation{args: args, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr})
	if _, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprint(stderr, cmd.usage)
	}
	return err
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// isVersion matches the version flag. -v is left out: Go's own tools, and many others, read it
// as "verbose".
func isVersion(arg string) bool {
	return arg == "--version" || arg == "-version"
}

// newLogger writes the log to w. Every logged value, errors and the message included, passes
// through the configuration's Redactor, so that no library's text can log a connection
// string's password.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if r := cfg.Redactor(); r.Active() {
		opts.ReplaceAttr = redactAttr(r)
	}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// redactAttr is a slog ReplaceAttr function hiding r's passwords in strings, errors and any
// other value, as they would be printed.
func redactAttr(r config.Redactor) func([]string, slog.Attr) slog.Attr {
	return func(_ []string, a slog.Attr) slog.Attr {
		switch a.Value.Kind() {
		case slog.KindString:
			a.Value = slog.StringValue(r.String(a.Value.String()))
		case slog.KindAny:
			var text string
			if err, ok := a.Value.Any().(error); ok {
				text = err.Error()
			} else {
				text = fmt.Sprintf("%+v", a.Value.Any())
			}
			if redacted := r.String(text); redacted != text {
				a.Value = slog.StringValue(redacted)
			}
		}
		return a
	}
}

// environment is a configured database, ready to migrate and serve.
type environment struct {
	cfg     config.Config
	log     *slog.Logger
	url     string
	cluster *pgcluster.Cluster
}

// close stops the embedded cluster when this process started it.
func (e *environment) close() {
	if e.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.cluster.Stop(ctx); err != nil {
		e.log.Error("stopping embedded postgres", "err", err)
	}
}

// prepare loads the configuration and finds the database: DATABASE_URL, or the embedded
// default cluster under AUTHLY_DATA_DIR/pg, with development secrets when none are set.
func prepare(ctx context.Context, getenv func(string) string, stderr io.Writer) (*environment, error) {
	cfg, err := config.Load(ctx, getenv)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	env := &environment{cfg: cfg, log: newLogger(cfg, stderr), url: cfg.DatabaseURL}
	if !cfg.Embedded() {
		return env, nil
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("AUTHLY_DATA_DIR: %w", err)
	}
	// 0711: the embedded cluster below runs as the postgres account when Authly runs as root,
	// so the directory must be traversable; it need not be listable.
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return nil, fmt.Errorf("AUTHLY_DATA_DIR: %w", err)
	}
	// Under a public-key JWT_ALGORITHM the JWT secrets only verify tokens from before a
	// switch, so none are generated.
	if cfg.JWTSecret == nil && !config.PublicKeyAlgorithm(cfg.JWTAlgorithm) {
		s, created, err := config.LoadOrCreateDevSecrets(dataDir)
		if err != nil {
			return nil, err
		}
		env.cfg.JWTSecret, env.cfg.JWTRefreshSecret = s.Access, s.Refresh
		if created {
			env.log.Warn("generated development JWT secrets; set JWT_SECRET_KEY and JWT_REFRESH_SECRET_KEY in production",
				"file", filepath.Join(dataDir, "secrets.json"))
		} else {
			env.log.Warn("using development JWT secrets from the data directory", "file", filepath.Join(dataDir, "secrets.json"))
		}
	}
	if cfg.Keys.KEK == nil && cfg.Keys.SigningBackend != "pkcs11" {
		kek, created, err := config.LoadOrCreateDevKEK(dataDir)
		if err != nil {
			return nil, err
		}
		env.cfg.Keys.KEK = kek
		file := filepath.Join(dataDir, "key-encryption-key")
		if created {
			env.log.Warn("generated a development key-encryption key for the signing keys; set AUTHLY_KEY_ENCRYPTION_KEY in production", "file", file)
		} else {
			env.log.Warn("using the development key-encryption key from the data directory", "file", file)
		}
	}
	env.log.Info("starting the embedded PostgreSQL cluster; set DATABASE_URL to use your own", "data_dir", filepath.Join(dataDir, "pg"))
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dataDir, "pg"), Logger: env.log})
	if err != nil {
		return nil, err
	}
	env.cluster = cluster
	env.url = cluster.URL(pgcluster.DefaultDatabase)
	return env, nil
}

// dbOptions are the pool settings from the configuration.
func dbOptions(cfg config.Config) database.Options {
	return database.Options{StatementTimeout: cfg.DBStatementTimeout, ConnectTimeout: max(cfg.DBAcquireTimeout, time.Second)}
}

// newService builds the service with its protections. limiter and m may be nil where no
// request is served, as in the one-off commands; ks is nil without a key store.
func newService(cfg config.Config, pool *pgxpool.Pool, log *slog.Logger, ks token.KeySource, limiter ratelimit.Limiter, m *metrics.Metrics) (*service.Service, error) {
	issuer, err := token.NewIssuer(token.Config{
		Algorithm:     cfg.JWTAlgorithm,
		AccessKey:     cfg.JWTSecret,
		RefreshKey:    cfg.JWTRefreshSecret,
		HMACAlgorithm: cfg.Keys.LegacyAlgorithm,
		Keys:          ks,
		Issuer:        cfg.Issuer,
		AccessTTL:     cfg.AccessTokenTTL,
		RefreshTTL:    cfg.RefreshTokenTTL,
	})
	if err != nil {
		return nil, err
	}
	// Password hashing runs in a pool of GOMAXPROCS workers. A login answers 503 server_busy at once when
	// AUTHLY_HASH_QUEUE callers already wait, or when the callers ahead of it and the measured
	// hash time say it would wait longer than AUTHLY_HASH_MAX_WAIT; one that waits that long
	// anyway gets the 503 then.
	// With Argon2id the workers bound memory too: at most one hash per worker fills its m.
	hasher, err := hashpool.New(hashpool.Options{Queue: cfg.HashQueue, MaxWait: cfg.HashMaxWait, Hasher: cfg.PasswordHasher(), OnWait: m.HashWait})
	if err != nil {
		return nil, err
	}
	outbox, err := newOutbox(cfg)
	if err != nil {
		return nil, err
	}
	m.WatchHashQueue(
		func() float64 { return float64(hasher.Stats().Waiting) },
		func() float64 { return float64(hasher.Stats().Busy) },
	)
	return service.New(service.Deps{Pool: pool, Tokens: issuer, BcryptCost: cfg.BcryptCost, Logger: log,
		AcquireTimeout: cfg.DBAcquireTimeout, Metrics: m,
		Sessions: service.SessionPolicy{
			MaxPerUser:  cfg.MaxSessionsPerUser,
			IdleTimeout: cfg.SessionIdleTimeout,
			MaxLifetime: cfg.SessionMaxLifetime,
		},
		Hasher:      hasher,
		RateLimiter: limiter,
		RateLimits:  service.RateLimits{Login: cfg.RateLimitLogin, IP: cfg.RateLimitIP, Register: cfg.RateLimitRegister},
		Lockout: service.LockoutPolicy{
			Threshold:   cfg.LockoutThreshold,
			Duration:    cfg.LockoutDuration,
			MaxDuration: cfg.LockoutMaxDuration,
			ResetAfter:  cfg.LockoutResetAfter,
		},
		Mail:         outbox,
		PublicURL:    cfg.Account.PublicURL,
		Verification: service.Verification(cfg.Account.RequireVerification),
		MailLimits:   service.MailLimits{Address: cfg.Account.RateLimitMailAddress, IP: cfg.Account.RateLimitMailIP},
	})
}

// openService prepares a migrated database and a Service on it for a one-off command. The
// returned function closes the pool and stops an embedded cluster.
func openService(ctx context.Context, getenv func(string) string, stderr io.Writer) (*service.Service, func(), error) {
	env, err := prepare(ctx, getenv, stderr)
	if err != nil {
		return nil, nil, err
	}
	if err := database.MigrateUp(env.url); err != nil {
		env.close()
		return nil, nil, err
	}
	pool, err := database.Open(ctx, env.url, dbOptions(env.cfg))
	if err != nil {
		env.close()
		return nil, nil, err
	}
	store, closeStore, err := openKeys(ctx, env.cfg, pool, env.log)
	if err != nil {
		pool.Close()
		env.close()
		return nil, nil, err
	}
	closeAll := func() { closeStore(); pool.Close(); env.close() }
	svc, err := newService(env.cfg, pool, env.log, keySource(store), nil, nil)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return svc, closeAll, nil
}
