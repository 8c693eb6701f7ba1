package database

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Bounded wraps a pool so that waiting for a connection is limited by AcquireTimeout, apart
// from how long the statement itself may run (statement_timeout, set on the connection). When
// the pool is exhausted or PostgreSQL is unreachable, callers fail fast instead of queueing
// until their request deadline. It satisfies the generated queries' DBTX interface.
type Bounded struct {
	Pool           *pgxpool.Pool
	AcquireTimeout time.Duration
}

func (b *Bounded) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if b.AcquireTimeout <= 0 {
		return b.Pool.Acquire(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, b.AcquireTimeout)
	defer cancel()
	return b.Pool.Acquire(actx)
}

// Exec runs a statement on a pooled connection.
func (b *Bounded) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := b.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	return c.Exec(ctx, sql, args...)
}

// Query runs a query; the connection returns to the pool when the rows are closed.
func (b *Bounded) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := b.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return nil, err
	}
	return &releasingRows{Rows: rows, conn: c}, nil
}

// QueryRow runs a query for one row; the connection returns to the pool after Scan.
func (b *Bounded) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := b.acquire(ctx)
	if err != nil {
		return errRow{err: err}
	}
	return &releasingRow{row: c.QueryRow(ctx, sql, args...), conn: c}
}

// Begin starts a transaction; the connection returns to the pool at commit or rollback.
func (b *Bounded) Begin(ctx context.Context) (pgx.Tx, error) {
	c, err := b.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		c.Release()
		return nil, err
	}
	return &releasingTx{Tx: tx, conn: c}, nil
}

type releasingRows struct {
	pgx.Rows
	conn *pgxpool.Conn
}

func (r *releasingRows) Close() {
	r.Rows.Close()
	if r.conn != nil {
		r.conn.Release()
		r.conn = nil
	}
}

// Next releases the connection as soon as the rows are exhausted, as pgxpool does.
func (r *releasingRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

type releasingRow struct {
	row  pgx.Row
	conn *pgxpool.Conn
}

func (r *releasingRow) Scan(dest ...any) error {
	defer r.conn.Release()
	return r.row.Scan(dest...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type releasingTx struct {
	pgx.Tx
	conn *pgxpool.Conn
}

func (t *releasingTx) release() {
	if t.conn != nil {
		t.conn.Release()
		t.conn = nil
	}
}

func (t *releasingTx) Commit(ctx context.Context) error {
	defer t.release()
	return t.Tx.Commit(ctx)
}

func (t *releasingTx) Rollback(ctx context.Context) error {
	defer t.release()
	return t.Tx.Rollback(ctx)
}
