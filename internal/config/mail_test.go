package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/mail"
)

const smtpPassword = "smtp-pass-Tr0ub4dor&3" // must never be logged or quoted

// writeCA writes a self-signed certificate as PEM and returns its path.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMailDefaultsToFilesInTheDataDirectory(t *testing.T) {
	c, err := Load(t.Context(), vars(envDataDir, "/var/lib/authly"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail != (Mail{}) {
		t.Errorf("Mail = %+v, want nothing set", c.Mail)
	}
	if got := c.MailDir(); got != "/var/lib/authly/mail" {
		t.Errorf("MailDir = %q", got)
	}
	if got := c.MailFrom(); got != DefaultMailFrom {
		t.Errorf("MailFrom = %q", got)
	}

	c, err = Load(t.Context(), vars(envMailDir, "/srv/outgoing", envMailFrom, "Example <no-reply@example.com>"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MailDir() != "/srv/outgoing" || c.MailFrom() != "Example <no-reply@example.com>" {
		t.Errorf("MailDir %q, MailFrom %q", c.MailDir(), c.MailFrom())
	}
}

func TestLoadSMTPSettings(t *testing.T) {
	ca := writeCA(t)
	c, err := Load(t.Context(), withSecrets(
		envSMTPURL, "smtp://mail.example.com:587",
		envSMTPUsername, "authly@example.com",
		envSMTPPassword, smtpPassword,
		envSMTPCAFile, ca,
		envMailFrom, `"Example Accounts" <accounts@example.com>`,
	))
	if err != nil {
		t.Fatal(err)
	}
	want := Mail{
		SMTPURL:      "smtp://mail.example.com:587",
		SMTP:         mail.SMTPServer{Host: "mail.example.com", Port: 587, Security: mail.SecuritySTARTTLS},
		SMTPUsername: "authly@example.com",
		SMTPPassword: smtpPassword,
		SMTPCAFile:   ca,
		From:         `"Example Accounts" <accounts@example.com>`,
	}
	if c.Mail != want {
		t.Errorf("Mail =\n%+v\nwant\n%+v", c.Mail, want)
	}

	c, err = Load(t.Context(), vars(envSMTPURL, "smtp://127.0.0.1:25", envMailFrom, "authly@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail.SMTP.Security != mail.SecurityLoopbackPlain {
		t.Errorf("a loopback relay: security %v", c.Mail.SMTP.Security)
	}
}

func TestLoadSMTPCredentialsFromTheSecretsFile(t *testing.T) {
	file := writeFile(t, fmt.Sprintf(`{"JWT_SECRET_KEY": %q, "JWT_REFRESH_SECRET_KEY": %q, "AUTHLY_SMTP_USERNAME": "relay-user", "AUTHLY_SMTP_PASSWORD": %q}`,
		accessSecret, refreshSecret, smtpPassword))
	getenv := vars(envSecretsProvider, "file", envSecretsFile, file,
		envSMTPURL, "smtps://mail.example.com", envMailFrom, "no-reply@example.com")
	c, err := Load(t.Context(), getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail.SMTPUsername != "relay-user" || c.Mail.SMTPPassword != smtpPassword {
		t.Errorf("credentials %q / %q, want the file's", c.Mail.SMTPUsername, c.Mail.SMTPPassword)
	}
	if c.Mail.SMTP != (mail.SMTPServer{Host: "mail.example.com", Port: 465, Security: mail.SecurityImplicitTLS}) {
		t.Errorf("SMTP = %+v", c.Mail.SMTP)
	}

	c, err = Load(t.Context(), vars(envSMTPURL, "smtps://mail.example.com", envMailFrom, "no-reply@example.com"),
		WithSecretProvider(StaticSecrets{Access: []byte(accessSecret), Refresh: []byte(refreshSecret),
			SMTPUsername: []byte("static-user"), SMTPPassword: []byte(smtpPassword)}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail.SMTPUsername != "static-user" || c.Mail.SMTPPassword != smtpPassword {
		t.Errorf("static credentials %q / %q", c.Mail.SMTPUsername, c.Mail.SMTPPassword)
	}
}

func TestLoadRejectsBadMailSettings(t *testing.T) {
	ca := writeCA(t)
	notPEM := writeFile(t, "not a certificate")
	brokenTemplates := t.TempDir()
	if err := os.WriteFile(filepath.Join(brokenTemplates, "verify_email.txt"), []byte(`{{.Link`), 0o644); err != nil {
		t.Fatal(err)
	}
	smtp := []string{envSMTPURL, "smtp://mail.example.com", envMailFrom, "no-reply@example.com"}
	tests := []struct {
		name string
		kv   []string
		want []string
	}{
		{"another scheme", []string{envSMTPURL, "http://mail.example.com", envMailFrom, "a@example.com"},
			[]string{"AUTHLY_SMTP_URL: must start with smtp:// (STARTTLS) or smtps://"}},
		{"credentials in the URL", []string{envSMTPURL, "smtp://u:" + smtpPassword + "@mail.example.com", envMailFrom, "a@example.com"},
			[]string{"AUTHLY_SMTP_URL: must not hold credentials"}},
		{"SMTP without a From address", []string{envSMTPURL, "smtp://mail.example.com"},
			[]string{"AUTHLY_MAIL_FROM: must be set when AUTHLY_SMTP_URL is set"}},
		{"a From that is not an address", append(smtp[:2:2], envMailFrom, "Authly"),
			[]string{`AUTHLY_MAIL_FROM: must be an email address`}},
		{"a From with a header injection", append(smtp[:2:2], envMailFrom, "a@example.com\r\nBcc: x@example.com"),
			[]string{`AUTHLY_MAIL_FROM: must be an email address`}},
		{"credentials without SMTP", []string{envSMTPUsername, "u", envSMTPPassword, smtpPassword},
			[]string{"AUTHLY_SMTP_USERNAME: is only read when AUTHLY_SMTP_URL is set"}},
		{"a username without a password", append(smtp, envSMTPUsername, "u"),
			[]string{"AUTHLY_SMTP_PASSWORD: must be set when AUTHLY_SMTP_USERNAME is set"}},
		{"a password without a username", append(smtp, envSMTPPassword, smtpPassword),
			[]string{"AUTHLY_SMTP_USERNAME: must be set when AUTHLY_SMTP_PASSWORD is set"}},
		{"a CA file without SMTP", []string{envSMTPCAFile, ca},
			[]string{"AUTHLY_SMTP_CA_FILE: is only read when AUTHLY_SMTP_URL is set"}},
		{"a CA file without certificates", append(smtp, envSMTPCAFile, notPEM),
			[]string{"AUTHLY_SMTP_CA_FILE: must be a readable file of PEM certificates"}},
		{"a mail directory with SMTP", append(smtp, envMailDir, "/srv/mail"),
			[]string{"AUTHLY_MAIL_DIR: is only read when AUTHLY_SMTP_URL is unset"}},
		{"a broken template override", []string{envMailTemplatesDir, brokenTemplates},
			[]string{"AUTHLY_MAIL_TEMPLATES_DIR: mail templates: " + filepath.Join(brokenTemplates, "verify_email.txt")}},
		{"a missing template directory", []string{envMailTemplatesDir, filepath.Join(brokenTemplates, "nope")},
			[]string{"AUTHLY_MAIL_TEMPLATES_DIR: mail templates:"}},
		{"SMTP credentials in the environment with the file provider",
			[]string{envSecretsProvider, "file", envSecretsFile, writeFile(t, fmt.Sprintf(`{"JWT_SECRET_KEY": %q, "JWT_REFRESH_SECRET_KEY": %q}`, accessSecret, refreshSecret)),
				envSMTPURL, "smtp://mail.example.com", envMailFrom, "a@example.com", envSMTPPassword, smtpPassword},
			[]string{"AUTHLY_SMTP_PASSWORD: is not read with the file secrets provider"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(t.Context(), vars(tt.kv...))
			assertProblems(t, err, tt.want...)
			if err != nil && strings.Contains(err.Error(), smtpPassword) {
				t.Errorf("the error quotes the SMTP password: %v", err)
			}
		})
	}
}

func TestTheSMTPPasswordIsNeverLogged(t *testing.T) {
	c, err := Load(t.Context(), withSecrets(envSMTPURL, "smtps://mail.example.com", envMailFrom, "a@example.com",
		envSMTPUsername, "relay-user", envSMTPPassword, smtpPassword))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	for _, out := range []string{buf.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(out, smtpPassword) {
			t.Errorf("output shows the SMTP password:\n%s", out)
		}
		if !strings.Contains(out, "relay-user") || !strings.Contains(out, "smtps://mail.example.com") {
			t.Errorf("output lacks the SMTP settings:\n%s", out)
		}
	}
}
