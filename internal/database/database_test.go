package database

import (
	"context"
	"os"
	"testing"

	"github.com/authly/authly/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestMigrateURLDropsThePoolSettings(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db", "pgx5://u@h:5432/db"},
		{"postgresql://u@h/db?sslmode=disable", "pgx5://u@h/db?sslmode=disable"},
		{"postgres://u@h/db?pool_max_conns=12", "pgx5://u@h/db"},
		{"postgres://u@h/db?sslmode=require&pool_max_conns=12&pool_min_conns=2&application_name=authly",
			"pgx5://u@h/db?sslmode=require&application_name=authly"},
	} {
		if got := migrateURL(tc.in); got != tc.want {
			t.Errorf("migrateURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestThePoolTakesItsSizeFromTheURLOrTheDefault(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	for _, tc := range []struct {
		url  string
		want int32
	}{
		{url, DefaultMaxConns()},
		{url + "&pool_max_conns=3", 3},
	} {
		pool, err := Open(context.Background(), tc.url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := pool.Config().MaxConns
		pool.Close()
		if got != tc.want {
			t.Errorf("%s: %d connections, want %d", tc.url, got, tc.want)
		}
	}
	if DefaultMaxConns() < 4 {
		t.Fatalf("DefaultMaxConns() = %d, want at least 4", DefaultMaxConns())
	}
}

func TestMigrationsRunWithAPoolSettingInTheURL(t *testing.T) {
	t.Parallel()
	if err := MigrateUp(testdb.URL(t) + "&pool_max_conns=3"); err != nil {
		t.Fatal(err)
	}
}
