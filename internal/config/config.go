// Package config loads and validates Authly's configuration and resolves its secrets.
//
// Configuration comes from environment variables, read once at start through a getenv function
// so that tests never touch the process environment. The names inherited from the original API
// (JWT_SECRET_KEY, JWT_REFRESH_SECRET_KEY, JWT_ALGORITHM, ACCESS_TOKEN_EXPIRE_MINUTES,
// REFRESH_TOKEN_EXPIRE_DAYS, DATABASE_URL) are kept; everything else is AUTHLY_*. An empty
// variable counts as unset.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/ratelimit"
)

// Environment variable names.
const (
	envDatabaseURL        = "DATABASE_URL"
	envJWTSecret          = "JWT_SECRET_KEY"
	envJWTRefreshSecret   = "JWT_REFRESH_SECRET_KEY"
	envJWTAlgorithm       = "JWT_ALGORITHM"
	envAccessTokenMinutes = "ACCESS_TOKEN_EXPIRE_MINUTES"
	envRefreshTokenDays   = "REFRESH_TOKEN_EXPIRE_DAYS"
	envListenAddr         = "AUTHLY_LISTEN_ADDR"
	envDataDir            = "AUTHLY_DATA_DIR"
	envBcryptCost         = "AUTHLY_BCRYPT_COST"
	envIssuer             = "AUTHLY_ISSUER"
	envLogLevel           = "AUTHLY_LOG_LEVEL"
	envLogFormat          = "AUTHLY_LOG_FORMAT"
	envAdminUsername      = "AUTHLY_ADMIN_USERNAME"
	envAdminEmail         = "AUTHLY_ADMIN_EMAIL"
	envAdminPassword      = "AUTHLY_ADMIN_PASSWORD"
	envSecretsProvider    = "AUTHLY_SECRETS_PROVIDER"
	envSecretsFile        = "AUTHLY_SECRETS_FILE"
	envMaxSessions        = "AUTHLY_MAX_SESSIONS_PER_USER"
	envSessionIdle        = "AUTHLY_SESSION_IDLE_TIMEOUT"
	envSessionLifetime    = "AUTHLY_SESSION_MAX_LIFETIME"
	envCleanupInterval    = "AUTHLY_CLEANUP_INTERVAL"
	envDocsEnabled        = "AUTHLY_DOCS_ENABLED"
)

// Operations variables.
const (
	envMetricsAddr      = "AUTHLY_METRICS_ADDR"
	envShutdownTimeout  = "AUTHLY_SHUTDOWN_TIMEOUT"
	envDBAcquireTimeout = "AUTHLY_DB_ACQUIRE_TIMEOUT"
	envDBStatementTO    = "AUTHLY_DB_STATEMENT_TIMEOUT"
	// Abuse protection: read in protection.go.
	envRateLimitStore        = "AUTHLY_RATE_LIMIT_STORE"
	envRedisURL              = "AUTHLY_REDIS_URL"
	envRateLimitLogin        = "AUTHLY_RATE_LIMIT_LOGIN"
	envRateLimitIP           = "AUTHLY_RATE_LIMIT_IP"
	envRateLimitRegister     = "AUTHLY_RATE_LIMIT_REGISTER"
	envTrustedProxies        = "AUTHLY_TRUSTED_PROXIES"
	envLockoutThreshold      = "AUTHLY_LOCKOUT_THRESHOLD"
	envLockoutDuration       = "AUTHLY_LOCKOUT_DURATION"
	envLockoutMaxDuration    = "AUTHLY_LOCKOUT_MAX_DURATION"
	envLockoutResetAfter     = "AUTHLY_LOCKOUT_RESET_AFTER"
	envHashQueue             = "AUTHLY_HASH_QUEUE"
	envHashMaxWait           = "AUTHLY_HASH_MAX_WAIT"
	envRefusalHold           = "AUTHLY_REFUSAL_HOLD"
	envRefusalHoldConcurrent = "AUTHLY_REFUSAL_HOLD_CONCURRENT"
	envMaxBodyBytes          = "AUTHLY_MAX_BODY_BYTES"
	envCORSOrigins           = "AUTHLY_CORS_ALLOWED_ORIGINS"
)

