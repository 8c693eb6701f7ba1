package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
)

// DefaultSiteName is the name messages give the service when NewOutbox is given none.
const DefaultSiteName = "Authly"

// Outbox renders messages and queues them in the mail_outbox table, where a Worker picks them
// up. It is safe for concurrent use.
type Outbox struct {
	templates *Templates
	siteName  string
}

// NewOutbox returns an Outbox rendering with t. siteName is how messages name the service
// ("your Example account"); empty means DefaultSiteName.
func NewOutbox(t *Templates, siteName string) *Outbox {
	siteName = strings.TrimSpace(siteName)
	if siteName == "" {
		siteName = DefaultSiteName
	}
	return &Outbox{templates: t, siteName: siteName}
}

// Render checks m and renders its subject and bodies, without queueing it.
func (o *Outbox) Render(m Message) (Rendered, error) {
	if err := m.check(); err != nil {
		return Rendered{}, err
	}
	r, err := o.templates.render(m.Kind, o.siteName, m.To, m.Data)
	if err != nil {
		return Rendered{}, fmt.Errorf("mail: rendering %s: %w", m.Kind, err)
	}
	return r, nil
}

// Enqueue checks and renders m, then writes it to the outbox through q, and returns its id.
//
// q must be bound to the transaction of the change that causes the message (q.WithTx(tx)), so
// that the message is queued exactly when that change commits and vanishes with it on a
// rollback. Rendering happens here, not when the message is sent: a template error fails the
// caller's transaction instead of a message later, and a message already queued keeps the
// wording it was queued with across a deployment that changes the templates. The body, link
// included, stays in the outbox only until the message is sent or given up.
//
// Errors are those of Render, and the database's from q.
func (o *Outbox) Enqueue(ctx context.Context, q *db.Queries, m Message) (uuid.UUID, error) {
	r, err := o.Render(m)
	if err != nil {
		return uuid.Nil, err
	}
	var discardAfter *time.Time
	if !m.DiscardAfter.IsZero() {
		discardAfter = &m.DiscardAfter
	}
	id, err := q.EnqueueMail(ctx, db.EnqueueMailParams{
		Kind:         string(m.Kind),
		Recipient:    m.To,
		Subject:      r.Subject,
		TextBody:     r.Text,
		HtmlBody:     r.HTML,
		DiscardAfter: discardAfter,
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("mail: queueing %s: %w", m.Kind, err)
	}
	return id, nil
}

// check reports the first problem with m. The messages name fields, never values, since a
// link carries a token.
func (m Message) check() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("mail: %s message: %s", m.Kind, fmt.Sprintf(format, args...))
	}
	if !m.Kind.known() {
		return fmt.Errorf("mail: unknown kind %q", m.Kind)
	}
	if err := checkAddress(m.To); err != nil {
		return fail("To: %v", err)
	}
	d := m.Data
	if hasControl(d.Username) || len(d.Username) > 254 {
		return fail("Username: control characters or longer than 254 bytes")
	}
	if d.Link != "" {
		if err := checkLink(d.Link); err != nil {
			return fail("Link: %v", err)
		}
	}
	if m.Kind.needsLink() {
		if d.Link == "" {
			return fail("Link is required")
		}
		if d.ValidFor <= 0 {
			return fail("ValidFor is required")
		}
	}
	switch m.Kind {
	case KindEmailChangeConfirm, KindEmailChangedNotice:
		if err := checkAddress(d.NewEmail); err != nil {
			return fail("NewEmail: %v", err)
		}
	}
	if d.OldEmail != "" {
		if err := checkAddress(d.OldEmail); err != nil {
			return fail("OldEmail: %v", err)
		}
	}
	switch m.Kind {
	case KindEmailChangedNotice, KindPasswordChangedNotice:
		if d.At.IsZero() {
			return fail("At is required")
		}
	}
	return nil
}

// checkAddress accepts one bare address such as alice@example.com: no display name, no
// comments, at most 254 bytes.
func checkAddress(s string) error {
	switch {
	case s == "":
		return errors.New("is required")
	case len(s) > 254:
		return errors.New("longer than 254 bytes")
	case hasControl(s):
		return errors.New("holds control characters")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return errors.New("must be one bare address such as alice@example.com")
	}
	return nil
}

// checkLink accepts an absolute http or https URL.
func checkLink(s string) error {
	if hasControl(s) || strings.ContainsFunc(s, unicode.IsSpace) {
		return errors.New("holds spaces or control characters")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("must be an absolute http or https URL without user information")
	}
	return nil
}

func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }
