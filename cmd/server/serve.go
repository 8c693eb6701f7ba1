package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/clientip"
	"github.com/authly/authly/internal/config"
	"github.com/authly/authly/internal/database"
	"github.com/authly/authly/internal/httpapi"
	"github.com/authly/authly/internal/metrics"
	"github.com/authly/authly/internal/ratelimit"
	"github.com/authly/authly/internal/service"
	"github.com/authly/authly/internal/token"
)

const serveUsage = `Usage: authly serve

Applies any pending migration, opens the signing-key store, then serves the API (and the
public signing keys at /.well-known/jwks.json) and sends the account mail queued in the
outbox until SIGINT or SIGTERM, and drains in-flight requests before it stops.
`

var serveCommand = command{
	usage: serveUsage,
	run: func(ctx context.Context, inv invocation) error {
		if err := noArguments("serve", inv.args); err != nil {
			return err
		}
		return serve(ctx, inv.getenv, inv.stderr, nil)
	},
}

// serve runs the API until ctx ends, in three steps: build, listen, shut down. When ready is
// not nil it receives the bound address.
func serve(ctx context.Context, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	env, err := prepare(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	// A second server on the same embedded data directory is refused here, before it binds,
	// with the address of the one already serving it.
	if err := env.cluster.ClaimServer(); err != nil {
		return err
	}
	a, err := build(ctx, env)
	if err != nil {
		return err
	}
	// Runs after the servers have stopped: the cleaner finishes its statement, then the pool
	// closes, then (above) the embedded cluster stops.
	defer a.close()
	srv, err := listen(ctx, a)
	if err != nil {
		return err
	}
	env.cluster.SetServing(srv.addr)
	if ready != nil {
		ready <- srv.addr
	}
	select {
	case err := <-srv.errs:
		srv.close()
		return err
	case <-ctx.Done():
	}
	return shutdown(a, srv)
}

// app is what serve builds before it listens: a migrated database and its pool, the service
// with its background cleanup, and the HTTP handler.
type app struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *metrics.Metrics // nil unless AUTHLY_METRICS_ADDR is set
	svc     *service.Service
	handler http.Handler
	closers []func() // in the order they were acquired; close runs them backwards
}

// build migrates the database, opens the pool, builds the service and its handler, creates the
// bootstrap admin, and starts the mail worker and the background cleanup. On error it releases
// what it built.
func build(ctx context.Context, env *environment) (_ *app, err error) {
	cfg, log := env.cfg, env.log
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()

	// Where mail goes is settled before anything starts, so that a server that could not send
	// its users' links never serves.
	sender, route, err := mailSender(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := database.MigrateUp(env.url); err != nil {
		return nil, err
	}
	pool, err := database.Open(ctx, env.url, dbOptions(cfg))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, pool.Close, database.Watch(ctx, pool, log, 5*time.Second))
	if cfg.MetricsAddr != "" {
		a.metrics = metrics.New()
		a.metrics.WatchPool(pool)
	}
	limiter, closeLimiter, err := newRateLimiter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, closeLimiter)
	store, closeStore, err := openKeys(ctx, cfg, pool, log)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, closeStore)
	var jwks httpapi.JWKSSource = httpapi.EmptyJWKS{MaxAge: cfg.Keys.JWKSMaxAge}
	if store != nil {
		jwks = store
		// Stopped before the pool closes (closers run backwards).
		runCtx, stopRun := context.WithCancel(ctx)
		runDone := make(chan struct{})
		go func() { defer close(runDone); _ = store.Run(runCtx) }()
		a.closers = append(a.closers, func() { stopRun(); <-runDone })
	}
	a.svc, a.handler, err = buildHandler(cfg, pool, log, keySource(store), jwks, limiter, a.metrics)
	if err != nil {
		return nil, err
	}
	if cfg.AdminUsername != "" {
		created, err := a.svc.EnsureAdmin(ctx, service.NewUser{Username: cfg.AdminUsername, Email: cfg.AdminEmail, Password: cfg.AdminPassword}, service.AdminFromBootstrap)
		if err != nil {
			return nil, bootstrapAdminError(err, cfg.AdminUsername, cfg.AdminEmail)
		}
		if created {
			log.Info("created the bootstrap admin", "username", cfg.AdminUsername)
		}
	}
	stopWorker, err := startMailWorker(ctx, cfg, pool, sender, log, a.metrics)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, stopWorker)
	// Closers run backwards: after the last request, the work deferred by requests (password
	// reset and verification requests answered before their mail was queued) finishes, then
	// the worker stops, then the pool closes.
	a.closers = append(a.closers, func() {
		waitCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := a.svc.WaitDeferred(waitCtx); err != nil {
			log.Warn("deferred work did not finish before shutdown", "err", err)
		}
	})
	log.Info("sending account mail", "via", route, "public_url", cfg.Account.PublicURL,
		"verification", cfg.Account.RequireVerification)
	if cfg.CleanupInterval > 0 {
		cleanerCtx, stopCleaner := context.WithCancel(ctx)
		cleanerDone := make(chan struct{})
		go func() { defer close(cleanerDone); a.svc.RunCleanup(cleanerCtx, cfg.CleanupInterval) }()
		a.closers = append(a.closers, func() { stopCleaner(); <-cleanerDone })
	}
	return a, nil
}

