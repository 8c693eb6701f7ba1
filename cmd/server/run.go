package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/clientip"
	"github.com/authly/authly/internal/config"
	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/hashpool"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/pgcluster"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

const usage = `Usage: server [command] [--help]

Commands:
  serve                 serve the API (the default)
  migrate up            apply every pending migration
  migrate down N        roll back N migrations
  migrate version       print the applied migration version
  create-admin          create an active, verified admin
  cleanup               delete expired tokens and sessions once, and print the counts
  version               print the version

Configuration comes from the environment; see README.md.
`

const createAdminUsage = `Usage: server create-admin --username NAME --email ADDRESS

Creates an active, verified admin. The password is read from AUTHLY_ADMIN_PASSWORD or,
when that is unset, from the first line of standard input; it is never a flag, so it
stays out of shell history and process listings. An existing username is left as it is.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand of the server binary.
type command struct {
	usage string
	run   func(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve": {
		usage: "Usage: server serve\n\nServes the API until SIGINT or SIGTERM, then drains in-flight requests.\n",
		run: func(ctx context.Context, _ []string, getenv func(string) string, _ io.Reader, _, stderr io.Writer) error {
			return serve(ctx, getenv, stderr, nil)
		},
	},
	"migrate": {
		usage: "Usage: server migrate up | down N | version\n\nApplies, rolls back or reports the schema migrations embedded in the binary.\n",
		run: func(ctx context.Context, args []string, getenv func(string) string, _ io.Reader, stdout, stderr io.Writer) error {
			return migrateCmd(ctx, args, getenv, stdout, stderr)
		},
	},
	"create-admin": {
		usage: createAdminUsage,
		run:   createAdminCmd,
	},
	"cleanup": {
		usage: "Usage: server cleanup\n\nDeletes expired tokens and sessions once, as the background job does, and prints the counts.\n",
		run: func(ctx context.Context, _ []string, getenv func(string) string, _ io.Reader, stdout, stderr io.Writer) error {
			return cleanupCmd(ctx, getenv, stdout, stderr)
		},
	},
	"version": {
		usage: "Usage: server version\n\nPrints the version of this build.\n",
		run: func(_ context.Context, _ []string, _ func(string) string, _ io.Reader, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "authly", version)
			return nil
		},
	},
}

// run is the whole program, testable: it takes its arguments, environment and streams
// instead of reading globals, and returns when ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	if isHelp(name) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", name)
	}
	if slices.ContainsFunc(args, isHelp) {
		fmt.Fprint(stdout, cmd.usage)
		return nil
	}
	return cmd.run(ctx, args, getenv, stdin, stdout, stderr)
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// environment is a configured, migrated database, ready to serve.
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
	if cfg.JWTSecret == nil {
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
	env.log.Info("starting the embedded PostgreSQL cluster; set DATABASE_URL to use your own", "data_dir", filepath.Join(dataDir, "pg"))
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dataDir, "pg"), Logger: env.log})
	if err != nil {
		return nil, err
	}
	env.cluster = cluster
	env.url = cluster.URL(pgcluster.DefaultDatabase)
	return env, nil
}

// serve runs the API until ctx ends. When ready is not nil it receives the bound address.
func serve(ctx context.Context, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	env, err := prepare(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	cfg, log := env.cfg, env.log
	if err := env.cluster.ClaimServer(); err != nil {
		return err
	}

	if err := database.MigrateUp(env.url); err != nil {
		return err
	}
	pool, err := database.Open(ctx, env.url, dbOptions(env.cfg))
	if err != nil {
		return err
	}
	defer pool.Close()
	stopWatch := database.Watch(ctx, pool, log, 5*time.Second)
	defer stopWatch()

	var m *metrics.Metrics
	if cfg.MetricsAddr != "" {
		m = metrics.New()
		m.WatchPool(pool)
	}
	limiter, closeLimiter, err := newRateLimiter(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeLimiter()
	svc, err := newService(cfg, pool, log, limiter, m)
	if err != nil {
		return err
	}
	if cfg.AdminUsername != "" {
		created, err := svc.EnsureAdmin(ctx, service.NewUser{Username: cfg.AdminUsername, Email: cfg.AdminEmail, Password: cfg.AdminPassword})
		if err != nil {
			return fmt.Errorf("bootstrapping the admin from AUTHLY_ADMIN_*: %w", err)
		}
		if created {
			log.Info("created the bootstrap admin", "username", cfg.AdminUsername)
		}
	}
	handler, err := service.NewServer(svc, service.ServerOptions{
		Logger:             log,
		Metrics:            m,
		Docs:               cfg.DocsEnabled,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		ClientIP:           clientip.NewResolver(cfg.TrustedProxies),
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
	})
	if err != nil {
		return err
	}
	if cfg.CleanupInterval > 0 {
		cleanerCtx, stopCleaner := context.WithCancel(ctx)
		cleanerDone := make(chan struct{})
		go func() { defer close(cleanerDone); svc.RunCleanup(cleanerCtx, cfg.CleanupInterval) }()
		// Runs before the pool closes: the cleaner stops and finishes its statement first.
		defer func() { stopCleaner(); <-cleanerDone }()
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("AUTHLY_LISTEN_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	var metricsSrv *http.Server
	if m != nil {
		// Metrics get their own listener, never the public one.
		metricsLn, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("AUTHLY_METRICS_ADDR: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
		go func() { serveErr <- metricsSrv.Serve(metricsLn) }()
		log.Info("serving metrics", "addr", metricsLn.Addr().String())
	}
	svc.MarkServing()
	log.Info("listening", "addr", ln.Addr().String())
	env.cluster.SetServing(ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// Readiness fails first; then the listener closes, in-flight requests finish within
	// the timeout, and the deferred steps stop the cleaner, close the pool and stop the
	// embedded cluster, in that order.
	svc.MarkDraining()
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if metricsSrv != nil {
		err = errors.Join(err, metricsSrv.Shutdown(shutdownCtx))
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// dbOptions are the pool settings from the configuration.
func dbOptions(cfg config.Config) database.Options {
	return database.Options{StatementTimeout: cfg.DBStatementTimeout, ConnectTimeout: max(cfg.DBAcquireTimeout, time.Second)}
}

// newService builds the service with its protections. limiter and m may be nil where no
// request is served, as in the one-off commands.
func newService(cfg config.Config, pool *pgxpool.Pool, log *slog.Logger, limiter ratelimit.Limiter, m *metrics.Metrics) (*service.Service, error) {
	issuer, err := token.NewIssuer(token.Config{
		Algorithm:  cfg.JWTAlgorithm,
		AccessKey:  cfg.JWTSecret,
		RefreshKey: cfg.JWTRefreshSecret,
		Issuer:     cfg.Issuer,
		AccessTTL:  cfg.AccessTokenTTL,
		RefreshTTL: cfg.RefreshTokenTTL,
	})
	if err != nil {
		return nil, err
	}
	// bcrypt runs in a pool of GOMAXPROCS workers. A login answers 503 server_busy at once when
	// AUTHLY_HASH_QUEUE callers already wait, or when the callers ahead of it and the measured
	// hash time say it would wait longer than AUTHLY_HASH_MAX_WAIT; one that waits that long
	// anyway gets the 503 then.
	hasher, err := hashpool.New(hashpool.Options{Queue: cfg.HashQueue, MaxWait: cfg.HashMaxWait, Cost: cfg.BcryptCost, OnWait: m.HashWait})
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
	})
}

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("migrate needs up, down N or version")
	}
	env, err := prepare(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	switch args[0] {
	case "up":
		if err := database.MigrateUp(env.url); err != nil {
			return err
		}
	case "down":
		if len(args) != 2 {
			return errors.New("usage: migrate down N")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n <= 0 {
			return fmt.Errorf("migrate down: N must be a positive number, got %q", args[1])
		}
		if err := database.MigrateDown(env.url, n); err != nil {
			return err
		}
	case "version":
	default:
		return fmt.Errorf("migrate: unknown action %q (want up, down N or version)", args[0])
	}
	v, dirty, err := database.Version(env.url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty)")
	}
	fmt.Fprintln(stdout)
	return nil
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
	closeAll := func() { pool.Close(); env.close() }
	svc, err := newService(env.cfg, pool, env.log, nil, nil)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return svc, closeAll, nil
}

// cleanupCmd runs one cleanup pass, as the background job does, and prints what it deleted.
// It suits a cron job beside AUTHLY_CLEANUP_INTERVAL=0.
func cleanupCmd(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	svc, closeAll, err := openService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := svc.Cleanup(ctx)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	fmt.Fprintf(stdout, "deleted %s and %s\n", plural(res.Tokens, "expired token"), plural(res.Sessions, "expired session"))
	return nil
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// createAdminCmd creates an admin from flags and a password that is never a flag.
func createAdminCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("create-admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	username := fs.String("username", "", "the admin's username")
	email := fs.String("email", "", "the admin's email")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *username == "" || *email == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, createAdminUsage)
		return errors.New("create-admin needs --username and --email, and no other arguments")
	}
	password := getenv("AUTHLY_ADMIN_PASSWORD")
	if password == "" && stdin != nil {
		line, err := bufio.NewReader(stdin).ReadString('\n')
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
		return getenv(k)
	}, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	created, err := svc.EnsureAdmin(ctx, service.NewUser{Username: *username, Email: *email, Password: password})
	if err != nil {
		return fmt.Errorf("create-admin: %s", describe(err))
	}
	if !created {
		fmt.Fprintf(stdout, "user %q already exists; nothing changed\n", *username)
		return nil
	}
	fmt.Fprintf(stdout, "created admin %q\n", *username)
	return nil
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
