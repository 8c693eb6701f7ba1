package config

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// MinSecretLen is the shortest JWT secret accepted, in bytes. RFC 7518 §3.2 requires an HMAC
// key at least as long as the hash output; 32 bytes covers HS256, the default.
const MinSecretLen = 32

// Secrets are the JWT signing keys and the SMTP credentials. A nil value is one the provider
// did not find.
type Secrets struct {
	Access  []byte // signs access tokens (JWT_SECRET_KEY)
	Refresh []byte // signs refresh tokens (JWT_REFRESH_SECRET_KEY)

	SMTPUsername []byte // AUTHLY_SMTP_USERNAME; checked in mail.go
	SMTPPassword []byte // AUTHLY_SMTP_PASSWORD; checked in mail.go
}

// SecretProvider resolves the secrets. It returns an error only when it cannot
// look; a secret it does not find is left nil, for Load to judge.
type SecretProvider interface {
	Secrets(ctx context.Context) (Secrets, error)
}

// EnvSecrets reads JWT_SECRET_KEY, JWT_REFRESH_SECRET_KEY, AUTHLY_SMTP_USERNAME and
// AUTHLY_SMTP_PASSWORD through Getenv, or through os.Getenv when Getenv is nil. This is the
// default provider.
type EnvSecrets struct {
	Getenv func(string) string
}

// Secrets implements SecretProvider.
func (p EnvSecrets) Secrets(context.Context) (Secrets, error) {
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return Secrets{
		Access:       secretBytes(getenv(envJWTSecret)),
		Refresh:      secretBytes(getenv(envJWTRefreshSecret)),
		SMTPUsername: secretBytes(getenv(envSMTPUsername)),
		SMTPPassword: secretBytes(getenv(envSMTPPassword)),
	}, nil
}

// FileSecrets reads the secrets from the JSON file at Path, an object of the form
//
//	{"JWT_SECRET_KEY": "…", "JWT_REFRESH_SECRET_KEY": "…"}
//
// with, optionally, "AUTHLY_SMTP_USERNAME" and "AUTHLY_SMTP_PASSWORD". Unknown fields are rejected, so that a misspelt key is not mistaken for a missing secret.
// Errors name the file but never quote its contents.
type FileSecrets struct {
	Path string
}

// Secrets implements SecretProvider.
func (p FileSecrets) Secrets(context.Context) (Secrets, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return Secrets{}, err
	}
	defer f.Close()
	return readSecretsJSON(f, p.Path)
}

// StaticSecrets is a provider holding fixed secrets, for tests and programs that embed Authly.
type StaticSecrets Secrets

// Secrets implements SecretProvider. It returns copies, so callers cannot change s.
func (s StaticSecrets) Secrets(context.Context) (Secrets, error) {
	return Secrets{Access: bytes.Clone(s.Access), Refresh: bytes.Clone(s.Refresh),
		SMTPUsername: bytes.Clone(s.SMTPUsername), SMTPPassword: bytes.Clone(s.SMTPPassword)}, nil
}

// ValidateSecrets reports every problem with s: a missing secret, one shorter than
// MinSecretLen, or a refresh secret equal to the access secret. Using one key for both token
// kinds would let an access token pass as a refresh token.
func ValidateSecrets(s Secrets) error {
	return errors.Join(secretProblems(s, "", func(string) string { return "must be set" })...)
}

// secretProblems checks s. where is appended to each variable name to say where the value
// came from; missing gives the message for an absent secret.
func secretProblems(s Secrets, where string, missing func(name string) string) []error {
	var errs []error
	check := func(name string, secret []byte) {
		switch {
		case len(secret) == 0:
			errs = append(errs, fmt.Errorf("%s%s: %s", name, where, missing(name)))
		case len(secret) < MinSecretLen:
			errs = append(errs, fmt.Errorf("%s%s: must be at least %d bytes (got %d)", name, where, MinSecretLen, len(secret)))
		}
	}
	check(envJWTSecret, s.Access)
	check(envJWTRefreshSecret, s.Refresh)
	if len(s.Access) > 0 && bytes.Equal(s.Access, s.Refresh) {
		errs = append(errs, fmt.Errorf("%s%s: must differ from %s", envJWTRefreshSecret, where, envJWTSecret))
	}
	return errs
}

func secretBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// maxSecretsFileSize bounds how much of a secrets file is read; a real one is well under 1 KiB.
const maxSecretsFileSize = 64 << 10

// secretsFile is the JSON form read by FileSecrets and written by LoadOrCreateDevSecrets.
type secretsFile struct {
	JWTSecretKey        string `json:"JWT_SECRET_KEY"`
	JWTRefreshSecretKey string `json:"JWT_REFRESH_SECRET_KEY"`
	SMTPUsername        string `json:"AUTHLY_SMTP_USERNAME,omitempty"`
	SMTPPassword        string `json:"AUTHLY_SMTP_PASSWORD,omitempty"`
}

// readSecretsJSON decodes a secrets file. Decoder messages can quote the input, so each is
// replaced by one that only gives a position or a field name.
func readSecretsJSON(r io.Reader, path string) (Secrets, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSecretsFileSize+1))
	if err != nil {
		return Secrets{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxSecretsFileSize {
		return Secrets{}, fmt.Errorf("%s: larger than %d bytes", path, maxSecretsFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f secretsFile
	if err := dec.Decode(&f); err != nil {
		return Secrets{}, fmt.Errorf("%s: %s", path, describeJSONError(err))
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return Secrets{}, fmt.Errorf("%s: unexpected data after the JSON object", path)
	}
	return Secrets{Access: secretBytes(f.JWTSecretKey), Refresh: secretBytes(f.JWTRefreshSecretKey),
		SMTPUsername: secretBytes(f.SMTPUsername), SMTPPassword: secretBytes(f.SMTPPassword)}, nil
}

func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not valid JSON (syntax error at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("%s must be a string", typeErr.Field)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("must be a JSON object with the keys %s and %s", envJWTSecret, envJWTRefreshSecret)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this; the message quotes only the key.
		return fmt.Sprintf("%s; the allowed keys are %s and %s, and for SMTP %s and %s",
			strings.TrimPrefix(err.Error(), "json: "), envJWTSecret, envJWTRefreshSecret, envSMTPUsername, envSMTPPassword)
	default:
		return "not valid JSON"
	}
}

// devSecretsFile is the name, inside the data directory, of the generated development secrets.
const devSecretsFile = "secrets.json"

// LoadOrCreateDevSecrets returns the development JWT secrets kept in dataDir/secrets.json,
// creating the directory (mode 0700) and the file (mode 0600) when absent. A new file holds two
// fresh random secrets of 32 bytes each, base64url-encoded (43 characters); it is written to a
// temporary file and renamed into place, so a crash never leaves a partial file. created
// reports whether a new file was written.
//
// The file uses the FileSecrets format, so it can later be handed to AUTHLY_SECRETS_FILE. A
// file readable by group or others is refused, since anyone who can read it can mint tokens.
func LoadOrCreateDevSecrets(dataDir string) (s Secrets, created bool, err error) {
	path := filepath.Join(dataDir, devSecretsFile)
	s, err = readDevSecrets(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Secrets{}, false, fmt.Errorf("create data directory: %w", err)
	}
	f := secretsFile{JWTSecretKey: newDevSecret(), JWTRefreshSecretKey: newDevSecret()}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return Secrets{}, false, err
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return Secrets{}, false, fmt.Errorf("write development secrets: %w", err)
	}
	return Secrets{Access: []byte(f.JWTSecretKey), Refresh: []byte(f.JWTRefreshSecretKey)}, true, nil
}

func readDevSecrets(path string) (Secrets, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secrets{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Secrets{}, err
	}
	// Windows has no Unix permission bits; os reports 0666 for any writable file there.
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Secrets{}, fmt.Errorf("%s: permissions %#o are too open; it holds JWT signing secrets and must be readable by its owner only (run: chmod 600 %s)", path, perm, path)
	}
	s, err := readSecretsJSON(f, path)
	if err != nil {
		return Secrets{}, err
	}
	if err := ValidateSecrets(s); err != nil {
		return Secrets{}, fmt.Errorf("%s: invalid development secrets (delete the file to generate new ones):\n%w", path, err)
	}
	return s, nil
}

func newDevSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails since Go 1.24: it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file in the same
// directory and a rename.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable. Not every platform can sync a directory, and the file is
	// complete either way, so a failure here is ignored.
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}
