package config

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/ratelimit"
)

const (
	accessSecret  = "access-secret-0123456789abcdefghij" // 34 bytes
	refreshSecret = "refresh-secret-0123456789abcdefghi" // 34 bytes
	shortSecret   = "too-short!"                         // 10 bytes
	adminPassword = "admin-pass-Correct-Horse-Battery"   // must never be logged
	dbPassword    = "db-pass-s3cret"                     // must never be logged
	databaseURL   = "postgres://authly:" + dbPassword + "@db:5432/authly"
)

// vars builds a getenv function from alternating names and values.
func vars(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) string { return m[name] }
}

// withSecrets are the variables of a valid non-embedded setup that signs with the JWT
// secrets (HS256).
func withSecrets(kv ...string) func(string) string {
	return vars(append([]string{
		envDatabaseURL, databaseURL,
		envJWTAlgorithm, "HS256",
		envJWTSecret, accessSecret,
		envJWTRefreshSecret, refreshSecret,
	}, kv...)...)
}

func defaults() Config {
	return Config{
		JWTAlgorithm:    "ES256",
		AccessTokenTTL:  30 * time.Minute,
		RefreshTokenTTL: 7 * 24 * time.Hour,
		ListenAddr:      "127.0.0.1:8000",
		DataDir:         "./.authly",
		BcryptCost:      12,
		Issuer:          "authly",
		LogLevel:        slog.LevelInfo,
		LogFormat:       "json",
		SecretsProvider: "env",

		MaxSessionsPerUser: 10,
		SessionIdleTimeout: 7 * 24 * time.Hour,
		SessionMaxLifetime: 30 * 24 * time.Hour,
		CleanupInterval:    time.Hour,
		ShutdownTimeout:    30 * time.Second,
		DBAcquireTimeout:   time.Second,
		DBStatementTimeout: 5 * time.Second,

		DocsEnabled: true,

		RateLimitStore:        "memory",
		RateLimitLogin:        ratelimit.Limit{N: 5, Period: time.Minute},
		RateLimitIP:           ratelimit.Limit{N: 60, Period: time.Minute},
		RateLimitRegister:     ratelimit.Limit{N: 10, Period: time.Hour},
		LockoutThreshold:      5,
		LockoutDuration:       time.Minute,
		LockoutMaxDuration:    time.Hour,
		LockoutResetAfter:     24 * time.Hour,
		HashQueue:             64,
		HashMaxWait:           1500 * time.Millisecond,
		RefusalHold:           time.Second,
		RefusalHoldConcurrent: 256,
		MaxBodyBytes:          64 << 10,

		Keys:    KeyConfig{RotationInterval: 30 * 24 * time.Hour, JWKSMaxAge: 5 * time.Minute, SigningBackend: "software", LegacyAlgorithm: "HS256"},
		Account: defaultAccount(),
	}
}

// problems splits a joined error into its messages.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []string{err.Error()}
	}
	var msgs []string
	for _, e := range joined.Unwrap() {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

// assertProblems checks that err holds exactly one problem per entry of want, each starting
// with that entry, and that it never quotes a secret.
func assertProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	got := problems(t, err)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, got[i], w)
		}
	}
	if err != nil {
		for _, secret := range []string{accessSecret, refreshSecret, shortSecret, adminPassword, dbPassword} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error quotes a secret: %v", err)
			}
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	withDatabase := defaults()
	withDatabase.DatabaseURL = databaseURL
	withDatabase.JWTAlgorithm = "HS256"
	withDatabase.Keys.LegacyAlgorithm = ""
	withDatabase.JWTSecret = []byte(accessSecret)
	withDatabase.JWTRefreshSecret = []byte(refreshSecret)

	tests := []struct {
		name   string
		getenv func(string) string
		want   Config
	}{
		{"an empty environment gives the embedded defaults without secrets", vars(), defaults()},
		{"a database with its secrets keeps every other default", withSecrets(), withDatabase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(t.Context(), tt.getenv)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load =\n%#v\nwant\n%#v", got, tt.want)
			}
			if got.Embedded() != (tt.want.DatabaseURL == "") {
				t.Errorf("Embedded() = %v with DATABASE_URL %q", got.Embedded(), got.DatabaseURL)
			}
		})
	}
}