// Bounds for AUTHLY_BCRYPT_COST. They equal bcrypt.MinCost and bcrypt.MaxCost from
// golang.org/x/crypto/bcrypt, repeated here so this package needs only the standard library.
const (
	minBcryptCost = 4
	maxBcryptCost = 31
)

// Config is Authly's validated configuration. Build it with Load.
//
// Config implements slog.LogValuer and fmt.Stringer, so logging or printing it never shows the
// JWT secrets, the admin password or the database password.
type Config struct {
	DatabaseURL      string        // DATABASE_URL: a postgres:// URL or key=value pairs; empty means the embedded default database
	JWTSecret        []byte        // JWT_SECRET_KEY, through the secret provider
	JWTRefreshSecret []byte        // JWT_REFRESH_SECRET_KEY, through the secret provider
	JWTAlgorithm     string        // JWT_ALGORITHM: ES256 (default), EdDSA, RS256 (signing keys from the key store), or HS256, HS384, HS512 (the JWT secrets)
	AccessTokenTTL   time.Duration // ACCESS_TOKEN_EXPIRE_MINUTES: whole minutes, 1..1440, default 30
	RefreshTokenTTL  time.Duration // REFRESH_TOKEN_EXPIRE_DAYS: whole days, 1..365, default 7
	ListenAddr       string        // AUTHLY_LISTEN_ADDR: host:port, default 127.0.0.1:8000
	DataDir          string        // AUTHLY_DATA_DIR: default ./.authly
	BcryptCost       int           // AUTHLY_BCRYPT_COST: 4..31, default 12
	Issuer           string        // AUTHLY_ISSUER: the JWT "iss" claim, default "authly"
	LogLevel         slog.Level    // AUTHLY_LOG_LEVEL: debug, info (default), warn or error
	LogFormat        string        // AUTHLY_LOG_FORMAT: json (default) or text

	// The first administrator, created at start when all three are set. Setting only some of
	// them is an error.
	AdminUsername string // AUTHLY_ADMIN_USERNAME
	AdminEmail    string // AUTHLY_ADMIN_EMAIL
	AdminPassword string // AUTHLY_ADMIN_PASSWORD

	SecretsProvider string // AUTHLY_SECRETS_PROVIDER: env (default) or file; "static" only through WithSecretProvider
	SecretsFile     string // AUTHLY_SECRETS_FILE: the JSON secrets file, required when SecretsProvider is file

	// Sessions and their cleanup. Durations are Go durations such as "90m" or "168h".
	MaxSessionsPerUser int           // AUTHLY_MAX_SESSIONS_PER_USER: 1..1000, default 10
	SessionIdleTimeout time.Duration // AUTHLY_SESSION_IDLE_TIMEOUT: 1m..8760h, default 168h (7 days)
	SessionMaxLifetime time.Duration // AUTHLY_SESSION_MAX_LIFETIME: 1m..87600h, default 720h (30 days)
	CleanupInterval    time.Duration // AUTHLY_CLEANUP_INTERVAL: 1m..24h, or 0 for no background cleanup; default 1h

	// Operations.
	MetricsAddr        string        // AUTHLY_METRICS_ADDR: host:port of the Prometheus listener; empty (default) means off
	ShutdownTimeout    time.Duration // AUTHLY_SHUTDOWN_TIMEOUT: 1s..10m, default 30s, for in-flight requests to finish
	DBAcquireTimeout   time.Duration // AUTHLY_DB_ACQUIRE_TIMEOUT: 10ms..1m, default 1s, to wait for a pooled connection
	DBStatementTimeout time.Duration // AUTHLY_DB_STATEMENT_TIMEOUT: 100ms..10m, default 5s, PostgreSQL's statement_timeout
	DocsEnabled        bool          // AUTHLY_DOCS_ENABLED: serve GET /docs and GET /openapi.yaml; default true
	// Abuse protection (docs/security.md). Limits are "N/period" such as "5/1m"; "0" is off.
	RateLimitStore        string          // AUTHLY_RATE_LIMIT_STORE: memory (default, one instance) or redis (shared)
	RedisURL              string          // AUTHLY_REDIS_URL: redis:// or rediss:// URL; required with the redis store, refused without it
	RateLimitLogin        ratelimit.Limit // AUTHLY_RATE_LIMIT_LOGIN: per login name on the password grant, default 5/1m
	RateLimitIP           ratelimit.Limit // AUTHLY_RATE_LIMIT_IP: per client IP on /api/v1/auth/* and registration, default 60/1m
	RateLimitRegister     ratelimit.Limit // AUTHLY_RATE_LIMIT_REGISTER: per client IP on registration, default 10/1h
	TrustedProxies        []netip.Prefix  // AUTHLY_TRUSTED_PROXIES: CIDRs or addresses whose X-Forwarded-For is believed; default none
	LockoutThreshold      int             // AUTHLY_LOCKOUT_THRESHOLD: consecutive failures before a lock, 0..1000 (0 is off), default 5
	LockoutDuration       time.Duration   // AUTHLY_LOCKOUT_DURATION: the first lock, 1s..24h, default 1m
	LockoutMaxDuration    time.Duration   // AUTHLY_LOCKOUT_MAX_DURATION: the longest lock, at least LockoutDuration, up to 720h; default 1h
	LockoutResetAfter     time.Duration   // AUTHLY_LOCKOUT_RESET_AFTER: failures older than this lapse; at least LockoutMaxDuration, up to 8760h; default 24h
	HashQueue             int             // AUTHLY_HASH_QUEUE: callers that may wait for a bcrypt worker, 0..100000, default 64
	HashMaxWait           time.Duration   // AUTHLY_HASH_MAX_WAIT: the longest wait for a bcrypt worker, 1ms..1m, default 1.5s; a longer estimated wait is refused at once
	RefusalHold           time.Duration   // AUTHLY_REFUSAL_HOLD: the longest a refused request (503 server_busy, 429) is held before its answer, 1ms..10s or 0 for off, default 1s
	RefusalHoldConcurrent int             // AUTHLY_REFUSAL_HOLD_CONCURRENT: refused requests held at once, beyond which they are answered at once, 0..100000 (0 is off), default 256
	MaxBodyBytes          int64           // AUTHLY_MAX_BODY_BYTES: request body cap, 1024..16777216, default 65536
	CORSAllowedOrigins    []string        // AUTHLY_CORS_ALLOWED_ORIGINS: exact origins allowed by CORS; default none (no CORS headers)
	// Signing keys (keys.go): the key store, its KEK, rotation, and the PKCS #11 token.
	Keys KeyConfig

	Mail Mail // AUTHLY_SMTP_* and AUTHLY_MAIL_*: read in mail.go

	// Account flows and password hashing: AUTHLY_PUBLIC_URL, AUTHLY_REQUIRE_VERIFICATION,
	// AUTHLY_RATE_LIMIT_MAIL_*, AUTHLY_PASSWORD_HASH and AUTHLY_ARGON2_*; read in account.go.
	Account Account
}

