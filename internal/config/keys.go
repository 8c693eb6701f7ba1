package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Signing-key variables. AUTHLY_KEY_ENCRYPTION_KEY and AUTHLY_PKCS11_PIN are secrets: they
// come through the secret provider, like the JWT secrets.
const (
	envKeyEncryptionKey    = "AUTHLY_KEY_ENCRYPTION_KEY"
	envKeyRotationInterval = "AUTHLY_KEY_ROTATION_INTERVAL"
	envJWKSMaxAge          = "AUTHLY_JWKS_MAX_AGE"
	envSigningBackend      = "AUTHLY_SIGNING_BACKEND"
	envPKCS11Module        = "AUTHLY_PKCS11_MODULE"
	envPKCS11TokenLabel    = "AUTHLY_PKCS11_TOKEN_LABEL"
	envPKCS11PIN           = "AUTHLY_PKCS11_PIN"
	envJWTLegacyAlgorithm  = "AUTHLY_JWT_LEGACY_ALGORITHM"
)

// Defaults of the signing-key settings.
const (
	defaultKeyRotationInterval = 30 * 24 * time.Hour
	defaultJWKSMaxAge          = 5 * time.Minute
)

// KEKSize is the length of the key-encryption key, in bytes (AES-256).
const KEKSize = 32

// jwtAlgorithms are the values of JWT_ALGORITHM: the HMAC ones sign with JWT_SECRET_KEY and
// JWT_REFRESH_SECRET_KEY, the public-key ones with keys from the key store.
var jwtAlgorithms = []string{"HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"}

// PublicKeyAlgorithm reports whether alg is one of the JWT algorithms whose keys come from
// the key store rather than from the JWT secrets.
func PublicKeyAlgorithm(alg string) bool { return alg == "ES256" || alg == "EdDSA" || alg == "RS256" }

// KeyConfig configures the token-signing key store. Its secrets (the KEK and the PKCS #11
// PIN) are never shown by LogValue.
type KeyConfig struct {
	// KEK is the 32-byte key-encryption key that seals software private keys at rest
	// (AUTHLY_KEY_ENCRYPTION_KEY, base64 through the secret provider). With DATABASE_URL
	// unset it may be absent; the caller then uses LoadOrCreateDevKEK.
	KEK []byte
	// RotationInterval is how long a key signs before the next one takes over
	// (AUTHLY_KEY_ROTATION_INTERVAL: 1h..8760h, default 720h, at least twice JWKSMaxAge).
	RotationInterval time.Duration
	// JWKSMaxAge is how long clients may cache the JWKS, and so how long a new key is
	// published before it signs (AUTHLY_JWKS_MAX_AGE: 1s..24h, default 5m).
	JWKSMaxAge time.Duration
	// SigningBackend is where new keys are made: software (default) or pkcs11
	// (AUTHLY_SIGNING_BACKEND).
	SigningBackend string
	// The PKCS #11 token, all required with the pkcs11 backend and refused without it.
	PKCS11Module     string // AUTHLY_PKCS11_MODULE: path of the module (a shared library)
	PKCS11TokenLabel string // AUTHLY_PKCS11_TOKEN_LABEL
	PKCS11PIN        string // AUTHLY_PKCS11_PIN, through the secret provider
	// LegacyAlgorithm is the HMAC algorithm of tokens signed with the JWT secrets before a
	// switch to a public-key JWT_ALGORITHM; while the secrets stay set, such tokens are
	// accepted until they expire (AUTHLY_JWT_LEGACY_ALGORITHM: HS256 (default), HS384 or
	// HS512; only read with a public-key JWT_ALGORITHM).
	LegacyAlgorithm string
}

// LogValue renders the key settings with the KEK and the PIN replaced by a marker.
func (k KeyConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kek", redacted(len(k.KEK) > 0)),
		slog.Duration("rotation_interval", k.RotationInterval),
		slog.Duration("jwks_max_age", k.JWKSMaxAge),
		slog.String("signing_backend", k.SigningBackend),
		slog.String("pkcs11_module", k.PKCS11Module),
		slog.String("pkcs11_token_label", k.PKCS11TokenLabel),
		slog.String("pkcs11_pin", redacted(k.PKCS11PIN != "")),
		slog.String("legacy_algorithm", k.LegacyAlgorithm),
	)
}

