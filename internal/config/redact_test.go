package config

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// oddPassword has the characters that make a password hard to find in a connection string:
// spaces, a quote, a backslash, "@", ":" and "/".
const oddPassword = `Sup3r Se'cr\et@Pw:/x`

func TestLoadAcceptsBothFormsOfDatabaseURL(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"a postgres:// URL", databaseURL},
		{"a postgresql:// URL with settings", "postgresql://authly:" + dbPassword + "@db/authly?sslmode=require&application_name=authly"},
		{"a URL with pool settings", databaseURL + "?pool_max_conns=12&pool_min_conns=2"},
		{"a URL whose password holds escaped characters", "postgres://" + url.UserPassword("authly", oddPassword).String() + "@db/authly"},
		{"keyword/value pairs", "host=db port=5432 user=authly password=" + dbPassword + " dbname=authly sslmode=disable"},
		{"keyword/value pairs with a quoted password", `host=db user=authly password='Sup3r Se\'cr\\et' dbname=authly`},
		{"keyword/value pairs with a pool setting", "host=db user=authly dbname=authly pool_max_conns=3"},
		{"several hosts", "postgres://authly@db1:5432,db2:5433/authly?target_session_attrs=read-write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(t.Context(), withSecrets(envDatabaseURL, tc.value))
			if err != nil {
				t.Fatal(err)
			}
			if c.DatabaseURL != tc.value || c.Embedded() {
				t.Fatalf("DatabaseURL = %q, want %q", c.DatabaseURL, tc.value)
			}
		})
	}
}

func TestLoadRefusesAMalformedDatabaseURLWithoutShowingItsPassword(t *testing.T) {
	for _, tc := range []struct {
		name, value, password, reason string
	}{
		{"a URL with a port that is not a number", "postgres://authly:" + dbPassword + "@db:port/authly", dbPassword, "(invalid port)"},
		{"a URL with a port out of range", "postgres://authly:" + dbPassword + "@db:99999/authly", dbPassword, "(invalid port)"},
		{"a URL without the colon of its scheme", "postgres//authly:" + dbPassword + "@db/authly", dbPassword, "(failed to parse as keyword/value"},
		{"a URL with golang-migrate's scheme", "pgx5://authly:" + dbPassword + "@db/authly", dbPassword, `(got a "pgx5" URL)`},
		{"a URL of another database", "mysql://authly:" + dbPassword + "@db/authly", dbPassword, `(got a "mysql" URL)`},
		{"a URL with an unknown sslmode", "postgres://authly:" + dbPassword + "@db/authly?sslmode=bogus", dbPassword, "(failed to configure TLS (sslmode is invalid))"},
		{"a URL with a pool size that is not a number", "postgres://authly:" + dbPassword + "@db/authly?pool_max_conns=many", dbPassword, "(cannot parse pool_max_conns"},
		{"a URL with a bad percent escape in the password", "postgres://authly:" + dbPassword + "%zz@db/authly", dbPassword, "(failed to parse as URL (invalid percent-encoded token in password))"},
		{"a password parameter and a broken query", "postgres://authly@db/authly?password=" + dbPassword + "&sslmode", dbPassword, `(failed to parse as URL (missing key/value separator "="`},
		{"an unescaped odd password", "postgres://authly:" + oddPassword + "@db/authly", oddPassword, "(failed to parse as URL (unexpected spaces found in password"},
		{"an escaped odd password with a port that is not a number", "postgres://" + url.UserPassword("authly", oddPassword).String() + "@db:port/authly", oddPassword, "(invalid port)"},
		{"keyword/value pairs with a bad port", "host=db port=abc user=authly password=" + dbPassword + " dbname=authly", dbPassword, "(invalid port)"},
		// pgx's own message shows this password: it looks for "password=" without spaces.
		{"keyword/value pairs with spaces around the password's =", "host=db user=authly password = " + dbPassword + " port=abc", dbPassword, "(invalid port)"},
		{"keyword/value pairs with an unterminated quote", "host=db user=authly password='" + dbPassword + " more words dbname=authly", dbPassword, "(failed to parse as keyword/value (unterminated quoted string"},
		{"keyword/value pairs with a bad sslmode", `host=db user=authly password='Sup3r Se\'cr\\et' sslmode=bogus`, `Sup3r Se'cr\et`, "(failed to configure TLS (sslmode is invalid))"},
		{"a blank value", "   ", "", "must not be blank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(t.Context(), withSecrets(envDatabaseURL, tc.value))
			got := problems(t, err)
			if len(got) != 1 || !strings.HasPrefix(got[0], "DATABASE_URL: ") || !strings.Contains(got[0], tc.reason) {
				t.Fatalf("want one problem naming DATABASE_URL with %q, got:\n%v", tc.reason, err)
			}
			if tc.password == "" {
				return
			}
			for _, spelling := range []string{tc.password, url.UserPassword("", tc.password).String()[1:], url.QueryEscape(tc.password), "Se'cr"} {
				if strings.Contains(err.Error(), spelling) {
					t.Errorf("the error shows the password (%q):\n%v", spelling, err)
				}
			}
		})
	}
}

