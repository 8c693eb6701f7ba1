// Command server is the authly binary: it serves the HTTP API by default, and has the
// operator commands (migrate, create-admin, cleanup, version). Each command lives in its own
// file; run.go holds the command table, the usage and what the commands share.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authly:", err)
		os.Exit(1)
	}
}
