package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/sql/schema"
)

func TestMigrateCommands(t *testing.T) {
	env := envFrom(map[string]string{"DATABASE_URL": testdb.URL(t), "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB})
	latest := latestMigration(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "version"}, fmt.Sprintf("version %d", latest)},
		{[]string{"migrate", "down", "1"}, fmt.Sprintf("version %d", latest-1)},
		{[]string{"migrate", "down", strconv.Itoa(latest - 1)}, "version 0"},
		{[]string{"migrate", "up"}, fmt.Sprintf("version %d", latest)},
	}
	for _, s := range steps {
		var stdout bytes.Buffer
		if err := run(context.Background(), s.args, env, nil, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", s.args, err)
		}
		if got := strings.TrimSpace(stdout.String()); got != s.want {
			t.Fatalf("%v printed %q, want %q", s.args, got, s.want)
		}
	}
	if err := run(context.Background(), []string{"migrate", "down", "zero"}, env, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("migrate down accepted a non-number")
	}
}

// latestMigration is the highest version among the embedded migrations.
func latestMigration(t *testing.T) int {
	t.Helper()
	names, err := fs.Glob(schema.FS, "*.up.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	latest := 0
	for _, name := range names {
		v, err := strconv.Atoi(name[:strings.IndexByte(name, '_')])
		if err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		latest = max(latest, v)
	}
	return latest
}
