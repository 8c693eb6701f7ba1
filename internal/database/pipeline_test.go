package database

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/authly/authly/internal/testdb"
)

const insertLoginFailure = "INSERT INTO login_failures (login_name, failed_attempts, last_failed_at) VALUES ($1, 1, now())"

func TestAPipelineCommitsEveryStatementTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := &Bounded{Pool: testdb.Pool(t)}
	var p Pipeline
	for _, name := range []string{"a", "b", "c"} {
		if _, err := p.Exec(ctx, insertLoginFailure, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.RunPipeline(ctx, &p); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.Pool.QueryRow(ctx, "SELECT count(*) FROM login_failures").Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d rows after the pipeline (%v), want 3", n, err)
	}
}

func TestAPipelineReportsTheStatementThatFailedAndKeepsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := &Bounded{Pool: testdb.Pool(t)}
	var p Pipeline
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{insertLoginFailure, []any{"first"}},
		{insertLoginFailure, []any{"first"}}, // the primary key refuses it
		{insertLoginFailure, []any{"third"}},
	} {
		if _, err := p.Exec(ctx, stmt.sql, stmt.args...); err != nil {
			t.Fatal(err)
		}
	}
	err := b.RunPipeline(ctx, &p)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" || !strings.Contains(err.Error(), "statement 2 of 3") {
		t.Fatalf("RunPipeline = %v, want the unique violation of statement 2 of 3", err)
	}
	var n int
	if err := b.Pool.QueryRow(ctx, "SELECT count(*) FROM login_failures").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows after a failed pipeline (%v), want none", n, err)
	}
}

func TestAPipelineCollectsNoQueryThatReturnsRows(t *testing.T) {
	var p Pipeline
	if _, err := p.Query(context.Background(), "SELECT 1"); !errors.Is(err, errPipelineRows) {
		t.Fatalf("Query = %v, want errPipelineRows", err)
	}
	var one int
	if err := p.QueryRow(context.Background(), "SELECT 1").Scan(&one); !errors.Is(err, errPipelineRows) {
		t.Fatalf("QueryRow = %v, want errPipelineRows", err)
	}
	if p.Len() != 0 {
		t.Fatalf("the pipeline holds %d statements, want none", p.Len())
	}
}
