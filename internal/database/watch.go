package database

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// watchPingTimeout bounds one ping, so a database that hangs counts as unreachable.
const watchPingTimeout = 2 * time.Second

// Watch pings the database every interval, in the background, until ctx ends or the returned
// function is called; that function returns once the watch has ended, so call it before
// closing the pool. It logs an error once when the database stops answering and once, at
// info, when it answers again, so that an outage shows in the log even when no request comes
// in to fail. The pool itself reconnects; Watch only reports.
func Watch(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(ctx, pool, log, interval)
	}()
	return func() {
		cancel()
		<-done
	}
}

func watch(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var downSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		pingCtx, cancel := context.WithTimeout(ctx, watchPingTimeout)
		err := pool.Ping(pingCtx)
		cancel()
		if ctx.Err() != nil {
			return // shutting down: a failed ping says nothing about the database
		}
		switch {
		case err != nil && downSince.IsZero():
			downSince = time.Now()
			log.Error("the database is unreachable; requests that need it answer 503 until it returns", "err", err)
		case err == nil && !downSince.IsZero():
			log.Info("the database is reachable again", "down_for", time.Since(downSince).Round(time.Second))
			downSince = time.Time{}
		}
	}
}
