package database

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authly/authly/internal/pgcluster"
)

// logLines collects log output written from the watcher's goroutine.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "msg=\""+msg+"\"")
}

// waitFor polls until the log holds msg n times, or fails the test after a generous deadline.
func (l *logLines) waitFor(t *testing.T, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for l.count(msg) < n {
		if time.Now().After(deadline) {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("the log never said %q:\n%s", msg, l.b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchLogsAnOutageOnceAndTheRecoveryOnce(t *testing.T) {
	t.Parallel()
	const (
		down = "the database is unreachable; requests that need it answer 503 until it returns"
		up   = "the database is reachable again"
	)
	// A private cluster, since this test stops it.
	parent, err := os.MkdirTemp("", "database-watch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil { // reachable by the postgres user when root
		t.Fatal(err)
	}
	ctx := context.Background()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(parent, "data"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	pool, err := Open(ctx, cluster.URL(pgcluster.DefaultDatabase), Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	var logs logLines
	log := slog.New(slog.NewTextHandler(&logs, nil))
	stopWatching := Watch(ctx, pool, log, 20*time.Millisecond)
	defer stopWatching()

	time.Sleep(100 * time.Millisecond) // a few healthy pings
	if n := logs.count(down) + logs.count(up); n != 0 {
		t.Fatalf("a healthy database logged %d outage lines", n)
	}

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, down, 1)
	time.Sleep(200 * time.Millisecond) // many more failed pings
	if n := logs.count(down); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
	if n := logs.count(up); n != 0 {
		t.Errorf("a recovery was logged while the database was down")
	}

	if err := cluster.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, up, 1)
	time.Sleep(200 * time.Millisecond) // many more healthy pings
	if n := logs.count(up); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
	if n := logs.count(down); n != 1 {
		t.Errorf("the outage was logged %d times in all, want once", n)
	}

	// Ending the watch while the database is down logs nothing more.
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, down, 2)
	stopWatching()
	if n := logs.count(up); n != 1 {
		t.Errorf("stopping the watch logged a recovery")
	}
}
