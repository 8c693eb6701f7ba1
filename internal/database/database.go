// Package database opens Authly's PostgreSQL connection pool, applies the migrations
// embedded from sql/schema, and reports in the log when the database goes away and returns.
package database

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/sql/schema"
)

// Options tune the pool's connections; zero values keep the driver's defaults.
type Options struct {
	// StatementTimeout is PostgreSQL's statement_timeout on every connection: a statement
	// running longer is cancelled by the server.
	StatementTimeout time.Duration
	// ConnectTimeout bounds opening one connection, so an unreachable server fails fast.
	ConnectTimeout time.Duration
}

// Open connects a pool to url and waits until the database answers, up to the context's
// deadline. The pool holds up to pool_max_conns connections when url sets it, and
// DefaultMaxConns otherwise.
func Open(ctx context.Context, url string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error can echo the URL, password included, so it is not wrapped.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns()
	}
	if opts.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: creating pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: cannot reach PostgreSQL: %w", err)
	}
	return pool, nil
}

// DefaultMaxConns is four connections per CPU, at least four. pgxpool's own default, one per
// CPU, suits queries that keep the database's CPUs busy; a token rotation spends most of
// its time waiting for its commit to reach the disk, and more connections let more commits
// share one flush. On 2 CPUs, 8 connections instead of 4 took refresh rotations from
// 4,100-4,300 to 4,500-5,400 per second, GET /users/me unchanged (docs/benchmarks.md).
func DefaultMaxConns() int32 { return int32(max(4, 4*runtime.GOMAXPROCS(0))) }

// newMigrate opens golang-migrate on the embedded migrations. golang-migrate serialises
// concurrent runs with an advisory lock, so several instances may start at once.
func newMigrate(url string) (*migrate.Migrate, error) {
	src, err := iofs.New(schema.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("database: reading embedded migrations: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, migrateURL(url))
	if err != nil {
		return nil, fmt.Errorf("database: opening migrations: %w", err)
	}
	return m, nil
}

// migrateURL points golang-migrate's pgx v5 driver at the same database. The pool's own
// settings (pool_max_conns and the other pool_* parameters) are dropped: the driver would
// send them to the server, which refuses unknown parameters.
func migrateURL(url string) string {
	for _, prefix := range []string{"postgresql://", "postgres://"} {
		if rest, ok := strings.CutPrefix(url, prefix); ok {
			return "pgx5://" + withoutPoolParams(rest)
		}
	}
	return url
}

func withoutPoolParams(rest string) string {
	base, query, ok := strings.Cut(rest, "?")
	if !ok {
		return rest
	}
	var kept []string
	for param := range strings.SplitSeq(query, "&") {
		if !strings.HasPrefix(param, "pool_") {
			kept = append(kept, param)
		}
	}
	if len(kept) == 0 {
		return base
	}
	return base + "?" + strings.Join(kept, "&")
}

func closeMigrate(m *migrate.Migrate, err error) error {
	srcErr, dbErr := m.Close()
	return errors.Join(err, srcErr, dbErr)
}

// MigrateUp applies every pending migration.
func MigrateUp(url string) error {
	m, err := newMigrate(url)
	if err != nil {
		return err
	}
	err = m.Up()
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	return closeMigrate(m, err)
}

// MigrateDown rolls back n migrations.
func MigrateDown(url string, n int) error {
	if n <= 0 {
		return errors.New("database: the number of migrations to roll back must be positive")
	}
	m, err := newMigrate(url)
	if err != nil {
		return err
	}
	return closeMigrate(m, m.Steps(-n))
}

// Version reports the applied migration version and whether a failed migration left the
// schema dirty. Version 0 means no migration is applied.
func Version(url string) (version uint, dirty bool, err error) {
	m, err := newMigrate(url)
	if err != nil {
		return 0, false, err
	}
	version, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		version, dirty, err = 0, false, nil
	}
	return version, dirty, closeMigrate(m, err)
}