// String renders the key settings like LogValue, so that fmt never prints the KEK or PIN.
func (k KeyConfig) String() string { return k.LogValue().String() }

// GoString renders the key settings like LogValue for %#v.
func (k KeyConfig) GoString() string { return "config.KeyConfig" + k.String() }

// keys reads the signing-key settings that are not secrets into c.Keys.
func (e *env) keys(c *Config) {
	k := &c.Keys
	k.RotationInterval = e.duration(envKeyRotationInterval, defaultKeyRotationInterval, time.Hour, 365*24*time.Hour, false)
	k.JWKSMaxAge = e.duration(envJWKSMaxAge, defaultJWKSMaxAge, time.Second, 24*time.Hour, false)
	if k.RotationInterval < 2*k.JWKSMaxAge {
		// A new key is published for JWKSMaxAge before it signs.
		e.fail(envKeyRotationInterval, "must be at least twice %s (%s)", envJWKSMaxAge, shortDuration(k.JWKSMaxAge))
	}
	k.SigningBackend = e.oneOf(envSigningBackend, "software", "software", "pkcs11")
	k.PKCS11Module = e.string(envPKCS11Module, "")
	k.PKCS11TokenLabel = e.string(envPKCS11TokenLabel, "")
	switch k.SigningBackend {
	case "pkcs11":
		if k.PKCS11Module == "" {
			e.fail(envPKCS11Module, "must be set when %s=pkcs11", envSigningBackend)
		} else if !filepath.IsAbs(k.PKCS11Module) {
			e.fail(envPKCS11Module, "must be an absolute path (got %q)", k.PKCS11Module)
		} else if info, err := os.Stat(k.PKCS11Module); err != nil || info.IsDir() {
			e.fail(envPKCS11Module, "must name the PKCS #11 module, a shared library (%q is not a readable file)", k.PKCS11Module)
		}
		if k.PKCS11TokenLabel == "" {
			e.fail(envPKCS11TokenLabel, "must be set when %s=pkcs11", envSigningBackend)
		}
		if c.JWTAlgorithm == "EdDSA" {
			e.fail(envSigningBackend, "pkcs11 makes ES256 and RS256 keys; set %s to ES256 or RS256", envJWTAlgorithm)
		}
	default:
		for _, name := range []string{envPKCS11Module, envPKCS11TokenLabel} {
			if e.getenv(name) != "" {
				e.fail(name, "is only read when %s=pkcs11", envSigningBackend)
			}
		}
	}
	if PublicKeyAlgorithm(c.JWTAlgorithm) {
		k.LegacyAlgorithm = e.oneOf(envJWTLegacyAlgorithm, "HS256", "HS256", "HS384", "HS512")
	} else if e.getenv(envJWTLegacyAlgorithm) != "" {
		e.fail(envJWTLegacyAlgorithm, "is only read when %s is ES256, EdDSA or RS256", envJWTAlgorithm)
	}
}

// checkJWTSecrets applies the secret rules to the JWT secrets a provider returned. With an
// HMAC JWT_ALGORITHM they sign and are required outside embedded mode. With a public-key one
// they only verify tokens from before the switch, so they may be absent, but when present
// both must be, and valid.
func (e *env) checkJWTSecrets(c Config, s Secrets) []error {
	if !PublicKeyAlgorithm(c.JWTAlgorithm) {
		return checkLoadedSecrets(s, c.Embedded(), c.SecretsFile)
	}
	if s.Access == nil && s.Refresh == nil {
		return nil
	}
	where := ""
	if c.SecretsFile != "" {
		where = " in " + c.SecretsFile
	}
	return secretProblems(s, where, func(name string) string {
		other := envJWTSecret
		if name == envJWTSecret {
			other = envJWTRefreshSecret
		}
		return "must be set when " + other + " is set (keep both while tokens they signed may still be in use, or remove both)"
	})
}

