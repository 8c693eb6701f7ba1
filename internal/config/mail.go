package config

import (
	"log/slog"
	netmail "net/mail"
	"path/filepath"
	"strings"

	"github.com/authly/authly/internal/mail"
)

// Mail variables. AUTHLY_SMTP_USERNAME and AUTHLY_SMTP_PASSWORD are secrets: the secret
// provider reads them (secrets.go).
const (
	envSMTPURL          = "AUTHLY_SMTP_URL"
	envSMTPUsername     = "AUTHLY_SMTP_USERNAME"
	envSMTPPassword     = "AUTHLY_SMTP_PASSWORD"
	envSMTPCAFile       = "AUTHLY_SMTP_CA_FILE"
	envMailFrom         = "AUTHLY_MAIL_FROM"
	envMailDir          = "AUTHLY_MAIL_DIR"
	envMailTemplatesDir = "AUTHLY_MAIL_TEMPLATES_DIR"
)

// DefaultMailFrom is the From address of mail written to files when AUTHLY_MAIL_FROM is unset.
const DefaultMailFrom = "Authly <authly@localhost>"

// Mail is how Authly sends email (internal/mail). Without an SMTP server it writes every
// message as an .eml file into a directory instead.
type Mail struct {
	// SMTPURL is AUTHLY_SMTP_URL: smtp://host[:port] (STARTTLS required, except towards a
	// loopback host) or smtps://host[:port] (implicit TLS). Empty means no SMTP: messages are
	// written to files.
	SMTPURL string
	// SMTP is SMTPURL parsed; zero when SMTPURL is empty.
	SMTP mail.SMTPServer
	// SMTPUsername and SMTPPassword (AUTHLY_SMTP_USERNAME, AUTHLY_SMTP_PASSWORD, through the
	// secret provider) authenticate with SMTP AUTH; both or neither.
	SMTPUsername string
	SMTPPassword string
	// SMTPCAFile is AUTHLY_SMTP_CA_FILE: PEM certificate authorities to verify the SMTP
	// server's certificate with instead of the system's, for a private CA.
	SMTPCAFile string
	// From is AUTHLY_MAIL_FROM, the From header, such as "Example <no-reply@example.com>".
	// Required with SMTP; empty otherwise means DefaultMailFrom (see Config.MailFrom).
	From string
	// Dir is AUTHLY_MAIL_DIR, where messages are written without SMTP; empty means the data
	// directory's mail/ (see Config.MailDir).
	Dir string
	// TemplatesDir is AUTHLY_MAIL_TEMPLATES_DIR: files there replace the embedded templates of
	// the same name. Checked at start.
	TemplatesDir string
}

// MailFrom returns the From address messages carry.
func (c Config) MailFrom() string {
	if c.Mail.From == "" {
		return DefaultMailFrom
	}
	return c.Mail.From
}

// MailDir returns the directory messages are written to when there is no SMTP server.
func (c Config) MailDir() string {
	if c.Mail.Dir == "" {
		return filepath.Join(c.DataDir, "mail")
	}
	return c.Mail.Dir
}

// LogValue renders the mail settings with the SMTP password replaced by a marker.
func (m Mail) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("smtp_url", m.SMTPURL),
		slog.String("smtp_username", m.SMTPUsername),
		slog.String("smtp_password", redacted(m.SMTPPassword != "")),
		slog.String("smtp_ca_file", m.SMTPCAFile),
		slog.String("from", m.From),
		slog.String("dir", m.Dir),
		slog.String("templates_dir", m.TemplatesDir),
	)
}

// String renders the mail settings like LogValue, so that fmt's %v and %+v are safe too.
func (m Mail) String() string { return m.LogValue().String() }

// GoString renders the mail settings like LogValue, so that fmt's %#v is safe too.
func (m Mail) GoString() string { return "config.Mail" + m.String() }

// mail reads the mail settings into c. s holds the SMTP credentials as the secret provider
// returned them (nothing when it failed, which is reported already).
func (e *env) mail(c *Config, s Secrets) {
	m := &c.Mail
	m.SMTPURL = e.string(envSMTPURL, "")
	if m.SMTPURL != "" {
		server, err := mail.ParseSMTPURL(m.SMTPURL)
		if err != nil {
			e.fail(envSMTPURL, "%v (such as smtp://mail.example.com:587 or smtps://mail.example.com:465)", err)
		}
		m.SMTP = server
	}
	smtp := m.SMTPURL != ""

	// The credentials come from the provider; a variable it does not read is refused rather
	// than silently ignored.
	if c.SecretsProvider != "env" {
		for _, name := range []string{envSMTPUsername, envSMTPPassword} {
			if e.getenv(name) != "" {
				e.fail(name, "is not read with the %s secrets provider; give it there", c.SecretsProvider)
			}
		}
	}
	m.SMTPUsername = strings.TrimSpace(string(s.SMTPUsername))
	m.SMTPPassword = string(s.SMTPPassword) // byte for byte, like every password
	switch {
	case !smtp && m.SMTPUsername != "":
		e.fail(envSMTPUsername, "is only read when %s is set", envSMTPURL)
	case !smtp && m.SMTPPassword != "":
		e.fail(envSMTPPassword, "is only read when %s is set", envSMTPURL)
	case m.SMTPUsername != "" && m.SMTPPassword == "":
		e.fail(envSMTPPassword, "must be set when %s is set", envSMTPUsername)
	case m.SMTPPassword != "" && m.SMTPUsername == "":
		e.fail(envSMTPUsername, "must be set when %s is set", envSMTPPassword)
	case hasControlRune(m.SMTPUsername):
		e.fail(envSMTPUsername, "must not contain control characters")
	}

	m.SMTPCAFile = e.string(envSMTPCAFile, "")
	switch {
	case m.SMTPCAFile != "" && !smtp:
		e.fail(envSMTPCAFile, "is only read when %s is set", envSMTPURL)
	case m.SMTPCAFile != "":
		if _, err := mail.LoadCertPool(m.SMTPCAFile); err != nil {
			e.fail(envSMTPCAFile, "must be a readable file of PEM certificates: %v", err)
		}
	}

	m.From = e.string(envMailFrom, "")
	switch {
	case m.From == "" && smtp:
		e.fail(envMailFrom, "must be set when %s is set, such as \"Example <no-reply@example.com>\"", envSMTPURL)
	case m.From != "":
		if a, err := netmail.ParseAddress(m.From); err != nil || hasControlRune(m.From) || !strings.Contains(a.Address, "@") {
			e.fail(envMailFrom, "must be an email address, optionally with a name, such as \"Example <no-reply@example.com>\" (got %q)", m.From)
		}
	}

	m.Dir = e.string(envMailDir, "")
	if m.Dir != "" && smtp {
		e.fail(envMailDir, "is only read when %s is unset (mail then goes to files)", envSMTPURL)
	}

	m.TemplatesDir = e.string(envMailTemplatesDir, "")
	if m.TemplatesDir != "" {
		if _, err := mail.LoadTemplates(m.TemplatesDir); err != nil {
			e.fail(envMailTemplatesDir, "%v", err)
		}
	}
}

func hasControlRune(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
