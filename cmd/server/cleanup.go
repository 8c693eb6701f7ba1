package main

import (
	"context"
	"fmt"
)

const cleanupUsage = `Usage: authly cleanup

Deletes expired tokens and sessions, and the lapsed failed-login counts of login names that
match no account, once, as the background job does, and prints the counts. It suits a cron
job beside AUTHLY_CLEANUP_INTERVAL=0.
`

var cleanupCommand = command{usage: cleanupUsage, run: cleanupCmd}

// cleanupCmd runs one cleanup pass and prints what it deleted.
func cleanupCmd(ctx context.Context, inv invocation) error {
	if err := noArguments("cleanup", inv.args); err != nil {
		return err
	}
	svc, closeAll, err := openService(ctx, inv.getenv, inv.stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := svc.Cleanup(ctx)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	fmt.Fprintf(inv.stdout, "deleted %s, %s and %s\n", plural(res.Tokens, "expired token"),
		plural(res.Sessions, "expired session"), plural(res.LoginFailures, "lapsed login-failure count"))
	return nil
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
