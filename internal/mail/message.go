package mail

import (
	"fmt"
	netmail "net/mail"

	gomail "github.com/wneessen/go-mail"
)

// buildMessage turns e into a MIME message: multipart/alternative with the text part first
// and the HTML part second, as RFC 2046 orders them (last is preferred). The Message-ID is
// derived from the outbox id, so that a message delivered twice (see Worker) carries the same
// id both times and mail clients can tell the copies are one message.
func buildMessage(e Envelope) (*gomail.Msg, error) {
	from, err := netmail.ParseAddress(e.From)
	if err != nil {
		return nil, fmt.Errorf("mail: From: %w", err)
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.FromMailAddress(from)
	if err := m.To(e.To); err != nil {
		return nil, fmt.Errorf("mail: To: %w", err)
	}
	m.Subject(e.Subject)
	m.SetDateWithValue(e.Date)
	m.SetMessageIDWithValue(e.ID.String() + "@" + domainOf(from.Address))
	// RFC 3834: an automatic message; auto-responders (vacation replies) should not answer.
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	m.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	m.SetBodyString(gomail.TypeTextPlain, e.Text)
	m.AddAlternativeString(gomail.TypeTextHTML, e.HTML)
	return m, nil
}

// domainOf returns the part of address after the last @.
func domainOf(address string) string {
	for i := len(address) - 1; i >= 0; i-- {
		if address[i] == '@' {
			return address[i+1:]
		}
	}
	return "localhost"
}