// keySecrets reads the key-store secrets a provider returned into c.Keys.
func (e *env) keySecrets(c *Config, s Secrets) {
	where := envKeyEncryptionKey
	if c.SecretsFile != "" {
		where += " in " + c.SecretsFile
	}
	switch {
	case len(s.KeyEncryptionKey) > 0:
		kek, err := DecodeKEK(string(s.KeyEncryptionKey))
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s: %w", where, err))
		}
		c.Keys.KEK = kek
	case !c.Embedded() && PublicKeyAlgorithm(c.JWTAlgorithm) && c.Keys.SigningBackend == "software" && e.jwtAlgorithmValid():
		alg := c.JWTAlgorithm
		if e.getenv(envJWTAlgorithm) == "" {
			alg += " (the default)"
		}
		e.errs = append(e.errs, fmt.Errorf("%s: must be set when %s is set and %s is %s: it seals the signing keys in the database (generate one with: openssl rand -base64 32); to keep signing with JWT_SECRET_KEY and JWT_REFRESH_SECRET_KEY instead, set %s=HS256",
			where, envDatabaseURL, envJWTAlgorithm, alg, envJWTAlgorithm))
	}
	pinWhere := envPKCS11PIN
	if c.SecretsFile != "" {
		pinWhere += " in " + c.SecretsFile
	}
	switch {
	case c.Keys.SigningBackend == "pkcs11" && len(s.PKCS11PIN) == 0:
		e.errs = append(e.errs, fmt.Errorf("%s: must be set when %s=pkcs11", pinWhere, envSigningBackend))
	case c.Keys.SigningBackend != "pkcs11" && len(s.PKCS11PIN) > 0:
		e.errs = append(e.errs, fmt.Errorf("%s: is only read when %s=pkcs11", pinWhere, envSigningBackend))
	default:
		c.Keys.PKCS11PIN = string(s.PKCS11PIN)
	}
}

// jwtAlgorithmValid reports whether JWT_ALGORITHM is unset or one of jwtAlgorithms, so that
// an invalid value, already reported, does not also bring the default's requirements.
func (e *env) jwtAlgorithmValid() bool {
	v := strings.TrimSpace(e.getenv(envJWTAlgorithm))
	return v == "" || slices.ContainsFunc(jwtAlgorithms, func(a string) bool { return strings.EqualFold(a, v) })
}

// DecodeKEK decodes a key-encryption key: base64 (standard or URL-safe, padded or not) of
// exactly KEKSize bytes. Its errors never quote the value.
func DecodeKEK(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil {
			if len(b) != KEKSize {
				return nil, fmt.Errorf("must be base64 of exactly %d bytes (it decodes to %d)", KEKSize, len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("must be base64 of %d random bytes, such as the output of: openssl rand -base64 32", KEKSize)
}

// devKEKFile is the name, inside the data directory, of the generated development KEK.
const devKEKFile = "key-encryption-key"

// LoadOrCreateDevKEK returns the development key-encryption key kept in
// dataDir/key-encryption-key, creating the directory (mode 0700) and the file (mode 0600,
// 32 random bytes in base64) when absent; created reports whether it wrote the file. It is
// for the embedded mode only: with DATABASE_URL set, AUTHLY_KEY_ENCRYPTION_KEY is required.
// A file readable by group or others is refused, since whoever reads it and the database
// can sign tokens.
func LoadOrCreateDevKEK(dataDir string) (kek []byte, created bool, err error) {
	path := filepath.Join(dataDir, devKEKFile)
	kek, err = readDevKEK(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kek, false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	text := newDevKEK()
	if err := writeFileAtomic(path, []byte(text+"\n")); err != nil {
		return nil, false, fmt.Errorf("write development key-encryption key: %w", err)
	}
	kek, err = DecodeKEK(text)
	return kek, true, err
}

func readDevKEK(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: permissions %#o are too open; it holds the key that seals the signing keys and must be readable by its owner only (run: chmod 600 %s)", path, perm, path)
	}
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	kek, err := DecodeKEK(string(buf[:n]))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (delete the file to generate a new one, which makes the stored signing keys unusable)", path, err)
	}
	return kek, nil
}

func newDevKEK() string {
	b := make([]byte, KEKSize)
	rand.Read(b) // never fails since Go 1.24: it crashes the program instead
	return base64.StdEncoding.EncodeToString(b)
}
