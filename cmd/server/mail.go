package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/config"
	"github.com/authly/authly/internal/mail"
	"github.com/authly/authly/internal/metrics"
)

// errNoMailRoute refuses to serve on a database of one's own without a way for account mail
// to leave: verification and reset links written to files nobody reads would fail every user
// silently. The embedded development database writes them to files by default.
var errNoMailRoute = errors.New("AUTHLY_SMTP_URL: account mail (email verification, password reset, email change) " +
	"needs a way out when DATABASE_URL is set: set AUTHLY_SMTP_URL (with AUTHLY_MAIL_FROM and AUTHLY_PUBLIC_URL) " +
	"to send it, or AUTHLY_MAIL_DIR to write each message as an .eml file into that directory")

// mailSender picks how mail leaves: SMTP when AUTHLY_SMTP_URL is set, .eml files otherwise,
// under AUTHLY_MAIL_DIR or, with the embedded database, the data directory's mail/. It returns
// a description for the log.
func mailSender(cfg config.Config, log *slog.Logger) (mail.Sender, string, error) {
	if cfg.Mail.SMTPURL != "" {
		opts := mail.SMTPOptions{Server: cfg.Mail.SMTP, Username: cfg.Mail.SMTPUsername, Password: cfg.Mail.SMTPPassword}
		if cfg.Mail.SMTPCAFile != "" {
			pool, err := mail.LoadCertPool(cfg.Mail.SMTPCAFile)
			if err != nil {
				return nil, "", fmt.Errorf("AUTHLY_SMTP_CA_FILE: %w", err)
			}
			opts.RootCAs = pool
		}
		sender, err := mail.NewSMTPSender(opts)
		if err != nil {
			return nil, "", fmt.Errorf("AUTHLY_SMTP_URL: %w", err)
		}
		return sender, "smtp " + cfg.Mail.SMTPURL, nil
	}
	if !cfg.Embedded() && cfg.Mail.Dir == "" {
		return nil, "", errNoMailRoute
	}
	sender, err := mail.NewFileSender(cfg.MailDir(), log)
	if err != nil {
		return nil, "", fmt.Errorf("AUTHLY_MAIL_DIR: %w", err)
	}
	return sender, "files in " + sender.Dir(), nil
}

// newOutbox loads the mail templates, with AUTHLY_MAIL_TEMPLATES_DIR's overrides.
func newOutbox(cfg config.Config) (*mail.Outbox, error) {
	templates, err := mail.LoadTemplates(cfg.Mail.TemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("AUTHLY_MAIL_TEMPLATES_DIR: %w", err)
	}
	return mail.NewOutbox(templates, ""), nil
}

// startMailWorker runs the worker draining the outbox through sender until the returned
// function is called, which waits for it to stop: the message being sent is finished and
// recorded first.
func startMailWorker(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, sender mail.Sender, log *slog.Logger, m *metrics.Metrics) (stop func(), err error) {
	worker, err := mail.NewWorker(pool, sender, mail.WorkerOptions{From: cfg.MailFrom(), Logger: log, Metrics: m})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Run(ctx) // returns nil when ctx ends; it logs its own failures
	}()
	return func() { cancel(); <-done }, nil
}
