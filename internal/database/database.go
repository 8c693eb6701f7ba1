// Package database opens Authly's PostgreSQL connection pool, applies the migrations
// embedded from sql/schema, and reports in the log when the database goes away and returns.
// Bounded is the handle the domain runs every query through, with a bounded wait for a
// connection; a Pipeline sends several statements in one round trip.
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
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

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

// Open connects a pool to the database connString names, a postgres:// URL or keyword/value
// pairs, and waits until the database answers, up to the context's deadline. The pool holds up
// to pool_max_conns connections when connString sets it, and DefaultMaxConns otherwise.
func Open(ctx context.Context, connString string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, errInvalidConnString
	}
	if !strings.Contains(connString, "pool_max_conns") {
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

// errInvalidConnString stands for pgx's parse errors, which can echo the connection string,
// password included. config.Load has reported what is wrong with DATABASE_URL already.
var errInvalidConnString = errors.New("DATABASE_URL: not a valid PostgreSQL connection string")

// DefaultMaxConns is four connections per CPU, at least four. pgxpool's own default, one per
// CPU, suits queries that keep the database's CPUs busy; a token rotation spends most of
// its time waiting for its commit to reach the disk, and more connections let more commits
// share one flush. On 2 CPUs, 8 connections instead of 4 took refresh rotations from
// 4,100-4,300 to 4,500-5,400 per second, GET /users/me unchanged (docs/benchmarks.md).
func DefaultMaxConns() int32 { return int32(max(4, 4*runtime.GOMAXPROCS(0))) }

// newMigrate opens golang-migrate on the embedded migrations, over a connection of its own
// to the database connString names. golang-migrate serialises concurrent runs with an
// advisory lock, so several instances may start at once.
//
// The connection is built from pgx's parse of connString, so that both of its forms work and
// golang-migrate never sees the string: its errors would quote it, password included. The
// pool's settings (pool_max_conns and the other pool_* keys) are the pool's own and are left
// out, and so is the pool's statement_timeout, which a long migration, or an instance waiting
// for another's lock, would outlast.
func newMigrate(connString string) (*migrate.Migrate, error) {
	connConfig, err := migrationConnConfig(connString)
	if err != nil {
		return nil, err
	}
	src, err := iofs.New(schema.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("database: reading embedded migrations: %w", err)
	}
	db := stdlib.OpenDB(*connConfig)
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{
		// The advisory lock's key is derived from this name. "/name" is what golang-migrate
		// derives from a URL's path, so this run and one opened from a URL, such as the
		// migrate command-line tool's, exclude each other.
		DatabaseName: "/" + connConfig.Database,
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("database: cannot reach PostgreSQL to migrate: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		_ = driver.Close()
		return nil, fmt.Errorf("database: opening migrations: %w", err)
	}
	return m, nil
}

// migrationConnConfig is the connection golang-migrate uses: connString without the pool's
// settings.
func migrationConnConfig(connString string) (*pgx.ConnConfig, error) {
	cfg, err := pgxpool.ParseConfig(connString) // removes the pool_* keys from ConnConfig
	if err != nil {
		return nil, errInvalidConnString
	}
	return cfg.ConnConfig, nil
}

func closeMigrate(m *migrate.Migrate, err error) error {
	srcErr, dbErr := m.Close()
	return errors.Join(err, srcErr, dbErr)
}

// MigrateUp applies every pending migration.
func MigrateUp(connString string) error {
	m, err := newMigrate(connString)
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
func MigrateDown(connString string, n int) error {
	if n <= 0 {
		return errors.New("database: the number of migrations to roll back must be positive")
	}
	m, err := newMigrate(connString)
	if err != nil {
		return err
	}
	return closeMigrate(m, m.Steps(-n))
}

// Version reports the applied migration version and whether a failed migration left the
// schema dirty. Version 0 means no migration is applied.
func Version(connString string) (version uint, dirty bool, err error) {
	m, err := newMigrate(connString)
	if err != nil {
		return 0, false, err
	}
	version, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		version, dirty, err = 0, false, nil
	}
	return version, dirty, closeMigrate(m, err)
}
