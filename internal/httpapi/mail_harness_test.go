package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/authly/authly/internal/mail"
)

// mailbox is a real SMTP server (github.com/emersion/go-smtp) on a loopback port, keeping
// every message it receives, as the recipient's mail server would.
type mailbox struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	msgs []*delivered
}

// delivered is one message as a mail client would show it.
type delivered struct {
	To      string
	Subject string
	Text    string
	HTML    string
	taken   bool
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &mailbox{t: t, addr: ln.Addr().String()}
	srv := smtp.NewServer(smtpBackend{b})
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = discardLog{}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

type smtpBackend struct{ box *mailbox }

func (b smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &smtpSession{box: b.box}, nil
}

type smtpSession struct {
	box *mailbox
	to  []string
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *smtpSession) Reset()        { s.to = nil }
func (s *smtpSession) Logout() error { return nil }

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	d, err := parseDelivered(data)
	if err != nil {
		s.box.t.Errorf("the SMTP server got a message no mail client could read: %v\n%s", err, data)
		return err
	}
	if len(s.to) != 1 || !strings.EqualFold(s.to[0], d.To) {
		s.box.t.Errorf("envelope recipients %v, To %s", s.to, d.To)
	}
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, d)
	s.box.mu.Unlock()
	return nil
}

// parseDelivered takes a multipart/alternative message apart.
func parseDelivered(data []byte) (*delivered, error) {
	msg, err := netmail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		return nil, err
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return nil, err
	}
	to, err := netmail.ParseAddress(msg.Header.Get("To"))
	if err != nil {
		return nil, err
	}
	d := &delivered{To: to.Address, Subject: subject}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var body io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(part)
		}
		content, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		switch ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct {
		case "text/plain":
			d.Text = string(content)
		case "text/html":
			d.HTML = string(content)
		}
	}
	if d.Text == "" || d.HTML == "" {
		return nil, fmt.Errorf("a part is missing")
	}
	return d, nil
}

// next waits for the first message to "to" with subject that no earlier call took, and takes
// it.
func (b *mailbox) next(to, subject string) *delivered {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.mu.Lock()
		for _, m := range b.msgs {
			if !m.taken && strings.EqualFold(m.To, to) && m.Subject == subject {
				m.taken = true
				b.mu.Unlock()
				return m
			}
		}
		var seen []string
		for _, m := range b.msgs {
			seen = append(seen, m.To+": "+m.Subject)
		}
		b.mu.Unlock()
		if time.Now().After(deadline) {
			b.t.Fatalf("no message %q to %s arrived; the server has %v", subject, to, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// count is how many messages arrived to "to".
func (b *mailbox) count(to string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.msgs {
		if strings.EqualFold(m.To, to) {
			n++
		}
	}
	return n
}

// countSubject is how many messages with subject arrived to "to".
func (b *mailbox) countSubject(to, subject string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.msgs {
		if strings.EqualFold(m.To, to) && m.Subject == subject {
			n++
		}
	}
	return n
}

// Subjects of the embedded templates.
const (
	subjectVerify          = "Confirm your email address"
	subjectReset           = "Reset your password"
	subjectEmailChange     = "Confirm your new email address"
	subjectEmailChanged    = "Your email address was changed"
	subjectPasswordChanged = "Your password was changed"
)

var linkPattern = regexp.MustCompile(`(https?://[^\s"<>]+)\?token=([A-Za-z0-9_-]+)`)

// link returns the page URL and token of the one-time link in a message's text, and checks
// the HTML part carries the same link.
func (m *delivered) link(t *testing.T, page string) (string, string) {
	t.Helper()
	found := linkPattern.FindStringSubmatch(m.Text)
	if found == nil || !strings.HasSuffix(found[1], page) {
		t.Fatalf("no %s link in %q:\n%s", page, m.Subject, m.Text)
	}
	if !strings.Contains(m.HTML, found[0]) {
		t.Fatalf("the HTML part lacks the text part's link %s", found[0])
	}
	return found[1], found[2]
}

// token returns the token of the one-time link to page in a message.
func (m *delivered) token(t *testing.T, page string) string {
	t.Helper()
	_, tok := m.link(t, page)
	return tok
}

// withMailbox gives e a running outbox worker that sends through SMTP to box, as serve does.
func (e *env) withMailbox(box *mailbox) *env {
	e.t.Helper()
	host, port, _ := strings.Cut(box.addr, ":")
	server, err := mail.ParseSMTPURL("smtp://" + host + ":" + port)
	if err != nil {
		e.t.Fatal(err)
	}
	sender, err := mail.NewSMTPSender(mail.SMTPOptions{Server: server, Timeout: 10 * time.Second, HelloName: "localhost"})
	if err != nil {
		e.t.Fatal(err)
	}
	worker, err := mail.NewWorker(e.pool, sender, mail.WorkerOptions{From: "Authly <authly@example.com>", PollInterval: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = worker.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return e
}
