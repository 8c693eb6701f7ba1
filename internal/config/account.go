package config

import (
	"log/slog"
	"net/url"
	"strings"

	"github.com/authly/authly/internal/password"
	"github.com/authly/authly/internal/ratelimit"
)

// Account variables: the public URL emailed links point at, how addresses are verified, the
// limits on requests that send mail, and how passwords are hashed.
const (
	envPublicURL           = "AUTHLY_PUBLIC_URL"
	envRequireVerification = "AUTHLY_REQUIRE_VERIFICATION"
	envRateLimitMailAddr   = "AUTHLY_RATE_LIMIT_MAIL_ADDRESS"
	envRateLimitMailIP     = "AUTHLY_RATE_LIMIT_MAIL_IP"
	envPasswordHash        = "AUTHLY_PASSWORD_HASH"
	envArgon2Memory        = "AUTHLY_ARGON2_MEMORY_KIB"
	envArgon2Iterations    = "AUTHLY_ARGON2_ITERATIONS"
	envArgon2Parallelism   = "AUTHLY_ARGON2_PARALLELISM"
)

// DefaultPublicURL is AUTHLY_PUBLIC_URL when unset: the default listen address, for
// development.
const DefaultPublicURL = "http://127.0.0.1:8000"

// Verification modes, AUTHLY_REQUIRE_VERIFICATION.
const (
	// VerifyByEmail: registration sends a verification link, and an account logs in once its
	// address is verified, by the link or by an admin. The default.
	VerifyByEmail = "email"
	// VerifyByAdmin: no verification mail; an account logs in once an admin has verified it.
	VerifyByAdmin = "admin"
	// VerifyOff: accounts log in unverified; no verification mail at registration, though a
	// user may still ask for a link, and is_verified tells applications whether the address
	// was confirmed.
	VerifyOff = "off"
)

// Defaults of the limits on requests that send mail (password reset and verification resend).
const (
	defaultRateLimitMailAddress = "3/1h"
	defaultRateLimitMailIP      = "20/1h"
)

// Account is the configuration of the account flows and of password hashing.
type Account struct {
	// PublicURL is AUTHLY_PUBLIC_URL: the absolute http(s) URL, without query, fragment or
	// trailing slash, at which people and clients reach Authly; emailed links start with it.
	PublicURL string
	// RequireVerification is AUTHLY_REQUIRE_VERIFICATION: VerifyByEmail (default),
	// VerifyByAdmin or VerifyOff.
	RequireVerification string
	// RateLimitMailAddress is AUTHLY_RATE_LIMIT_MAIL_ADDRESS: password reset requests and
	// verification resends per email address, default 3/1h.
	RateLimitMailAddress ratelimit.Limit
	// RateLimitMailIP is AUTHLY_RATE_LIMIT_MAIL_IP: the same requests per client IP, default
	// 20/1h.
	RateLimitMailIP ratelimit.Limit
	// PasswordHash is AUTHLY_PASSWORD_HASH: bcrypt (default, at AUTHLY_BCRYPT_COST) or
	// argon2id (with the three Argon2 settings).
	PasswordHash string
	// Argon2MemoryKiB, Argon2Iterations and Argon2Parallelism are AUTHLY_ARGON2_MEMORY_KIB
	// (default 19456, 19 MiB), AUTHLY_ARGON2_ITERATIONS (2) and AUTHLY_ARGON2_PARALLELISM (1):
	// OWASP's recommendation.
	Argon2MemoryKiB   int
	Argon2Iterations  int
	Argon2Parallelism int
}

// PasswordHasher returns the Hasher new password hashes are made with.
func (c Config) PasswordHasher() password.Hasher {
	if c.Account.PasswordHash == password.AlgorithmArgon2id {
		return password.Argon2id{MemoryKiB: uint32(c.Account.Argon2MemoryKiB),
			Iterations: uint32(c.Account.Argon2Iterations), Parallelism: uint8(c.Account.Argon2Parallelism)}
	}
	return password.Bcrypt{Cost: c.BcryptCost}
}

// LogValue renders the account settings.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("public_url", a.PublicURL),
		slog.String("require_verification", a.RequireVerification),
		slog.String("rate_limit_mail_address", a.RateLimitMailAddress.String()),
		slog.String("rate_limit_mail_ip", a.RateLimitMailIP.String()),
		slog.String("password_hash", a.PasswordHash),
		slog.Int("argon2_memory_kib", a.Argon2MemoryKiB),
		slog.Int("argon2_iterations", a.Argon2Iterations),
		slog.Int("argon2_parallelism", a.Argon2Parallelism),
	)
}

// account reads the account settings into c; the mail settings must be read already.
func (e *env) account(c *Config) {
	a := &c.Account
	a.PublicURL = e.publicURL(envPublicURL, c.Mail.SMTPURL != "")
	a.RequireVerification = e.oneOf(envRequireVerification, VerifyByEmail, VerifyByEmail, VerifyByAdmin, VerifyOff)
	a.RateLimitMailAddress = e.limit(envRateLimitMailAddr, defaultRateLimitMailAddress)
	a.RateLimitMailIP = e.limit(envRateLimitMailIP, defaultRateLimitMailIP)

	a.PasswordHash = e.oneOf(envPasswordHash, password.AlgorithmBcrypt, password.AlgorithmBcrypt, password.AlgorithmArgon2id)
	a.Argon2MemoryKiB = e.intRange(envArgon2Memory, password.DefaultArgon2MemoryKiB,
		password.MinArgon2MemoryKiB, password.MaxArgon2MemoryKiB, "KiB")
	a.Argon2Iterations = e.intRange(envArgon2Iterations, password.DefaultArgon2Iterations,
		password.MinArgon2Iterations, password.MaxArgon2Iterations, "passes")
	a.Argon2Parallelism = e.intRange(envArgon2Parallelism, password.DefaultArgon2Parallelism, 1, password.MaxArgon2Parallelism, "lanes")
	if a.PasswordHash != password.AlgorithmArgon2id {
		for _, name := range []string{envArgon2Memory, envArgon2Iterations, envArgon2Parallelism} {
			if e.getenv(name) != "" {
				e.fail(name, "is only read when %s=%s", envPasswordHash, password.AlgorithmArgon2id)
			}
		}
	}
}

// publicURL returns the variable as an absolute http(s) URL without user information, query
// or fragment, and without a trailing slash, or DefaultPublicURL when it is unset. required
// makes it mandatory: mail sent to real people must not link to a loopback default.
func (e *env) publicURL(name string, required bool) string {
	v := e.string(name, "")
	if v == "" {
		if required {
			e.fail(name, "must be set when %s is set: emailed links start with it, such as https://auth.example.com", envSMTPURL)
		}
		return DefaultPublicURL
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(v, " \t#?") {
		e.fail(name, "must be an absolute http:// or https:// URL without user information, query or fragment, such as https://auth.example.com (got %q)", v)
		return DefaultPublicURL
	}
	return strings.TrimRight(v, "/")
}
