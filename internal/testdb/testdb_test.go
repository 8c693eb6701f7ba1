package testdb

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func countUsers(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatalf("count users: %v", err)
	}
	return n
}

func insertUser(t *testing.T, pool *pgxpool.Pool, username string) {
	t.Helper()
	_, err := pool.Exec(t.Context(),
		"INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'not-a-hash')", username, username+"@example.com")
	if err != nil {
		t.Fatalf("insert user %s: %v", username, err)
	}
}

func TestParallelTestsGetSeparateMigratedDatabases(t *testing.T) {
	var (
		mu        sync.Mutex
		databases = map[string]bool{}
	)
	// The group returns once both parallel subtests have finished.
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "second"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				pool := Pool(t)
				if n := countUsers(t, pool); n != 0 {
					t.Fatalf("a fresh database holds %d users", n)
				}
				// Both subtests insert the same username: in a shared
				// database one of them would hit the unique constraint or
				// count two rows.
				insertUser(t, pool, "alice")
				if n := countUsers(t, pool); n != 1 {
					t.Errorf("after one insert the database holds %d users", n)
				}
				var database string
				if err := pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&database); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				databases[database] = true
				mu.Unlock()
			})
		}
	})
	if len(databases) != 2 {
		t.Errorf("two tests used %d distinct databases: %v", len(databases), databases)
	}
}

func TestWritesInOneTestDatabaseAreInvisibleInAnother(t *testing.T) {
	t.Parallel()
	written, other := Pool(t), Pool(t)
	insertUser(t, written, "bob")
	if n := countUsers(t, other); n != 0 {
		t.Errorf("another test's database sees %d users", n)
	}
}

func TestURLWithoutMainTellsTheAuthorToAddTestMain(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		urlFor(rec, nil)
	}()
	<-done
	if !strings.Contains(rec.message, "func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }") {
		t.Errorf("message %q does not show the TestMain to add", rec.message)
	}
}

// fatalRecorder captures a Fatal call and ends only its own goroutine, as
// testing.T does.
type fatalRecorder struct {
	testing.TB
	message string
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.message = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestConfigFromURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, wantURL string
	}{
		{
			name:    "a full URL keeps every part",
			url:     "postgres://app:secret@db.internal:6543/authly_test?sslmode=require",
			wantURL: "postgres://app:secret@db.internal:6543/authly_test?sslmode=require",
		},
		{
			name:    "a missing port and database default to 5432 and postgres",
			url:     "postgresql://app@localhost",
			wantURL: "postgres://app:@localhost:5432/postgres?",
		},
		{
			name:    "a password with URL syntax stays escaped",
			url:     "postgres://app:p%40ss%2Fword@localhost:5432/db",
			wantURL: "postgres://app:p%40ss%2Fword@localhost:5432/db?",
		},
		{
			name:    "an IPv6 host keeps its brackets",
			url:     "postgres://app@[::1]:5433/db",
			wantURL: "postgres://app:@[::1]:5433/db?",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := configFromURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := conf.URL(); got != tt.wantURL {
				t.Errorf("URL() = %q, want %q", got, tt.wantURL)
			}
		})
	}
	for _, bad := range []string{"mysql://app@localhost/db", "postgres:///db"} {
		if _, err := configFromURL(bad); err == nil {
			t.Errorf("configFromURL(%q) accepted it", bad)
		}
	}
}

// BenchmarkURL measures cloning a test database from the template; the drops
// happen when the benchmark ends and are not timed.
func BenchmarkURL(b *testing.B) {
	URL(b) // creates the template outside the timed loop
	for b.Loop() {
		URL(b)
	}
}