// Embedded reports whether Authly uses its embedded default database, which it does when
// DATABASE_URL is unset.
func (c Config) Embedded() bool { return c.DatabaseURL == "" }

// Option changes how Load works.
type Option func(*loadOptions)

type loadOptions struct {
	secretProvider SecretProvider
}

// WithSecretProvider makes Load take the JWT secrets from p, ignoring AUTHLY_SECRETS_PROVIDER
// and AUTHLY_SECRETS_FILE. Programs that embed Authly and tests use it, typically with
// StaticSecrets.
func WithSecretProvider(p SecretProvider) Option {
	return func(o *loadOptions) { o.secretProvider = p }
}

// Load reads every variable through getenv (usually os.Getenv), resolves the JWT secrets and
// validates the result. It reports every problem at once, joined with errors.Join, one per
// line; each line starts with the variable to fix. Messages never contain a secret.
//
// With DATABASE_URL unset (embedded mode), both JWT secrets may be absent: Load then leaves
// them nil and the caller is expected to use LoadOrCreateDevSecrets. Secrets that are present
// are always validated.
func Load(ctx context.Context, getenv func(string) string, opts ...Option) (Config, error) {
	var o loadOptions
	for _, opt := range opts {
		opt(&o)
	}
	e := &env{getenv: getenv}

	c := Config{
		DatabaseURL:     e.databaseURL(envDatabaseURL),
		JWTAlgorithm:    e.oneOf(envJWTAlgorithm, "ES256", jwtAlgorithms...),
		AccessTokenTTL:  time.Duration(e.intRange(envAccessTokenMinutes, 30, 1, 1440, "minutes")) * time.Minute,
		RefreshTokenTTL: time.Duration(e.intRange(envRefreshTokenDays, 7, 1, 365, "days")) * 24 * time.Hour,
		ListenAddr:      e.hostPort(envListenAddr, "127.0.0.1:8000"),
		DataDir:         e.string(envDataDir, "./.authly"),
		BcryptCost:      e.intRange(envBcryptCost, 12, minBcryptCost, maxBcryptCost, ""),
		Issuer:          e.string(envIssuer, "authly"),
		LogLevel:        e.logLevel(envLogLevel),
		LogFormat:       e.oneOf(envLogFormat, "json", "json", "text"),
		AdminUsername:   e.string(envAdminUsername, ""),
		AdminEmail:      e.string(envAdminEmail, ""),
		// Passwords are taken byte for byte: trimming would silently change them.
		AdminPassword: e.raw(envAdminPassword),
	}
	e.allOrNone(envAdminUsername, envAdminEmail, envAdminPassword)
	c.MaxSessionsPerUser = e.intRange(envMaxSessions, 10, 1, 1000, "sessions")
	c.SessionIdleTimeout = e.duration(envSessionIdle, 7*24*time.Hour, time.Minute, 365*24*time.Hour, false)
	c.SessionMaxLifetime = e.duration(envSessionLifetime, 30*24*time.Hour, time.Minute, 10*365*24*time.Hour, false)
	c.CleanupInterval = e.duration(envCleanupInterval, time.Hour, time.Minute, 24*time.Hour, true)
	c.MetricsAddr = e.hostPort(envMetricsAddr, "")
	c.ShutdownTimeout = e.duration(envShutdownTimeout, 30*time.Second, time.Second, 10*time.Minute, false)
	c.DBAcquireTimeout = e.duration(envDBAcquireTimeout, time.Second, 10*time.Millisecond, time.Minute, false)
	c.DBStatementTimeout = e.duration(envDBStatementTO, 5*time.Second, 100*time.Millisecond, 10*time.Minute, false)
	c.DocsEnabled = e.boolean(envDocsEnabled, true)
	e.protection(&c)
	e.keys(&c)

	var secrets Secrets
	provider := e.secretProvider(&c, o.secretProvider)
	if provider != nil {
		s, err := provider.Secrets(ctx)
		switch {
		case err != nil && c.SecretsProvider == "file":
			e.errs = append(e.errs, fmt.Errorf("%s: %w", envSecretsFile, err))
		case err != nil:
			e.errs = append(e.errs, fmt.Errorf("%s secrets provider: %w", c.SecretsProvider, err))
		default:
			e.errs = append(e.errs, e.checkJWTSecrets(c, s)...)
			c.JWTSecret, c.JWTRefreshSecret = s.Access, s.Refresh
			secrets = s
			e.keySecrets(&c, s)
		}
	}
	e.mail(&c, secrets)
	e.account(&c)

	if err := errors.Join(e.errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// secretProvider picks the provider named by AUTHLY_SECRETS_PROVIDER unless override is set,
// and records the choice in c. It returns nil when the choice is invalid; the problem is then
// already recorded.
func (e *env) secretProvider(c *Config, override SecretProvider) SecretProvider {
	if override != nil {
		c.SecretsProvider = providerName(override)
		if f, ok := override.(FileSecrets); ok {
			c.SecretsFile = f.Path
		}
		return override
	}

	c.SecretsProvider = e.string(envSecretsProvider, "env")
	c.SecretsFile = e.string(envSecretsFile, "")
	switch strings.ToLower(c.SecretsProvider) {
	case "env":
		c.SecretsProvider = "env"
		if c.SecretsFile != "" {
			// Without this, a forgotten AUTHLY_SECRETS_PROVIDER=file in embedded mode would
			// silently fall back to generated development secrets.
			e.fail(envSecretsFile, "is only read when %s=file (it is %q)", envSecretsProvider, c.SecretsProvider)
			return nil
		}
		return EnvSecrets{Getenv: e.getenv}
	case "file":
		c.SecretsProvider = "file"
		if c.SecretsFile == "" {
			e.fail(envSecretsFile, "must be set when %s=file", envSecretsProvider)
			return nil
		}
		return FileSecrets{Path: c.SecretsFile}
	case "static":
		e.fail(envSecretsProvider, `"static" is only available to programs that embed Authly; use env or file`)
		return nil
	case "":
		return nil // blank; already reported
	default:
		e.fail(envSecretsProvider, "must be env or file (got %q)", c.SecretsProvider)
		return nil
	}
}

func providerName(p SecretProvider) string {
	switch p.(type) {
	case EnvSecrets, *EnvSecrets:
		return "env"
	case FileSecrets:
		return "file"
	case StaticSecrets, *StaticSecrets:
		return "static"
	default:
		return "custom"
	}
}

// checkLoadedSecrets applies the secret rules to what a provider returned. file, when set, is
// the secrets file the values came from, so that messages point at it.
func checkLoadedSecrets(s Secrets, embedded bool, file string) []error {
	where := ""
	if file != "" {
		where = " in " + file
	}
	missing := func(string) string { return "must be set when " + envDatabaseURL + " is set" }
	if embedded {
		if s.Access == nil && s.Refresh == nil {
			return nil // the caller generates development secrets
		}
		missing = func(name string) string {
			other := envJWTSecret
			if name == envJWTSecret {
				other = envJWTRefreshSecret
			}
			return "must be set when " + other + " is set (set both, or neither to use generated development secrets)"
		}
	}
	return secretProblems(s, where, missing)
}

// env reads variables and collects every problem, so that Load can report them all at once.
// To add a setting, read it in Load with the helper matching its type.
type env struct {
	getenv func(string) string
	errs   []error
}

func (e *env) fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// databaseURL returns the variable, a PostgreSQL connection string that pgx can parse: a
// postgres:// or postgresql:// URL, or keyword/value pairs such as "host=db user=authly
// dbname=authly". The pool, and its pool_* settings, are validated with it. Messages never quote
// the string, and pgx's reason is stripped of the password: pgx masks passwords in its own
// parse errors only as far as a malformed string lets it find them.
func (e *env) databaseURL(name string) string {
	v := e.raw(name) // a password may begin or end with a space
	switch {
	case v == "":
		return ""
	case strings.TrimSpace(v) == "":
		e.fail(name, "must not be blank")
		return v
	}
	if scheme, ok := urlScheme(v); ok && scheme != "postgres" && scheme != "postgresql" {
		e.fail(name, "%s (got a %q URL)", databaseURLForms, scheme)
		return v
	}
	if _, err := pgxpool.ParseConfig(v); err != nil {
		e.fail(name, "%s (%s)", databaseURLForms, parseConfigReason(v, err))
	}
	return v
}

const databaseURLForms = "must be a postgres:// or postgresql:// URL or key=value pairs, such as " +
	"postgres://authly:PASSWORD@db:5432/authly or host=db user=authly password=PASSWORD dbname=authly"

// urlScheme returns the scheme of s when s starts like a URL, "scheme://".
func urlScheme(s string) (string, bool) {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return "", false
	}
	// RFC 3986: a letter, then letters, digits, "+", "-" and ".".
	for i, c := range scheme {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		other := '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
		if !letter && (i == 0 || !other) {
			return "", false
		}
	}
	return scheme, true
}

// parseConfigReason is why pgx refused connString, without connString: pgx writes
// "cannot parse `<the string, password masked>`: <reason>".
func parseConfigReason(connString string, err error) string {
	reason := err.Error()
	i := strings.LastIndex(reason, "`: ")
	if i < 0 {
		return "pgx cannot parse it"
	}
	return newRedactor(connString, "").String(reason[i+len("`: "):])
}

// raw returns the variable exactly as set. Use it for secrets and passwords.
func (e *env) raw(name string) string { return e.getenv(name) }

// string returns the variable without surrounding spaces, or def when it is unset. A variable
// made only of spaces is an error rather than silently the default.
func (e *env) string(name, def string) string {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	v = strings.TrimSpace(v)
	if v == "" {
		e.fail(name, "must not be blank")
	}
	return v
}

// oneOf returns the allowed value matching the variable, ignoring case, or def when it is
// unset.
func (e *env) oneOf(name, def string, allowed ...string) string {
	v := e.string(name, def)
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	if v != "" {
		e.fail(name, "must be one of %s (got %q)", strings.Join(allowed, ", "), v)
	}
	return def
}

// intRange returns the variable as an integer within [lo, hi], or def when it is unset. unit,
// if not empty, names what the number counts in messages.
func (e *env) intRange(name string, def, lo, hi int, unit string) int {
	v := e.string(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		if unit != "" {
			unit = " " + unit
		}
		e.fail(name, "must be a whole number from %d to %d%s (got %q)", lo, hi, unit, v)
		return def
	}
	return n
}

// duration returns the variable as a Go duration ("90m", "168h") within [lo, hi], or def
// when it is unset. With offOK, "0" is accepted too and turns the feature off.
func (e *env) duration(name string, def, lo, hi time.Duration, offOK bool) time.Duration {
	v := e.string(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err == nil && (d >= lo && d <= hi || offOK && d == 0) {
		return d
	}
	off := ""
	if offOK {
		off = ", or 0 for off"
	}
	e.fail(name, "must be a duration from %s to %s%s, such as %s (got %q)", shortDuration(lo), shortDuration(hi), off, shortDuration(def), v)
	return def
}

// shortDuration writes a duration without trailing zero units: "168h", not "168h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// hostPort returns the variable as a host:port listen address, or def when it is unset. The
// host may be empty to listen on every interface, and port 0 picks a free port.
func (e *env) hostPort(name, def string) string {
	v := e.string(name, def)
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 0 || n > 65535 {
			err = errors.New("bad port")
		}
	}
	if err != nil && v != "" {
		e.fail(name, "must be host:port with a port from 0 to 65535, such as 127.0.0.1:8000 (got %q)", v)
	}
	return v
}

// boolean returns the variable as a boolean (true, false, 1, 0 and the other spellings of
// strconv.ParseBool), or def when it is unset.
func (e *env) boolean(name string, def bool) bool {
	v := e.string(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "must be true or false (got %q)", v)
		return def
	}
	return b
}

