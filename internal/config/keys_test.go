package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKEK is a key-encryption key, and testKEKText its base64 form as an operator sets it.
var (
	testKEK     = bytes.Repeat([]byte{0x42}, KEKSize)
	testKEKText = base64.StdEncoding.EncodeToString(testKEK)
)

const testPIN = "pin-7310-never-logged"

// fakeModule is a file standing in for a PKCS #11 module; config only checks it exists.
func fakeModule(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "libpkcs11.so")
	if err := os.WriteFile(path, []byte("not really a module"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSigningKeySettings(t *testing.T) {
	module := fakeModule(t)
	tests := []struct {
		name  string
		env   func(string) string
		check func(t *testing.T, c Config)
	}{
		{"ES256 with a KEK and no JWT secrets is accepted",
			vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "es256", envKeyEncryptionKey, testKEKText),
			func(t *testing.T, c Config) {
				if c.JWTAlgorithm != "ES256" || !bytes.Equal(c.Keys.KEK, testKEK) || c.JWTSecret != nil {
					t.Fatalf("algorithm %s, KEK %x, secret %q", c.JWTAlgorithm, c.Keys.KEK, c.JWTSecret)
				}
				if c.Keys.LegacyAlgorithm != "HS256" || c.Keys.SigningBackend != "software" {
					t.Fatalf("keys %v", c.Keys)
				}
			}},
		{"EdDSA keeps the HMAC secrets as verify-only keys of the legacy algorithm",
			withSecrets(envJWTAlgorithm, "EdDSA", envKeyEncryptionKey, testKEKText, envJWTLegacyAlgorithm, "HS512"),
			func(t *testing.T, c Config) {
				if c.JWTAlgorithm != "EdDSA" || string(c.JWTSecret) != accessSecret || c.Keys.LegacyAlgorithm != "HS512" {
					t.Fatalf("algorithm %s, legacy %s", c.JWTAlgorithm, c.Keys.LegacyAlgorithm)
				}
			}},
		{"a URL-safe unpadded KEK is accepted",
			vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "RS256", envKeyEncryptionKey, base64.RawURLEncoding.EncodeToString(testKEK)),
			func(t *testing.T, c Config) {
				if !bytes.Equal(c.Keys.KEK, testKEK) {
					t.Fatalf("KEK %x", c.Keys.KEK)
				}
			}},
		{"the embedded mode with ES256 needs no KEK: a development one is generated",
			vars(envJWTAlgorithm, "ES256"),
			func(t *testing.T, c Config) {
				if c.Keys.KEK != nil {
					t.Fatalf("KEK %x", c.Keys.KEK)
				}
			}},
		{"rotation and JWKS max age are read",
			vars(envJWTAlgorithm, "ES256", envKeyRotationInterval, "168h", envJWKSMaxAge, "1m"),
			func(t *testing.T, c Config) {
				if c.Keys.RotationInterval != 168*time.Hour || c.Keys.JWKSMaxAge != time.Minute {
					t.Fatalf("keys %v", c.Keys)
				}
			}},
		{"the pkcs11 backend reads its module, token and PIN and needs no KEK",
			vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256", envSigningBackend, "pkcs11",
				envPKCS11Module, module, envPKCS11TokenLabel, "authly", envPKCS11PIN, testPIN),
			func(t *testing.T, c Config) {
				if c.Keys.SigningBackend != "pkcs11" || c.Keys.PKCS11Module != module || c.Keys.PKCS11TokenLabel != "authly" || c.Keys.PKCS11PIN != testPIN {
					t.Fatalf("keys %v", c.Keys)
				}
			}},
		{"HS256 with DATABASE_URL still needs no KEK",
			withSecrets(),
			func(t *testing.T, c Config) {
				if c.JWTAlgorithm != "HS256" || c.Keys.KEK != nil {
					t.Fatalf("algorithm %s", c.JWTAlgorithm)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(t.Context(), tc.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadRefusesBadSigningKeySettings(t *testing.T) {
	module := fakeModule(t)
	es256 := func(kv ...string) func(string) string {
		return vars(append([]string{envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256", envKeyEncryptionKey, testKEKText}, kv...)...)
	}
	pkcs11 := func(kv ...string) func(string) string {
		return vars(append([]string{envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256", envSigningBackend, "pkcs11",
			envPKCS11Module, module, envPKCS11TokenLabel, "authly", envPKCS11PIN, testPIN}, kv...)...)
	}
	tests := []struct {
		name string
		env  func(string) string
		want []string
	}{
		{"ES256 with DATABASE_URL and no KEK",
			vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256"),
			[]string{"AUTHLY_KEY_ENCRYPTION_KEY: must be set when DATABASE_URL is set and JWT_ALGORITHM is ES256"}},
		{"a KEK of 16 bytes",
			es256(envKeyEncryptionKey, base64.StdEncoding.EncodeToString(testKEK[:16])),
			[]string{"AUTHLY_KEY_ENCRYPTION_KEY: must be base64 of exactly 32 bytes (it decodes to 16)"}},
		{"a KEK that is not base64",
			es256(envKeyEncryptionKey, "correct horse battery staple!!"),
			[]string{"AUTHLY_KEY_ENCRYPTION_KEY: must be base64 of 32 random bytes"}},
		{"one JWT secret without the other under ES256",
			es256(envJWTSecret, accessSecret),
			[]string{"JWT_REFRESH_SECRET_KEY: must be set when JWT_SECRET_KEY is set"}},
		{"a short JWT secret under ES256",
			es256(envJWTSecret, shortSecret, envJWTRefreshSecret, refreshSecret),
			[]string{"JWT_SECRET_KEY: must be at least 32 bytes"}},
		{"a rotation interval under an hour",
			es256(envKeyRotationInterval, "30m"),
			[]string{"AUTHLY_KEY_ROTATION_INTERVAL: must be a duration from 1h to 8760h"}},
		{"a rotation interval shorter than twice the JWKS max age",
			es256(envKeyRotationInterval, "2h", envJWKSMaxAge, "90m"),
			[]string{"AUTHLY_KEY_ROTATION_INTERVAL: must be at least twice AUTHLY_JWKS_MAX_AGE (1h30m)"}},
		{"a JWKS max age over a day",
			es256(envJWKSMaxAge, "25h"),
			[]string{"AUTHLY_JWKS_MAX_AGE: must be a duration from 1s to 24h"}},
		{"an unknown backend",
			es256(envSigningBackend, "vault"),
			[]string{`AUTHLY_SIGNING_BACKEND: must be one of software, pkcs11 (got "vault")`}},
		{"a legacy algorithm under HS256",
			withSecrets(envJWTLegacyAlgorithm, "HS512"),
			[]string{"AUTHLY_JWT_LEGACY_ALGORITHM: is only read when JWT_ALGORITHM is ES256, EdDSA or RS256"}},
		{"a legacy algorithm that is not HMAC",
			es256(envJWTLegacyAlgorithm, "ES256"),
			[]string{"AUTHLY_JWT_LEGACY_ALGORITHM: must be one of HS256, HS384, HS512"}},
		{"pkcs11 without its module, token label and PIN",
			es256(envSigningBackend, "pkcs11"),
			[]string{"AUTHLY_PKCS11_MODULE: must be set when AUTHLY_SIGNING_BACKEND=pkcs11",
				"AUTHLY_PKCS11_TOKEN_LABEL: must be set when AUTHLY_SIGNING_BACKEND=pkcs11",
				"AUTHLY_PKCS11_PIN: must be set when AUTHLY_SIGNING_BACKEND=pkcs11"}},
		{"a pkcs11 module that does not exist",
			pkcs11(envPKCS11Module, "/nonexistent/libpkcs11.so"),
			[]string{"AUTHLY_PKCS11_MODULE: must name the PKCS #11 module"}},
		{"a relative pkcs11 module path",
			pkcs11(envPKCS11Module, "libsofthsm2.so"),
			[]string{"AUTHLY_PKCS11_MODULE: must be an absolute path"}},
		{"pkcs11 with EdDSA",
			pkcs11(envJWTAlgorithm, "EdDSA", envKeyEncryptionKey, testKEKText),
			[]string{"AUTHLY_SIGNING_BACKEND: pkcs11 makes ES256 and RS256 keys"}},
		{"PKCS #11 settings with the software backend",
			es256(envPKCS11Module, module, envPKCS11TokenLabel, "authly", envPKCS11PIN, testPIN),
			[]string{"AUTHLY_PKCS11_MODULE: is only read when AUTHLY_SIGNING_BACKEND=pkcs11",
				"AUTHLY_PKCS11_TOKEN_LABEL: is only read when AUTHLY_SIGNING_BACKEND=pkcs11",
				"AUTHLY_PKCS11_PIN: is only read when AUTHLY_SIGNING_BACKEND=pkcs11"}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := Load(t.Context(), tc.env)
			assertProblems(t, err, tc.want...)
			if err != nil && (strings.Contains(err.Error(), testPIN) || strings.Contains(err.Error(), testKEKText)) {
				t.Fatalf("the error quotes a secret: %v", err)
			}
		})
	}
}

func TestKeySecretsFromAFile(t *testing.T) {
	path := writeFile(t, fmt.Sprintf(`{"AUTHLY_KEY_ENCRYPTION_KEY": %q}`, testKEKText))
	c, err := Load(t.Context(), vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256",
		envSecretsProvider, "file", envSecretsFile, path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Keys.KEK, testKEK) {
		t.Fatalf("KEK %x from the file", c.Keys.KEK)
	}
	bad := writeFile(t, `{"AUTHLY_KEY_ENCRYPTION_KEY": "c2hvcnQ="}`)
	_, err = Load(t.Context(), vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256",
		envSecretsProvider, "file", envSecretsFile, bad))
	assertProblems(t, err, "AUTHLY_KEY_ENCRYPTION_KEY in "+bad+": must be base64 of exactly 32 bytes")
}

func TestKeySecretsAreNeverShown(t *testing.T) {
	module := fakeModule(t)
	c, err := Load(t.Context(), vars(envDatabaseURL, databaseURL, envJWTAlgorithm, "ES256", envKeyEncryptionKey, testKEKText,
		envSigningBackend, "pkcs11", envPKCS11Module, module, envPKCS11TokenLabel, "authly", envPKCS11PIN, testPIN))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	for name, out := range map[string]string{
		"JSON log": logged.String(), "%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"%#v of the keys": fmt.Sprintf("%#v", c.Keys),
	} {
		for _, secret := range []string{
			testPIN, testKEKText, base64.StdEncoding.EncodeToString(testKEK),
			fmt.Sprint(testKEK), //nolint:staticcheck // as %v prints a []byte
		} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows a secret:\n%s", name, out)
			}
		}
		if !strings.Contains(out, "pkcs11") || !strings.Contains(out, "[redacted]") {
			t.Errorf("%s lacks the key settings:\n%s", name, out)
		}
	}
}

func TestLoadOrCreateDevKEK(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	kek, created, err := LoadOrCreateDevKEK(dir)
	if err != nil || !created || len(kek) != KEKSize {
		t.Fatalf("first call: %x, %v, %v", kek, created, err)
	}
	info, err := os.Stat(filepath.Join(dir, devKEKFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode %v, %v; want 0600", info.Mode(), err)
	}
	again, created, err := LoadOrCreateDevKEK(dir)
	if err != nil || created || !bytes.Equal(again, kek) {
		t.Fatalf("second call: %x, %v, %v; want the same KEK, not created", again, created, err)
	}

	t.Run("a file readable by others is refused", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(dir, devKEKFile), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(filepath.Join(dir, devKEKFile), 0o600)
		if _, _, err := LoadOrCreateDevKEK(dir); err == nil || !strings.Contains(err.Error(), "too open") {
			t.Fatalf("err = %v, want a permissions error", err)
		}
	})
	t.Run("a damaged file is refused, not replaced", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, devKEKFile)
		if err := os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateDevKEK(dir); err == nil || !strings.Contains(err.Error(), "exactly 32 bytes") {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "c2hvcnQ=\n" {
			t.Fatal("the damaged file was overwritten")
		}
	})
}
