package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/authly/authly/internal/database"
)

const migrateUsage = `Usage: authly migrate up | down N | version

Applies every pending migration (up), rolls back the last N (down N), or changes nothing
(version); then prints the applied migration version. The migrations are embedded in the
binary.
`

var migrateCommand = command{usage: migrateUsage, run: migrateCmd}

// migration is a checked migrate command line: up, down with its steps, or version.
type migration struct {
	action string
	steps  int // for down: how many migrations to roll back, at least 1
}

func parseMigration(args []string) (migration, error) {
	if len(args) == 0 {
		return migration{}, usageErrorf("migrate needs up, down N or version")
	}
	m := migration{action: args[0]}
	want := 1
	switch m.action {
	case "up", "version":
	case "down":
		want = 2
		if len(args) < 2 {
			return migration{}, usageErrorf("migrate down needs N, the number of migrations to roll back")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			return migration{}, usageErrorf("migrate down: N must be a whole number of at least 1 (got %q)", args[1])
		}
		m.steps = n
	default:
		return migration{}, usageErrorf("migrate: unknown action %q (want up, down N or version)", m.action)
	}
	if len(args) > want {
		return migration{}, usageErrorf("migrate %s: unexpected argument %q", m.action, args[want])
	}
	return m, nil
}

func migrateCmd(ctx context.Context, inv invocation) error {
	m, err := parseMigration(inv.args)
	if err != nil {
		return err
	}
	env, err := prepare(ctx, inv.getenv, inv.stderr)
	if err != nil {
		return err
	}
	defer env.close()
	switch m.action {
	case "up":
		err = database.MigrateUp(env.url)
	case "down":
		err = database.MigrateDown(env.url, m.steps)
	}
	if err != nil {
		return err
	}
	v, dirty, err := database.Version(env.url)
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.stdout, "version %d", v)
	if dirty {
		fmt.Fprint(inv.stdout, " (dirty)")
	}
	fmt.Fprintln(inv.stdout)
	return nil
}