func (e *env) logLevel(name string) slog.Level {
	levels := map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
	}
	return levels[e.oneOf(name, "info", "debug", "info", "warn", "error")]
}

// allOrNone reports each unset variable of names when at least one of them is set.
func (e *env) allOrNone(names ...string) {
	var set, unset []string
	for _, n := range names {
		if e.getenv(n) == "" {
			unset = append(unset, n)
		} else {
			set = append(set, n)
		}
	}
	if len(set) == 0 {
		return
	}
	verb := "is"
	if len(set) > 1 {
		verb = "are"
	}
	for _, n := range unset {
		e.fail(n, "must be set when %s %s set (set all of %s, or none)",
			strings.Join(set, " and "), verb, strings.Join(names, ", "))
	}
}

// LogValue renders the configuration for logs with the JWT secrets and the admin password
// replaced by a marker and the database password masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", redactDatabaseURL(c.DatabaseURL)),
		slog.Bool("embedded", c.Embedded()),
		slog.String("jwt_secret", redacted(len(c.JWTSecret) > 0)),
		slog.String("jwt_refresh_secret", redacted(len(c.JWTRefreshSecret) > 0)),
		slog.String("jwt_algorithm", c.JWTAlgorithm),
		slog.Duration("access_token_ttl", c.AccessTokenTTL),
		slog.Duration("refresh_token_ttl", c.RefreshTokenTTL),
		slog.String("listen_addr", c.ListenAddr),
		slog.String("data_dir", c.DataDir),
		slog.Int("bcrypt_cost", c.BcryptCost),
		slog.String("issuer", c.Issuer),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.String("admin_username", c.AdminUsername),
		slog.String("admin_email", c.AdminEmail),
		slog.String("admin_password", redacted(c.AdminPassword != "")),
		slog.String("secrets_provider", c.SecretsProvider),
		slog.String("secrets_file", c.SecretsFile),
		slog.Int("max_sessions_per_user", c.MaxSessionsPerUser),
		slog.Duration("session_idle_timeout", c.SessionIdleTimeout),
		slog.Duration("session_max_lifetime", c.SessionMaxLifetime),
		slog.Duration("cleanup_interval", c.CleanupInterval),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("db_acquire_timeout", c.DBAcquireTimeout),
		slog.Duration("db_statement_timeout", c.DBStatementTimeout),
		slog.Bool("docs_enabled", c.DocsEnabled),
		slog.String("rate_limit_store", c.RateLimitStore),
		slog.String("redis_url", redactRedisURL(c.RedisURL)),
		slog.String("rate_limit_login", c.RateLimitLogin.String()),
		slog.String("rate_limit_ip", c.RateLimitIP.String()),
		slog.String("rate_limit_register", c.RateLimitRegister.String()),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.Int("lockout_threshold", c.LockoutThreshold),
		slog.Duration("lockout_duration", c.LockoutDuration),
		slog.Duration("lockout_max_duration", c.LockoutMaxDuration),
		slog.Duration("lockout_reset_after", c.LockoutResetAfter),
		slog.Int("hash_queue", c.HashQueue),
		slog.Duration("hash_max_wait", c.HashMaxWait),
		slog.Duration("refusal_hold", c.RefusalHold),
		slog.Int("refusal_hold_concurrent", c.RefusalHoldConcurrent),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.Any("cors_allowed_origins", c.CORSAllowedOrigins),
		slog.Any("keys", c.Keys),
		slog.Attr{Key: "mail", Value: c.Mail.LogValue()},
		slog.Attr{Key: "account", Value: c.Account.LogValue()},
	)
}

// String renders the configuration like LogValue, so that fmt's %v and %+v are safe too.
func (c Config) String() string { return c.LogValue().String() }

// GoString renders the configuration like LogValue, so that fmt's %#v is safe too.
func (c Config) GoString() string { return "config.Config" + c.String() }

func redacted(set bool) string {
	if set {
		return "[redacted]"
	}
	return ""
}

// redactDatabaseURL masks the password of a PostgreSQL connection string, in the URL form
// (in the user info or a password query parameter) or the keyword/value form.
func redactDatabaseURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Opaque != "":
		return "[redacted]" // unparsable, so the password cannot be located
	case u.Scheme == "":
		// The keyword/value form ("host=db password=…") allows quoting that is not worth
		// parsing here, so anything that might hold a password is hidden whole.
		if strings.Contains(strings.ToLower(raw), "password") {
			return "[redacted]"
		}
		return raw
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
