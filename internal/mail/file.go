package mail

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// FileSender writes each message as an .eml file (RFC 5322, the format mail clients open)
// into a directory, instead of sending it: Authly's default when no SMTP server is configured,
// so development needs no mail server. Files are readable by their owner only, since they
// hold one-time links.
type FileSender struct {
	dir string
	log *slog.Logger
}

// NewFileSender creates dir (mode 0700) when missing and returns a sender writing there. A nil
// logger discards.
func NewFileSender(dir string, logger *slog.Logger) (*FileSender, error) {
	if dir == "" {
		return nil, fmt.Errorf("mail: the mail directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FileSender{dir: dir, log: logger}, nil
}

// Dir returns the directory the files are written to.
func (s *FileSender) Dir() string { return s.dir }

// Send writes e to <dir>/<queued time>-<outbox id>.eml. The file appears whole or not at
// all: it is written to a temporary file in the same directory and renamed into place. The
// name depends only on the envelope, so writing a message again replaces its file rather than
// adding a second one.
func (s *FileSender) Send(ctx context.Context, e Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg, err := buildMessage(e)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	name := e.Date.UTC().Format("20060102T150405Z") + "-" + e.ID.String() + ".eml"
	path := filepath.Join(s.dir, name)
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("mail: writing %s: %w", name, err)
	}
	s.log.InfoContext(ctx, "mail written to a file", "kind", string(e.Kind), "to", e.To, "file", path)
	return nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file in the same
// directory, synced, then renamed over path.
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
	// Make the rename durable; a directory that cannot be synced still holds a whole file.
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}
