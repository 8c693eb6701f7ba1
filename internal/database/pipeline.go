package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// errPipelineRows is what a Pipeline answers a query that would return rows: it only collects
// statements, so there are no rows to read until it has run.
var errPipelineRows = errors.New("database: a pipeline collects statements that return no rows")

// Pipeline collects the generated queries' statements instead of running them, so that
// Bounded.RunPipeline can send them to PostgreSQL together, in one round trip. PostgreSQL runs
// them in order in one implicit transaction: each statement sees what the ones before it did
// (and, under READ COMMITTED, whatever other transactions committed before it started, just as
// in an explicit transaction), the first failure skips the rest, and they commit together or
// not at all. Only statements that return no rows (sqlc's :exec) can be collected; Query and
// QueryRow fail. A Pipeline satisfies the generated queries' DBTX interface; it is not safe for
// concurrent use.
type Pipeline struct {
	batch pgx.Batch
}

// Exec queues a statement. It never fails: the statement's outcome is RunPipeline's.
func (p *Pipeline) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p.batch.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

// Query fails: a Pipeline cannot collect a statement whose rows the caller needs now.
func (p *Pipeline) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errPipelineRows
}

// QueryRow fails for the same reason as Query.
func (p *Pipeline) QueryRow(context.Context, string, ...any) pgx.Row {
	return errRow{err: errPipelineRows}
}

// Len is how many statements the pipeline holds.
func (p *Pipeline) Len() int { return p.batch.Len() }

// RunPipeline sends p's statements in one round trip on one pooled connection and waits for
// them to commit. It reads every statement's result in order and returns the first failure,
// naming the statement; then nothing of p has taken effect.
func (b *Bounded) RunPipeline(ctx context.Context, p *Pipeline) error {
	if p.Len() == 0 {
		return nil
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	results := c.SendBatch(ctx, &p.batch)
	for i := range p.Len() {
		if _, err = results.Exec(); err != nil {
			err = fmt.Errorf("database: pipeline statement %d of %d: %w", i+1, p.Len(), err)
			break
		}
	}
	// Close reports a failure that no single result carried, such as the implicit commit's.
	closeErr := results.Close()
	if err != nil {
		return err
	}
	return closeErr
}