func TestLoadReportsADatabaseURLProblemWithTheOthers(t *testing.T) {
	_, err := Load(t.Context(), withSecrets(
		envDatabaseURL, "postgres://authly:"+dbPassword+"@db:port/authly",
		envJWTAlgorithm, "none",
		envBcryptCost, "99",
	))
	assertProblems(t, err, "DATABASE_URL: must be a postgres://", "JWT_ALGORITHM: ", "AUTHLY_BCRYPT_COST: ")
}

func TestRedactorHidesEverySpellingOfThePasswords(t *testing.T) {
	for _, tc := range []struct {
		name, databaseURL, redisURL, text, want string
	}{
		{"a URL's password as written",
			"postgres://authly:" + dbPassword + "@db/authly", "",
			`parse "pgx5://authly:` + dbPassword + `@db:port/authly": invalid port`,
			`parse "pgx5://authly:xxxxx@db:port/authly": invalid port`},
		{"a URL's escaped password, decoded",
			"postgres://" + url.UserPassword("authly", oddPassword).String() + "@db/authly", "",
			"login " + oddPassword + " and " + url.UserPassword("", oddPassword).String()[1:],
			"login xxxxx and xxxxx"},
		{"an unescaped @ in a URL's password",
			"postgres://authly:pa@ss@db/authly", "",
			"postgres://authly:pa@ss@db/authly",
			"postgres://authly:xxxxx@db/authly"},
		{"a password query parameter",
			"postgres://authly@db/authly?password=" + url.QueryEscape(oddPassword) + "&sslmode=disable", "",
			"password " + oddPassword,
			"password xxxxx"},
		{"a quoted keyword/value password",
			`host=db password='Sup3r Se\'cr\\et' user=authly`, "",
			`was Sup3r Se'cr\et, written 'Sup3r Se\'cr\\et'`,
			`was xxxxx, written 'xxxxx'`},
		{"a keyword/value password with spaces around =",
			"host=db password = " + dbPassword + " user=authly", "",
			"password = " + dbPassword,
			"password = xxxxx"},
		{"the Redis password",
			"", "redis://:" + dbPassword + "@redis:6379/0",
			"dial redis://:" + dbPassword + "@redis:6379/0",
			"dial redis://:xxxxx@redis:6379/0"},
		{"text without a password is unchanged",
			"postgres://authly:" + dbPassword + "@db/authly", "",
			"connection refused", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRedactor(vars(envDatabaseURL, tc.databaseURL, envRedisURL, tc.redisURL))
			if got := r.String(tc.text); got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestRedactorWithoutPasswordsChangesNothing(t *testing.T) {
	for _, getenv := range []func(string) string{
		vars(),
		vars(envDatabaseURL, "postgres://authly@db/authly"),
		vars(envDatabaseURL, "host=db user=authly"),
	} {
		r := NewRedactor(getenv)
		if r.Active() {
			t.Errorf("a Redactor without passwords is active")
		}
		err := errors.New("password authentication failed")
		if r.Error(err) != err || r.String("xxxx") != "xxxx" {
			t.Error("a Redactor without passwords changed the text")
		}
	}
}

func TestRedactorErrorDropsTheOriginal(t *testing.T) {
	r := Config{DatabaseURL: "postgres://authly:" + dbPassword + "@db/authly"}.Redactor()
	if !r.Active() {
		t.Fatal("the Redactor finds no password")
	}
	inner := errors.New("dial postgres://authly:" + dbPassword + "@db/authly")
	err := r.Error(&wrapped{inner})
	if err.Error() != "open: dial postgres://authly:xxxxx@db/authly" {
		t.Fatalf("Error() = %q", err)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), dbPassword) {
			t.Fatalf("the original error is reachable: %v", e)
		}
	}
	clean := errors.New("connection refused")
	if r.Error(clean) != clean || r.Error(nil) != nil {
		t.Fatal("an error without the password was replaced")
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "open: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }
