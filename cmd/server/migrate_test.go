package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/authly/authly/internal/testdb"
	"github.com/authly/authly/sql/schema"
)

func TestMigrateCommands(t *testing.T) {
	env := envFrom(map[string]string{"DATABASE_URL": testdb.URL(t), "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB})
	versions := migrationVersions(t)
	latest, previous := versions[len(versions)-1], versions[len(versions)-2]
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "version"}, fmt.Sprintf("version %d", latest)},
		{[]string{"migrate", "down", "1"}, fmt.Sprintf("version %d", previous)},
		{[]string{"migrate", "down", strconv.Itoa(len(versions) - 1)}, "version 0"},
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

// migrationVersions are the embedded migrations' versions in ascending order; the numbers
// may have gaps.
func migrationVersions(t *testing.T) []int {
	t.Helper()
	names, err := fs.Glob(schema.FS, "*.up.sql")
	if err != nil || len(names) < 2 {
		t.Fatalf("want at least two migrations: %v", err)
	}
	var versions []int
	for _, name := range names {
		v, err := strconv.Atoi(name[:strings.IndexByte(name, '_')])
		if err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return versions
}