// buildHandler builds the service and the HTTP handler serving it, with every route. ks is
// nil without a key store; jwks is what GET /.well-known/jwks.json serves.
func buildHandler(cfg config.Config, pool *pgxpool.Pool, log *slog.Logger, ks token.KeySource, jwks httpapi.JWKSSource, limiter ratelimit.Limiter, m *metrics.Metrics) (*service.Service, http.Handler, error) {
	svc, err := newService(cfg, pool, log, ks, limiter, m)
	if err != nil {
		return nil, nil, err
	}
	handler, err := httpapi.NewServer(svc, httpapi.ServerOptions{
		Logger:             log,
		Metrics:            m,
		Docs:               cfg.DocsEnabled,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		ClientIP:           clientip.NewResolver(cfg.TrustedProxies),
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		JWKS:               jwks,
		RefusalHold:        httpapi.RefusalHold{Max: cfg.RefusalHold, Concurrent: cfg.RefusalHoldConcurrent},
	})
	if err != nil {
		return nil, nil, err
	}
	return svc, handler, nil
}

// close releases what build acquired, the last first.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// servers are the running HTTP servers: the API and, when configured, the metrics.
type servers struct {
	api     *http.Server
	metrics *http.Server // nil unless AUTHLY_METRICS_ADDR is set
	addr    string       // the API's bound address
	errs    chan error   // receives the error of a server that stops by itself
}

// listen binds the API's address and the metrics' own, serves them, and marks the service
// ready.
func listen(ctx context.Context, a *app) (*servers, error) {
	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("AUTHLY_LISTEN_ADDR: %w", err)
	}
	s := &servers{
		api: &http.Server{
			Handler:           a.handler,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		},
		addr: ln.Addr().String(),
		errs: make(chan error, 2),
	}
	var metricsLn net.Listener
	if a.metrics != nil {
		// Metrics get their own listener, never the public one.
		metricsLn, err = net.Listen("tcp", a.cfg.MetricsAddr)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("AUTHLY_METRICS_ADDR: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.metrics.Handler())
		s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	}

	go func() { s.errs <- s.api.Serve(ln) }()
	if s.metrics != nil {
		go func() { s.errs <- s.metrics.Serve(metricsLn) }()
		a.log.Info("serving metrics", "addr", metricsLn.Addr().String())
	}
	a.svc.MarkServing()
	a.log.Info("listening", "addr", s.addr)
	return s, nil
}

// close stops the servers at once, for when one of them failed.
func (s *servers) close() {
	_ = s.api.Close()
	if s.metrics != nil {
		_ = s.metrics.Close()
	}
}

// shutdown drains the servers. Readiness fails first; then the listeners close and in-flight
// requests finish within AUTHLY_SHUTDOWN_TIMEOUT, measured from a fresh context because the
// serving one has ended.
func shutdown(a *app, s *servers) error {
	a.svc.MarkDraining()
	a.log.Info("shutting down: draining in-flight requests", "timeout", a.cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	err := s.api.Shutdown(ctx)
	if s.metrics != nil {
		err = errors.Join(err, s.metrics.Shutdown(ctx))
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	a.log.Info("stopped")
	return nil
}
