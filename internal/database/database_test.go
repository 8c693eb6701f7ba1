package database

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/authly/authly/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestTheMigrationConnectionLeavesThePoolSettingsOut(t *testing.T) {
	for _, in := range []string{
		"postgres://u@h:5432/db",
		"postgresql://u@h/db?sslmode=disable",
		"postgres://u@h/db?pool_max_conns=12",
		"postgres://u@h/db?sslmode=require&pool_max_conns=12&pool_min_conns=2&application_name=authly",
		"host=h user=u dbname=db pool_max_conns=12 pool_max_conn_lifetime=1h application_name=authly",
	} {
		cfg, err := migrationConnConfig(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		for key := range cfg.RuntimeParams {
			if strings.HasPrefix(key, "pool_") {
				t.Errorf("%s: the migration connection sends %s to the server", in, key)
			}
		}
		if cfg.Host != "h" || cfg.User != "u" || cfg.Database != "db" {
			t.Errorf("%s: host %q, user %q, database %q", in, cfg.Host, cfg.User, cfg.Database)
		}
		if strings.Contains(in, "application_name") && cfg.RuntimeParams["application_name"] != "authly" {
			t.Errorf("%s: application_name was dropped", in)
		}
	}
}

func TestMigrationsRunOnKeywordValuePairs(t *testing.T) {
	t.Parallel()
	conn := keywordValue(t, testdb.URL(t))
	latest, _, err := Version(conn)
	if err != nil || latest == 0 {
		t.Fatalf("Version: %d %v", latest, err)
	}
	if err := MigrateDown(conn, 1); err != nil {
		t.Fatal(err)
	}
	if v, _, err := Version(conn); err != nil || v != latest-1 {
		t.Fatalf("after one step down: version %d %v, want %d", v, err, latest-1)
	}
	if err := MigrateUp(conn); err != nil {
		t.Fatal(err)
	}
	if v, dirty, err := Version(conn); err != nil || v != latest || dirty {
		t.Fatalf("after up: version %d dirty %v %v, want %d", v, dirty, err, latest)
	}
}

func TestAMalformedConnectionStringIsNeverQuoted(t *testing.T) {
	const password = "Sup3rSecretPw"
	for _, conn := range []string{
		"postgres://authly:" + password + "@db:port/authly",
		"host=db user=authly password = " + password + " port=abc",
	} {
		_, err := Open(context.Background(), conn, Options{})
		if err == nil || strings.Contains(err.Error(), password) {
			t.Errorf("Open: %v", err)
		}
		if err := MigrateUp(conn); err == nil || strings.Contains(err.Error(), password) {
			t.Errorf("MigrateUp: %v", err)
		}
	}
}

// keywordValue rewrites a postgres:// URL as keyword/value pairs, each value quoted.
func keywordValue(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	quote := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	pairs := []string{"host=" + quote(u.Hostname()), "dbname=" + quote(strings.TrimPrefix(u.Path, "/"))}
	if u.Port() != "" {
		pairs = append(pairs, "port="+u.Port())
	}
	if u.User != nil {
		pairs = append(pairs, "user="+quote(u.User.Username()))
		if p, ok := u.User.Password(); ok {
			pairs = append(pairs, "password="+quote(p))
		}
	}
	for k, vs := range u.Query() {
		for _, v := range vs {
			pairs = append(pairs, k+"="+quote(v))
		}
	}
	return strings.Join(pairs, " ")
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