func TestLoadParsesEveryVariable(t *testing.T) {
	got, err := Load(t.Context(), withSecrets(
		envJWTAlgorithm, "HS512",
		envAccessTokenMinutes, "15",
		envRefreshTokenDays, "30",
		envListenAddr, "0.0.0.0:9000",
		envDataDir, "/var/lib/authly",
		envBcryptCost, "10",
		envIssuer, "https://auth.example.com",
		envLogLevel, "debug",
		envLogFormat, "text",
		envAdminUsername, "root",
		envAdminEmail, "root@example.com",
		envAdminPassword, adminPassword,
		envSecretsProvider, "env",
		envMaxSessions, "3",
		envSessionIdle, "36h",
		envSessionLifetime, "2160h",
		envCleanupInterval, "15m",
		envMetricsAddr, "127.0.0.1:9090",
		envShutdownTimeout, "10s",
		envDBAcquireTimeout, "250ms",
		envDBStatementTO, "2s",
		envDocsEnabled, "false",
	))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		DatabaseURL:      databaseURL,
		JWTSecret:        []byte(accessSecret),
		JWTRefreshSecret: []byte(refreshSecret),
		JWTAlgorithm:     "HS512",
		AccessTokenTTL:   15 * time.Minute,
		RefreshTokenTTL:  30 * 24 * time.Hour,
		ListenAddr:       "0.0.0.0:9000",
		DataDir:          "/var/lib/authly",
		BcryptCost:       10,
		Issuer:           "https://auth.example.com",
		LogLevel:         slog.LevelDebug,
		LogFormat:        "text",
		AdminUsername:    "root",
		AdminEmail:       "root@example.com",
		AdminPassword:    adminPassword,
		SecretsProvider:  "env",

		MaxSessionsPerUser: 3,
		SessionIdleTimeout: 36 * time.Hour,
		SessionMaxLifetime: 90 * 24 * time.Hour,
		CleanupInterval:    15 * time.Minute,
		MetricsAddr:        "127.0.0.1:9090",
		ShutdownTimeout:    10 * time.Second,
		DBAcquireTimeout:   250 * time.Millisecond,
		DBStatementTimeout: 2 * time.Second,

		DocsEnabled: false,

		RateLimitStore:        "memory",
		RateLimitLogin:        ratelimit.Limit{N: 5, Period: time.Minute},
		RateLimitIP:           ratelimit.Limit{N: 60, Period: time.Minute},
		RateLimitRegister:     ratelimit.Limit{N: 10, Period: time.Hour},
		LockoutThreshold:      5,
		LockoutDuration:       time.Minute,
		LockoutMaxDuration:    time.Hour,
		LockoutResetAfter:     24 * time.Hour,
		HashQueue:             64,
		HashMaxWait:           1500 * time.Millisecond,
		RefusalHold:           time.Second,
		RefusalHoldConcurrent: 256,
		MaxBodyBytes:          64 << 10,

		Keys:    KeyConfig{RotationInterval: 30 * 24 * time.Hour, JWKSMaxAge: 5 * time.Minute, SigningBackend: "software"},
		Account: defaultAccount(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%#v\nwant\n%#v", got, want)
	}
}

func TestLoadAcceptsEdgeValues(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value string
		field func(Config) any
		want  any
	}{
		{"HS384 is an accepted algorithm", envJWTAlgorithm, "HS384", func(c Config) any { return c.JWTAlgorithm }, "HS384"},
		{"an algorithm in lower case is normalised", envJWTAlgorithm, "hs256", func(c Config) any { return c.JWTAlgorithm }, "HS256"},
		{"one minute is the shortest access token lifetime", envAccessTokenMinutes, "1", func(c Config) any { return c.AccessTokenTTL }, time.Minute},
		{"a day is the longest access token lifetime", envAccessTokenMinutes, "1440", func(c Config) any { return c.AccessTokenTTL }, 24 * time.Hour},
		{"a year is the longest refresh token lifetime", envRefreshTokenDays, "365", func(c Config) any { return c.RefreshTokenTTL }, 365 * 24 * time.Hour},
		{"bcrypt cost 4 is the cheapest allowed", envBcryptCost, "4", func(c Config) any { return c.BcryptCost }, 4},
		{"bcrypt cost 31 is the dearest allowed", envBcryptCost, "31", func(c Config) any { return c.BcryptCost }, 31},
		{"spaces around a number are ignored", envBcryptCost, " 13 ", func(c Config) any { return c.BcryptCost }, 13},
		{"port 0 asks for any free port", envListenAddr, "127.0.0.1:0", func(c Config) any { return c.ListenAddr }, "127.0.0.1:0"},
		{"an empty host listens on every interface", envListenAddr, ":8080", func(c Config) any { return c.ListenAddr }, ":8080"},
		{"an IPv6 host is accepted", envListenAddr, "[::1]:8000", func(c Config) any { return c.ListenAddr }, "[::1]:8000"},
		{"warn is a log level", envLogLevel, "warn", func(c Config) any { return c.LogLevel }, slog.LevelWarn},
		{"error is a log level", envLogLevel, "ERROR", func(c Config) any { return c.LogLevel }, slog.LevelError},
		{"one session per user is allowed", envMaxSessions, "1", func(c Config) any { return c.MaxSessionsPerUser }, 1},
		{"an idle timeout may use minutes", envSessionIdle, "90m", func(c Config) any { return c.SessionIdleTimeout }, 90 * time.Minute},
		{"ten years is the longest session lifetime", envSessionLifetime, "87600h", func(c Config) any { return c.SessionMaxLifetime }, 87600 * time.Hour},
		{"a cleanup interval of 0 turns the background cleanup off", envCleanupInterval, "0", func(c Config) any { return c.CleanupInterval }, time.Duration(0)},
		{"a minute is the shortest cleanup interval", envCleanupInterval, "1m", func(c Config) any { return c.CleanupInterval }, time.Minute},
		{"docs can be turned off with 0", envDocsEnabled, "0", func(c Config) any { return c.DocsEnabled }, false},
		{"docs can be turned on explicitly", envDocsEnabled, "TRUE", func(c Config) any { return c.DocsEnabled }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(t.Context(), withSecrets(tt.key, tt.value))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.field(c); got != tt.want {
				t.Errorf("%s=%q gives %v, want %v", tt.key, tt.value, got, tt.want)
			}
		})
	}
}

