// Package mail owns Authly's outgoing email: the templates, the PostgreSQL outbox, the worker
// that drains it, and the senders that deliver a message (SMTP, or .eml files when no SMTP
// server is configured).
//
// A message is rendered and written to the outbox (Outbox.Enqueue) inside the transaction of
// the change that causes it, so it exists exactly when that change commits. A Worker sends it
// afterwards, retrying with backoff, so no request waits on SMTP and an SMTP outage delays
// mail instead of losing it. Bodies may hold one-time links; the outbox keeps a body only until
// the message is sent or given up, and logs name a message's kind and recipient, never its
// contents.
package mail

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Kind names a kind of message. Each kind has a text and an HTML template of the same name.
type Kind string

// The kinds Authly sends.
const (
	// KindVerifyEmail asks a new user to confirm their address; needs Data.Link and Data.ValidFor.
	KindVerifyEmail Kind = "verify_email"
	// KindPasswordReset carries a password reset link; needs Data.Link and Data.ValidFor.
	KindPasswordReset Kind = "password_reset"
	// KindEmailChangeConfirm goes to a new address to confirm an email change; needs Data.Link,
	// Data.ValidFor and Data.NewEmail.
	KindEmailChangeConfirm Kind = "email_change_confirm"
	// KindEmailChangedNotice tells the old address that the account's email changed; needs
	// Data.NewEmail and Data.At. Data.Link, when set, is where to act if the change was not
	// the owner's.
	KindEmailChangedNotice Kind = "email_changed_notice"
	// KindPasswordChangedNotice tells a user their password changed; needs Data.At. Data.Link,
	// when set, is where to act if the change was not the owner's.
	KindPasswordChangedNotice Kind = "password_changed_notice"
)

// kinds lists every kind, in a fixed order.
var kinds = []Kind{
	KindVerifyEmail, KindPasswordReset, KindEmailChangeConfirm,
	KindEmailChangedNotice, KindPasswordChangedNotice,
}

func (k Kind) known() bool {
	for _, known := range kinds {
		if k == known {
			return true
		}
	}
	return false
}

// needsLink reports whether the kind exists to carry a one-time link.
func (k Kind) needsLink() bool {
	return k == KindVerifyEmail || k == KindPasswordReset || k == KindEmailChangeConfirm
}

// Data is what a message's templates show. Which fields a kind needs is said at its constant.
type Data struct {
	Username string        // the account's username, for the greeting; optional
	Link     string        // an absolute http(s) URL, usually carrying a one-time token
	ValidFor time.Duration // how long Link works, shown as "1 hour" or "30 minutes"
	NewEmail string        // an email change's new address
	OldEmail string        // an email change's previous address
	At       time.Time     // when the change a notice reports happened, shown in UTC
}

// Message is one email to queue.
type Message struct {
	Kind Kind
	To   string // one bare address, such as alice@example.com
	Data Data
	// DiscardAfter, when set, is the instant after which the message is not worth sending,
	// typically when its link expires; the worker gives it up instead. Zero means never.
	DiscardAfter time.Time
}

// Rendered is a message's subject and bodies, as its templates produced them.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// Envelope is one message as the worker hands it to a Sender.
type Envelope struct {
	ID      uuid.UUID // the outbox row; stable across retries
	Kind    Kind
	From    string // the From header, such as "Authly <no-reply@example.com>"
	To      string
	Subject string
	Text    string
	HTML    string
	Date    time.Time // when the message was queued
}

// Sender delivers one message. Send returns an error wrapping ErrRejected when retrying cannot
// help (the server refused the recipient or the message for good); any other error is retried.
// A Sender may be called again with an envelope it already delivered (see Worker), so it
// should give the same envelope the same identity: both senders here derive the Message-ID
// header, and the file name, from Envelope.ID.
type Sender interface {
	Send(ctx context.Context, e Envelope) error
}

// ErrRejected marks a permanent delivery failure: an SMTP 5xx reply to the recipient or to the
// message itself. The worker gives such a message up at once instead of retrying it.
var ErrRejected = errors.New("mail: rejected permanently")
