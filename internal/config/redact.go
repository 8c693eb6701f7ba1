package config

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// redactedPassword replaces a password wherever a Redactor finds one.
const redactedPassword = "xxxxx"

// Redactor hides the passwords of Authly's connection strings, DATABASE_URL and
// AUTHLY_REDIS_URL, in text Authly did not write itself: the errors of the libraries that
// parse and dial those strings, log values and panics. Authly's own messages never quote a
// connection string; a Redactor is the last line of defence behind them.
//
// A Redactor replaces every spelling of a password it can find, as written and decoded, with
// "xxxxx". On a malformed string it cannot know where the password ends, so it hides the
// widest reading as well as the narrowest; a very short password can therefore blot out
// more than itself, which is the price of never showing it.
type Redactor struct {
	replacer *strings.Replacer // nil when there is nothing to hide
}

// NewRedactor returns the Redactor for the connection strings getenv reads. It works before
// (and whether or not) the configuration loads, so it can guard the errors of Load's callers.
func NewRedactor(getenv func(string) string) Redactor {
	return newRedactor(getenv(envDatabaseURL), getenv(envRedisURL))
}

// Redactor returns the Redactor for the configuration's connection strings.
func (c Config) Redactor() Redactor { return newRedactor(c.DatabaseURL, c.RedisURL) }

func newRedactor(databaseURL, redisURL string) Redactor {
	secrets := append(databasePasswords(databaseURL), passwordsIn(redisURL)...)
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return s == "" })
	if len(secrets) == 0 {
		return Redactor{}
	}
	// strings.Replacer tries its patterns in argument order at each position: longest first,
	// so that a password is never half-replaced by a shorter reading of itself.
	slices.SortFunc(secrets, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	secrets = slices.Compact(secrets)
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, redactedPassword)
	}
	return Redactor{replacer: strings.NewReplacer(pairs...)}
}

// Active reports whether there is a password to hide.
func (r Redactor) Active() bool { return r.replacer != nil }

// String returns s with every password replaced by "xxxxx".
func (r Redactor) String(s string) string {
	if r.replacer == nil {
		return s
	}
	return r.replacer.Replace(s)
}

// Error returns err itself when its text holds no password. Otherwise it returns a new error
// carrying the redacted text and nothing else: the original error, which would still print
// the password, cannot be reached from it.
func (r Redactor) Error(err error) error {
	if err == nil || r.replacer == nil {
		return err
	}
	msg := err.Error()
	if redacted := r.replacer.Replace(msg); redacted != msg {
		return errors.New(redacted)
	}
	return err
}

// passwordParam finds password=… (and sslpassword=…), as a URL query parameter or a
// keyword/value pair, quoted or not, with the spaces libpq allows around "=". An unterminated
// quote runs to the end.
var passwordParam = regexp.MustCompile(`(?i)password\s*=\s*(?:'((?:[^'\\]|\\.)*)'?|([^\s']*))`)

// databasePasswords returns what passwordsIn finds, and the password pgx itself reads from
// connString, which may come from PGPASSWORD or the password file instead.
func databasePasswords(connString string) []string {
	if connString == "" {
		return nil // pgx would read the defaults of a local server, not Authly's database
	}
	found := passwordsIn(connString)
	if cfg, err := pgconn.ParseConfig(connString); err == nil && cfg.Password != "" {
		found = append(found, cfg.Password)
	}
	return found
}

// passwordsIn returns every string that may be a password in connString, a URL or keyword/value
// pairs, well formed or not, each as written and decoded.
func passwordsIn(connString string) []string {
	var found []string
	add := func(p string) {
		if p == "" {
			return
		}
		found = append(found, p)
		if u, err := url.PathUnescape(p); err == nil {
			found = append(found, u)
		}
		if u, err := url.QueryUnescape(p); err == nil {
			found = append(found, u)
		}
	}
	// The user information of a URL ends at the last "@" before the host, and a password may
	// hold an unescaped "@"; the password starts after the first ":".
	if _, rest, ok := strings.Cut(connString, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if _, password, ok := strings.Cut(rest[:at], ":"); ok {
				add(password)
				if first := strings.IndexByte(password, '@'); first >= 0 {
					add(password[:first])
				}
			}
		}
	}
	for _, m := range passwordParam.FindAllStringSubmatch(connString, -1) {
		quoted, plain := m[1], m[2]
		add(quoted)
		add(strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(quoted))
		add(plain)
		if amp := strings.IndexByte(plain, '&'); amp >= 0 {
			add(plain[:amp]) // a URL query parameter ends at "&"
		}
	}
	return found
}