func TestLoadRejectsInvalidValues(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value string
		want  string
	}{
		{"an unsigned algorithm is refused", envJWTAlgorithm, "none", `JWT_ALGORITHM: must be one of HS256, HS384, HS512, ES256, EdDSA, RS256 (got "none")`},
		{"an unsupported asymmetric algorithm is refused", envJWTAlgorithm, "ES384", "JWT_ALGORITHM: must be one of HS256, HS384, HS512, ES256, EdDSA, RS256"},
		{"a non-numeric lifetime names the range", envAccessTokenMinutes, "thirty", `ACCESS_TOKEN_EXPIRE_MINUTES: must be a whole number from 1 to 1440 minutes (got "thirty")`},
		{"a fractional lifetime is refused", envAccessTokenMinutes, "1.5", "ACCESS_TOKEN_EXPIRE_MINUTES: must be a whole number from 1 to 1440 minutes"},
		{"a zero lifetime is refused", envAccessTokenMinutes, "0", "ACCESS_TOKEN_EXPIRE_MINUTES: must be a whole number from 1 to 1440 minutes"},
		{"an access token longer than a day is refused", envAccessTokenMinutes, "1441", "ACCESS_TOKEN_EXPIRE_MINUTES: must be a whole number from 1 to 1440 minutes"},
		{"a refresh token longer than a year is refused", envRefreshTokenDays, "366", "REFRESH_TOKEN_EXPIRE_DAYS: must be a whole number from 1 to 365 days"},
		{"a negative refresh lifetime is refused", envRefreshTokenDays, "-1", "REFRESH_TOKEN_EXPIRE_DAYS: must be a whole number from 1 to 365 days"},
		{"a listen address without a port is refused", envListenAddr, "localhost", `AUTHLY_LISTEN_ADDR: must be host:port with a port from 0 to 65535, such as 127.0.0.1:8000 (got "localhost")`},
		{"a named port is refused", envListenAddr, "localhost:http", "AUTHLY_LISTEN_ADDR: must be host:port"},
		{"a port above 65535 is refused", envListenAddr, "localhost:70000", "AUTHLY_LISTEN_ADDR: must be host:port"},
		{"a bcrypt cost below 4 is refused", envBcryptCost, "3", `AUTHLY_BCRYPT_COST: must be a whole number from 4 to 31 (got "3")`},
		{"a bcrypt cost above 31 is refused", envBcryptCost, "32", "AUTHLY_BCRYPT_COST: must be a whole number from 4 to 31"},
		{"a blank issuer is refused", envIssuer, "   ", "AUTHLY_ISSUER: must not be blank"},
		{"a blank data directory is refused", envDataDir, " ", "AUTHLY_DATA_DIR: must not be blank"},
		{"an unknown log level is refused", envLogLevel, "verbose", `AUTHLY_LOG_LEVEL: must be one of debug, info, warn, error (got "verbose")`},
		{"an unknown log format is refused", envLogFormat, "xml", `AUTHLY_LOG_FORMAT: must be one of json, text (got "xml")`},
		{"an unknown secrets provider is refused", envSecretsProvider, "vault", `AUTHLY_SECRETS_PROVIDER: must be env or file (got "vault")`},
		{"the static provider cannot be chosen from the environment", envSecretsProvider, "static", `AUTHLY_SECRETS_PROVIDER: "static" is only available to programs that embed Authly`},
		{"a session cap of 0 is refused", envMaxSessions, "0", `AUTHLY_MAX_SESSIONS_PER_USER: must be a whole number from 1 to 1000 sessions (got "0")`},
		{"an idle timeout in days is refused, naming the form", envSessionIdle, "7d", `AUTHLY_SESSION_IDLE_TIMEOUT: must be a duration from 1m to 8760h, such as 168h (got "7d")`},
		{"an idle timeout without a unit is refused", envSessionIdle, "3600", "AUTHLY_SESSION_IDLE_TIMEOUT: must be a duration from 1m to 8760h"},
		{"a zero idle timeout is refused", envSessionIdle, "0", "AUTHLY_SESSION_IDLE_TIMEOUT: must be a duration from 1m to 8760h"},
		{"a session lifetime under a minute is refused", envSessionLifetime, "30s", `AUTHLY_SESSION_MAX_LIFETIME: must be a duration from 1m to 87600h, such as 720h (got "30s")`},
		{"a negative cleanup interval is refused", envCleanupInterval, "-1h", `AUTHLY_CLEANUP_INTERVAL: must be a duration from 1m to 24h, or 0 for off, such as 1h (got "-1h")`},
		{"a cleanup interval over a day is refused", envCleanupInterval, "25h", "AUTHLY_CLEANUP_INTERVAL: must be a duration from 1m to 24h, or 0 for off"},
		{"a metrics address without a port is refused", envMetricsAddr, "localhost", "AUTHLY_METRICS_ADDR: must be host:port"},
		{"a zero shutdown timeout is refused", envShutdownTimeout, "0", "AUTHLY_SHUTDOWN_TIMEOUT: must be a duration from 1s to 10m"},
		{"an acquire timeout under 10ms is refused", envDBAcquireTimeout, "1ms", "AUTHLY_DB_ACQUIRE_TIMEOUT: must be a duration from 10ms to 1m"},
		{"a statement timeout that is not a duration is refused", envDBStatementTO, "five", "AUTHLY_DB_STATEMENT_TIMEOUT: must be a duration"},
		{"docs enabled must be a boolean", envDocsEnabled, "sometimes", `AUTHLY_DOCS_ENABLED: must be true or false (got "sometimes")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(t.Context(), withSecrets(tt.key, tt.value))
			assertProblems(t, err, tt.want)
		})
	}
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Load(t.Context(), vars(
		envDatabaseURL, databaseURL,
		envJWTSecret, shortSecret,
		envJWTAlgorithm, "none",
		envAccessTokenMinutes, "0",
		envRefreshTokenDays, "many",
		envListenAddr, "nowhere",
		envDataDir, " ",
		envBcryptCost, "99",
		envIssuer, " ",
		envLogLevel, "loud",
		envLogFormat, "yaml",
		envAdminUsername, "root",
	))
	// Each problem starts with the variable to fix, in the order Load reads them.
	want := []string{
		"JWT_ALGORITHM: ",
		"ACCESS_TOKEN_EXPIRE_MINUTES: ",
		"REFRESH_TOKEN_EXPIRE_DAYS: ",
		"AUTHLY_LISTEN_ADDR: ",
		"AUTHLY_DATA_DIR: ",
		"AUTHLY_BCRYPT_COST: ",
		"AUTHLY_ISSUER: ",
		"AUTHLY_LOG_LEVEL: ",
		"AUTHLY_LOG_FORMAT: ",
		"AUTHLY_ADMIN_EMAIL: ",
		"AUTHLY_ADMIN_PASSWORD: ",
		"JWT_SECRET_KEY: must be at least 32 bytes (got 10)",
		// JWT_ALGORITHM is invalid, so the default's (ES256) rules apply: the secrets are
		// optional, but both or neither.
		"JWT_REFRESH_SECRET_KEY: must be set when JWT_SECRET_KEY is set",
	}
	assertProblems(t, err, want...)
}

func TestLoadSecrets(t *testing.T) {
	tests := []struct {
		name        string
		getenv      func(string) string
		wantErrs    []string
		wantSecrets bool
	}{
		{
			name:        "two long distinct secrets are accepted",
			getenv:      withSecrets(),
			wantSecrets: true,
		},
		{
			name:     "a short access secret is refused with its length",
			getenv:   withSecrets(envJWTSecret, shortSecret),
			wantErrs: []string{"JWT_SECRET_KEY: must be at least 32 bytes (got 10)"},
		},
		{
			name:     "a short refresh secret is refused with its length",
			getenv:   withSecrets(envJWTRefreshSecret, shortSecret),
			wantErrs: []string{"JWT_REFRESH_SECRET_KEY: must be at least 32 bytes (got 10)"},
		},
		{
			name:     "a secret of 31 bytes is one too short",
			getenv:   withSecrets(envJWTSecret, strings.Repeat("k", MinSecretLen-1)),
			wantErrs: []string{"JWT_SECRET_KEY: must be at least 32 bytes (got 31)"},
		},
		{
			name:     "equal secrets are refused",
			getenv:   withSecrets(envJWTRefreshSecret, accessSecret),
			wantErrs: []string{"JWT_REFRESH_SECRET_KEY: must differ from JWT_SECRET_KEY"},
		},
		{
			name:     "short equal secrets report both problems",
			getenv:   withSecrets(envJWTSecret, shortSecret, envJWTRefreshSecret, shortSecret),
			wantErrs: []string{"JWT_SECRET_KEY: must be at least", "JWT_REFRESH_SECRET_KEY: must be at least", "JWT_REFRESH_SECRET_KEY: must differ"},
		},
		{
			name:   "missing secrets are refused when a database is set",
			getenv: vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "HS256"),
			wantErrs: []string{
				"JWT_SECRET_KEY: must be set when DATABASE_URL is set",
				"JWT_REFRESH_SECRET_KEY: must be set when DATABASE_URL is set",
			},
		},
		{
			name:     "a missing refresh secret is refused when a database is set",
			getenv:   vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "HS256", envJWTSecret, accessSecret),
			wantErrs: []string{"JWT_REFRESH_SECRET_KEY: must be set when DATABASE_URL is set"},
		},
		{
			name:   "missing secrets are allowed in embedded mode",
			getenv: vars(),
		},
		{
			name:        "secrets are used in embedded mode when both are set",
			getenv:      vars(envJWTSecret, accessSecret, envJWTRefreshSecret, refreshSecret),
			wantSecrets: true,
		},
		{
			name:     "only the access secret is refused in embedded mode",
			getenv:   vars(envJWTAlgorithm, "HS256", envJWTSecret, accessSecret),
			wantErrs: []string{"JWT_REFRESH_SECRET_KEY: must be set when JWT_SECRET_KEY is set (set both, or neither"},
		},
		{
			name:     "only the refresh secret is refused in embedded mode",
			getenv:   vars(envJWTRefreshSecret, refreshSecret),
			wantErrs: []string{"JWT_SECRET_KEY: must be set when JWT_REFRESH_SECRET_KEY is set"},
		},
		{
			name:   "a lone short secret in embedded mode reports both problems",
			getenv: vars(envJWTSecret, shortSecret),
			wantErrs: []string{
				"JWT_SECRET_KEY: must be at least 32 bytes (got 10)",
				"JWT_REFRESH_SECRET_KEY: must be set when JWT_SECRET_KEY is set",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(t.Context(), tt.getenv)
			assertProblems(t, err, tt.wantErrs...)
			if err != nil {
				return
			}
			if tt.wantSecrets {
				if string(c.JWTSecret) != accessSecret || string(c.JWTRefreshSecret) != refreshSecret {
					t.Errorf("secrets = %q, %q; want the configured ones", c.JWTSecret, c.JWTRefreshSecret)
				}
			} else if c.JWTSecret != nil || c.JWTRefreshSecret != nil {
				t.Errorf("secrets = %q, %q; want both nil", c.JWTSecret, c.JWTRefreshSecret)
			}
		})
	}
}

func TestValidateSecrets(t *testing.T) {
	tests := []struct {
		name string
		s    Secrets
		want []string
	}{
		{"long distinct secrets are valid", Secrets{Access: []byte(accessSecret), Refresh: []byte(refreshSecret)}, nil},
		{"missing secrets are named", Secrets{}, []string{"JWT_SECRET_KEY: must be set", "JWT_REFRESH_SECRET_KEY: must be set"}},
		{"a short secret gives its length", Secrets{Access: []byte(accessSecret), Refresh: []byte(shortSecret)}, []string{"JWT_REFRESH_SECRET_KEY: must be at least 32 bytes (got 10)"}},
		{"equal secrets are invalid", Secrets{Access: []byte(accessSecret), Refresh: []byte(accessSecret)}, []string{"JWT_REFRESH_SECRET_KEY: must differ from JWT_SECRET_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertProblems(t, ValidateSecrets(tt.s), tt.want...)
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFileSecrets(t *testing.T) {
	secretsJSON := func(access, refresh string) string {
		return fmt.Sprintf(`{"JWT_SECRET_KEY": %q, "JWT_REFRESH_SECRET_KEY": %q}`, access, refresh)
	}
	var (
		valid       = writeFile(t, secretsJSON(accessSecret, refreshSecret))
		missing     = filepath.Join(t.TempDir(), "absent.json")
		badJSON     = writeFile(t, `{"JWT_SECRET_KEY": `+accessSecret+`}`)
		empty       = writeFile(t, "")
		unknown     = writeFile(t, `{"JWT_SECRET": "x"}`)
		notString   = writeFile(t, `{"JWT_SECRET_KEY": 1234567890123456789012345678901234567}`)
		array       = writeFile(t, `["a", "b"]`)
		trailing    = writeFile(t, secretsJSON(accessSecret, refreshSecret)+"{}")
		short       = writeFile(t, secretsJSON(shortSecret, refreshSecret))
		refreshLess = writeFile(t, fmt.Sprintf(`{"JWT_SECRET_KEY": %q}`, accessSecret))
	)

	tests := []struct {
		name     string
		file     string // the AUTHLY_SECRETS_FILE value; empty leaves it unset
		provider string
		wantErrs []string
	}{
		{name: "a valid file provides both secrets", file: valid, provider: "file"},
		{name: "the provider name is not case sensitive", file: valid, provider: "FILE"},
		{
			name: "a missing file is named", file: missing, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: open " + missing + ": no such file or directory"},
		},
		{
			name: "invalid JSON gives a position but not the contents", file: badJSON, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: " + badJSON + ": not valid JSON (syntax error at byte 20)"},
		},
		{
			name: "an empty file is refused", file: empty, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: " + empty + ": empty or truncated JSON"},
		},
		{
			name: "an unknown field is refused", file: unknown, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: " + unknown + `: unknown field "JWT_SECRET"; the allowed keys are JWT_SECRET_KEY, JWT_REFRESH_SECRET_KEY, AUTHLY_KEY_ENCRYPTION_KEY, AUTHLY_PKCS11_PIN, AUTHLY_SMTP_USERNAME and AUTHLY_SMTP_PASSWORD`},
		},
		{
			name: "a non-string secret is refused without quoting it", file: notString, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: " + notString + ": JWT_SECRET_KEY must be a string"},
		},
		{
			name: "a JSON array is refused", file: array, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: " + array + ": must be a JSON object with the keys JWT_SECRET_KEY, JWT_REFRESH_SECRET_KEY, AUTHLY_KEY_ENCRYPTION_KEY, AUTHLY_PKCS11_PIN, AUTHLY_SMTP_USERNAME and AUTHLY_SMTP_PASSWORD"},
		},
		{
			name: "data after the object is refused", file: trailing, provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: " + trailing + ": unexpected data after the JSON object"},
		},
		{
			name: "a short secret in the file names the variable and the file", file: short, provider: "file",
			wantErrs: []string{"JWT_SECRET_KEY in " + short + ": must be at least 32 bytes (got 10)"},
		},
		{
			name: "a file missing a key is refused when a database is set", file: refreshLess, provider: "file",
			wantErrs: []string{"JWT_REFRESH_SECRET_KEY in " + refreshLess + ": must be set when DATABASE_URL is set"},
		},
		{
			name: "the file provider needs a file", provider: "file",
			wantErrs: []string{"AUTHLY_SECRETS_FILE: must be set when AUTHLY_SECRETS_PROVIDER=file"},
		},
		{
			name: "a file without the file provider is refused", file: valid,
			wantErrs: []string{`AUTHLY_SECRETS_FILE: is only read when AUTHLY_SECRETS_PROVIDER=file (it is "env")`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The environment holds other valid secrets, to show that the file provider
			// ignores them.
			getenv := vars(
				envDatabaseURL, databaseURL,
				envJWTAlgorithm, "HS256",
				envJWTSecret, "env-access-secret-0123456789abcdefghij",
				envJWTRefreshSecret, "env-refresh-secret-0123456789abcdefgh",
				envSecretsProvider, tt.provider,
				envSecretsFile, tt.file,
			)
			c, err := Load(t.Context(), getenv)
			assertProblems(t, err, tt.wantErrs...)
			if err != nil {
				return
			}
			if string(c.JWTSecret) != accessSecret || string(c.JWTRefreshSecret) != refreshSecret {
				t.Errorf("secrets = %q, %q; want the ones from the file", c.JWTSecret, c.JWTRefreshSecret)
			}
			if c.SecretsProvider != "file" || c.SecretsFile != tt.file {
				t.Errorf("provider = %q, file = %q; want file, %q", c.SecretsProvider, c.SecretsFile, tt.file)
			}
		})
	}
}

func TestLoadWithSecretProvider(t *testing.T) {
	static := StaticSecrets{Access: []byte(accessSecret), Refresh: []byte(refreshSecret)}
	tests := []struct {
		name         string
		getenv       func(string) string
		provider     SecretProvider
		wantErrs     []string
		wantProvider string
	}{
		{
			name:         "static secrets replace the environment's",
			getenv:       withSecrets(envJWTSecret, shortSecret, envSecretsProvider, "file"),
			provider:     static,
			wantProvider: "static",
		},
		{
			name:     "static secrets are validated",
			getenv:   vars(),
			provider: StaticSecrets{Access: []byte(accessSecret), Refresh: []byte(accessSecret)},
			wantErrs: []string{"JWT_REFRESH_SECRET_KEY: must differ from JWT_SECRET_KEY"},
		},
		{
			name:         "a file provider given as an option is recorded",
			getenv:       vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "HS256"),
			provider:     FileSecrets{Path: writeFile(t, fmt.Sprintf(`{"JWT_SECRET_KEY": %q, "JWT_REFRESH_SECRET_KEY": %q}`, accessSecret, refreshSecret))},
			wantProvider: "file",
		},
		{
			name:     "a failing provider is reported",
			getenv:   vars(),
			provider: failingProvider{},
			wantErrs: []string{"custom secrets provider: vault unreachable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(t.Context(), tt.getenv, WithSecretProvider(tt.provider))
			assertProblems(t, err, tt.wantErrs...)
			if err != nil {
				return
			}
			if string(c.JWTSecret) != accessSecret || string(c.JWTRefreshSecret) != refreshSecret {
				t.Errorf("secrets = %q, %q; want the provider's", c.JWTSecret, c.JWTRefreshSecret)
			}
			if c.SecretsProvider != tt.wantProvider {
				t.Errorf("SecretsProvider = %q, want %q", c.SecretsProvider, tt.wantProvider)
			}
		})
	}
}

type failingProvider struct{}

func (failingProvider) Secrets(context.Context) (Secrets, error) {
	return Secrets{}, errors.New("vault unreachable")
}

func TestStaticSecretsReturnsCopies(t *testing.T) {
	static := StaticSecrets{Access: []byte(accessSecret), Refresh: []byte(refreshSecret)}
	s, _ := static.Secrets(t.Context())
	s.Access[0] = 'X'
	if string(static.Access) != accessSecret {
		t.Errorf("changing returned secrets changed the provider's: %q", static.Access)
	}
}

func TestLoadAdminAccount(t *testing.T) {
	tests := []struct {
		name     string
		kv       []string
		wantErrs []string
	}{
		{name: "no admin variables is fine"},
		{name: "all three admin variables are accepted", kv: []string{envAdminUsername, "root", envAdminEmail, "root@example.com", envAdminPassword, adminPassword}},
		{
			name:     "a username alone names the two missing variables",
			kv:       []string{envAdminUsername, "root"},
			wantErrs: []string{"AUTHLY_ADMIN_EMAIL: must be set when AUTHLY_ADMIN_USERNAME is set", "AUTHLY_ADMIN_PASSWORD: must be set when AUTHLY_ADMIN_USERNAME is set"},
		},
		{
			name:     "a password without an email names only the email",
			kv:       []string{envAdminUsername, "root", envAdminPassword, adminPassword},
			wantErrs: []string{"AUTHLY_ADMIN_EMAIL: must be set when AUTHLY_ADMIN_USERNAME and AUTHLY_ADMIN_PASSWORD are set"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(t.Context(), withSecrets(tt.kv...))
			assertProblems(t, err, tt.wantErrs...)
		})
	}
}

func TestLoadOrCreateDevSecrets(t *testing.T) {
	t.Run("the first call creates a private file and the second reuses it", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")

		first, created, err := LoadOrCreateDevSecrets(dir)
		if err != nil || !created {
			t.Fatalf("first call: created = %v, err = %v; want a new file", created, err)
		}
		if len(first.Access) != 43 || len(first.Refresh) != 43 {
			t.Errorf("secret lengths = %d, %d; want 43 (32 random bytes in base64url)", len(first.Access), len(first.Refresh))
		}
		if err := ValidateSecrets(first); err != nil {
			t.Errorf("generated secrets are invalid: %v", err)
		}
		assertMode(t, dir, 0o700)
		assertMode(t, filepath.Join(dir, "secrets.json"), 0o600)

		again, created, err := LoadOrCreateDevSecrets(dir)
		if err != nil || created {
			t.Fatalf("second call: created = %v, err = %v; want the existing file", created, err)
		}
		if !reflect.DeepEqual(again, first) {
			t.Errorf("second call returned other secrets")
		}

		// The file is in the FileSecrets format, so it can be promoted to AUTHLY_SECRETS_FILE.
		fromFile, err := FileSecrets{Path: filepath.Join(dir, "secrets.json")}.Secrets(t.Context())
		if err != nil || !reflect.DeepEqual(fromFile, first) {
			t.Errorf("FileSecrets read %q, %v; want the generated secrets", fromFile, err)
		}

		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("data directory holds %d entries, want only secrets.json", len(entries))
		}
	})

	t.Run("each new file holds fresh secrets", func(t *testing.T) {
		a, _, errA := LoadOrCreateDevSecrets(t.TempDir())
		b, _, errB := LoadOrCreateDevSecrets(t.TempDir())
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if bytes.Equal(a.Access, b.Access) || bytes.Equal(a.Access, a.Refresh) {
			t.Error("generated secrets repeat")
		}
	})

	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(fmt.Sprintf("a file with mode %#o is refused", mode), func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreateDevSecrets(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "secrets.json")
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateDevSecrets(dir)
			if err == nil || created {
				t.Fatalf("created = %v, err = %v; want a refusal", created, err)
			}
			for _, want := range []string{path, fmt.Sprintf("permissions %#o are too open", mode), "chmod 600"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error = %q, want it to contain %q", err, want)
				}
			}
		})
	}

	t.Run("a file with invalid secrets is refused", func(t *testing.T) {
		dir := t.TempDir()
		content := fmt.Sprintf(`{"JWT_SECRET_KEY": %q, "JWT_REFRESH_SECRET_KEY": %q}`, shortSecret, refreshSecret)
		if err := os.WriteFile(filepath.Join(dir, "secrets.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateDevSecrets(dir)
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET_KEY: must be at least 32 bytes (got 10)") ||
			strings.Contains(err.Error(), shortSecret) {
			t.Errorf("err = %v; want the short secret named but not quoted", err)
		}
	})

	t.Run("a data directory that is a file is reported", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateDevSecrets(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v; want a failure to use the directory", err)
		}
	})
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

func TestConfigRedaction(t *testing.T) {
	c, err := Load(t.Context(), withSecrets(
		envDatabaseURL, databaseURL+"?sslmode=require",
		envAdminUsername, "root",
		envAdminEmail, "root@example.com",
		envAdminPassword, adminPassword,
	))
	if err != nil {
		t.Fatal(err)
	}

	render := map[string]func() string{
		"JSON log": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
			return buf.String()
		},
		"text log": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", c)
			return buf.String()
		},
		"%v":              func() string { return fmt.Sprintf("%v", c) },
		"%+v":             func() string { return fmt.Sprintf("%+v", c) },
		"%#v":             func() string { return fmt.Sprintf("%#v", c) },
		"%s of a pointer": func() string { return fmt.Sprintf("%s", &c) }, //nolint:staticcheck // the fmt path is what is under test
	}
	for name, fn := range render {
		t.Run(name+" hides every secret", func(t *testing.T) {
			out := fn()
			for _, secret := range []string{
				accessSecret, refreshSecret, adminPassword, dbPassword,
				fmt.Sprint([]byte(accessSecret)), fmt.Sprint([]byte(refreshSecret)), //nolint:staticcheck // as %v prints a []byte
				base64.StdEncoding.EncodeToString([]byte(accessSecret)), // as JSON encodes a []byte
			} {
				if strings.Contains(out, secret) {
					t.Errorf("output contains %q:\n%s", secret, out)
				}
			}
			// The rest stays readable.
			for _, want := range []string{"postgres://authly:xxxxx@db:5432/authly?sslmode=require", "root@example.com", "[redacted]"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestRedactDatabaseURL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"the embedded database shows as empty", "", ""},
		{"a URL without a password is unchanged", "postgres://authly@db/authly", "postgres://authly@db/authly"},
		{"a password in the user info is masked", "postgres://authly:" + dbPassword + "@db/authly", "postgres://authly:xxxxx@db/authly"},
		{"a password query parameter is masked", "postgres://authly@db/authly?password=" + dbPassword + "&sslmode=disable", "postgres://authly@db/authly?password=xxxxx&sslmode=disable"},
		{"a keyword/value string with a password is hidden whole", "host=db user=authly password=" + dbPassword, "[redacted]"},
		{"a keyword/value string without a password is kept", "host=db", "host=db"},
		{"an unparsable URL is hidden whole", "postgres://authly:" + dbPassword + "@db:port/authly", "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactDatabaseURL(tt.in); got != tt.want {
				t.Errorf("redactDatabaseURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
