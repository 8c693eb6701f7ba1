package mail

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		raw  string
		want SMTPServer
	}{
		{"smtp://mail.example.com", SMTPServer{"mail.example.com", 587, SecuritySTARTTLS}},
		{"smtp://mail.example.com:25", SMTPServer{"mail.example.com", 25, SecuritySTARTTLS}},
		{"SMTP://Mail.Example.com:2525/", SMTPServer{"Mail.Example.com", 2525, SecuritySTARTTLS}},
		{"smtps://mail.example.com", SMTPServer{"mail.example.com", 465, SecurityImplicitTLS}},
		{"smtps://127.0.0.1:1465", SMTPServer{"127.0.0.1", 1465, SecurityImplicitTLS}},
		{"smtp://localhost:25", SMTPServer{"localhost", 25, SecurityLoopbackPlain}},
		{"smtp://127.0.0.1:2525", SMTPServer{"127.0.0.1", 2525, SecurityLoopbackPlain}},
		{"smtp://127.9.9.9", SMTPServer{"127.9.9.9", 587, SecurityLoopbackPlain}},
		{"smtp://[::1]:25", SMTPServer{"::1", 25, SecurityLoopbackPlain}},
		// Names are not resolved: only localhost itself counts as loopback.
		{"smtp://localhost.example.com:25", SMTPServer{"localhost.example.com", 25, SecuritySTARTTLS}},
		{"smtp://10.0.0.5:25", SMTPServer{"10.0.0.5", 25, SecuritySTARTTLS}},
	}
	for _, tt := range tests {
		t.Run(tt.raw+" is "+tt.want.Security.String(), func(t *testing.T) {
			got, err := ParseSMTPURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseSMTPURL: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	refused := []struct {
		name, raw, want string
	}{
		{"an empty URL", "", "must start with smtp://"},
		{"another scheme", "http://mail.example.com", "must start with smtp://"},
		{"credentials in the URL", "smtp://user:hunter2-secret@mail.example.com", "must not hold credentials"},
		{"a path", "smtp://mail.example.com/relay", "must be only a scheme, a host and a port"},
		{"a query", "smtp://mail.example.com?tls=off", "must be only a scheme, a host and a port"},
		{"no host", "smtp://:25", "must name a host"},
		{"port zero", "smtp://mail.example.com:0", "port from 1 to 65535"},
		{"a port too high", "smtp://mail.example.com:70000", "port from 1 to 65535"},
		{"a host and port without a scheme", "mail.example.com:25", "smtp://"},
	}
	for _, tt := range refused {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := ParseSMTPURL(tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats the password: %v", err)
			}
		})
	}
}

func TestNewSMTPSenderRefusesPlaintextToARemoteHost(t *testing.T) {
	for _, host := range []string{"mail.example.com", "10.0.0.5", "localhost.example.com"} {
		_, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{host, 25, SecurityLoopbackPlain}})
		if err == nil || !strings.Contains(err.Error(), "without TLS") {
			t.Errorf("plaintext to %s: err = %v, want a refusal", host, err)
		}
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{host, 25, SecurityLoopbackPlain}}); err != nil {
			t.Errorf("plaintext to loopback %s: %v", host, err)
		}
	}
	if _, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{"mail.example.com", 25, SecuritySTARTTLS}, Password: "x"}); err == nil {
		t.Error("a password without a username was accepted")
	}
}

// testEnvelope is a message as the worker would hand it over, with a link carrying a token.
func testEnvelope(to string) Envelope {
	id := uuid.New()
	return Envelope{
		ID:      id,
		Kind:    KindVerifyEmail,
		From:    "Authly Test <no-reply@auth.example.com>",
		To:      to,
		Subject: "Confirm your email address",
		Text:    "Open https://auth.example.com/verify?token=" + id.String() + "&lang=en\n",
		HTML:    `<p><a href="https://auth.example.com/verify?token=` + id.String() + `&amp;lang=en">Confirm</a></p>`,
		Date:    time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
	}
}

func TestSMTPSenderOverSTARTTLSWithAuthentication(t *testing.T) {
	pki := newTestPKI(t)
	server := startSMTP(t, smtpConfig{tls: pki.serverTLS, username: "authly", password: "s3cret-smtp-pass"})

	send := func(username, password string) error {
		t.Helper()
		sender, err := NewSMTPSender(SMTPOptions{
			// SecuritySTARTTLS, as smtp:// to a remote host gets, although the test server is
			// on loopback.
			Server:   SMTPServer{server.host(), server.port(), SecuritySTARTTLS},
			Username: username, Password: password,
			RootCAs: pki.roots,
			Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		return sender.Send(t.Context(), testEnvelope("alice@example.com"))
	}

	t.Run("good credentials deliver over TLS", func(t *testing.T) {
		if err := send("authly", "s3cret-smtp-pass"); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := server.received()
		if len(got) != 1 {
			t.Fatalf("the server received %d messages, want 1", len(got))
		}
		if !got[0].TLS || got[0].User != "authly" {
			t.Errorf("TLS = %v, user = %q; want an encrypted, authenticated session", got[0].TLS, got[0].User)
		}
		if got[0].From != "no-reply@auth.example.com" || strings.Join(got[0].To, ",") != "alice@example.com" {
			t.Errorf("envelope from %q to %v", got[0].From, got[0].To)
		}
	})

	t.Run("bad credentials deliver nothing and are worth retrying", func(t *testing.T) {
		before := len(server.received())
		err := send("authly", "wrong-password-42")
		if err == nil {
			t.Fatal("Send succeeded with a wrong password")
		}
		if errors.Is(err, ErrRejected) {
			t.Errorf("an authentication failure is permanent: %v", err)
		}
		if strings.Contains(err.Error(), "wrong-password-42") {
			t.Errorf("the error repeats the password: %v", err)
		}
		if server.authFailures() == 0 {
			t.Error("the server saw no failed AUTH; the client never tried")
		}
		if n := len(server.received()); n != before {
			t.Errorf("the server received %d new messages", n-before)
		}
	})

	t.Run("no credentials are refused by a server that requires them", func(t *testing.T) {
		if err := send("", ""); err == nil {
			t.Fatal("Send succeeded without authenticating")
		}
	})
}

func TestSMTPSenderRefusesAServerWithoutSTARTTLS(t *testing.T) {
	server := startSMTP(t, smtpConfig{}) // plaintext only
	sender, err := NewSMTPSender(SMTPOptions{
		Server:   SMTPServer{server.host(), server.port(), SecuritySTARTTLS},
		Username: "authly", Password: "never-in-plaintext",
	})
	if err != nil {
		t.Fatal(err)
	}
	err = sender.Send(t.Context(), testEnvelope("alice@example.com"))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a refusal for the missing STARTTLS", err)
	}
	if n := len(server.received()); n != 0 {
		t.Errorf("the server received %d messages over plaintext", n)
	}
	if server.authFailures() != 0 {
		t.Error("credentials were sent over plaintext")
	}
}

func TestSMTPSenderRefusesAnUntrustedCertificate(t *testing.T) {
	pki := newTestPKI(t)
	server := startSMTP(t, smtpConfig{tls: pki.serverTLS})
	sender, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{server.host(), server.port(), SecuritySTARTTLS}}) // system roots
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(t.Context(), testEnvelope("alice@example.com")); err == nil {
		t.Fatal("Send trusted a certificate from an unknown authority")
	}
	if n := len(server.received()); n != 0 {
		t.Errorf("the server received %d messages", n)
	}
}

func TestSMTPSenderOverImplicitTLS(t *testing.T) {
	pki := newTestPKI(t)
	server := startSMTP(t, smtpConfig{tls: pki.serverTLS, implicit: true, username: "authly", password: "pw-implicit"})
	u, err := ParseSMTPURL(fmt.Sprintf("smtps://%s:%d", server.host(), server.port()))
	if err != nil {
		t.Fatal(err)
	}
	sender, err := NewSMTPSender(SMTPOptions{Server: u, Username: "authly", Password: "pw-implicit", RootCAs: pki.roots})
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(t.Context(), testEnvelope("bob@example.com")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := server.received(); len(got) != 1 || !got[0].TLS || got[0].User != "authly" {
		t.Fatalf("received %+v, want one message over TLS from authly", got)
	}
}

func TestSMTPSenderToALoopbackRelay(t *testing.T) {
	t.Run("uses STARTTLS when the relay offers it", func(t *testing.T) {
		pki := newTestPKI(t)
		server := startSMTP(t, smtpConfig{tls: pki.serverTLS})
		u, err := ParseSMTPURL(fmt.Sprintf("smtp://%s:%d", server.host(), server.port()))
		if err != nil {
			t.Fatal(err)
		}
		if u.Security != SecurityLoopbackPlain {
			t.Fatalf("security = %v, want loopback", u.Security)
		}
		sender, err := NewSMTPSender(SMTPOptions{Server: u, RootCAs: pki.roots})
		if err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(t.Context(), testEnvelope("carol@example.com")); err != nil {
			t.Fatal(err)
		}
		if got := server.received(); len(got) != 1 || !got[0].TLS {
			t.Fatalf("received %+v, want one message over TLS", got)
		}
	})
	t.Run("sends in plaintext when it does not", func(t *testing.T) {
		server := startSMTP(t, smtpConfig{})
		u, err := ParseSMTPURL(fmt.Sprintf("smtp://localhost:%d", server.port()))
		if err != nil {
			t.Fatal(err)
		}
		sender, err := NewSMTPSender(SMTPOptions{Server: u})
		if err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(t.Context(), testEnvelope("carol@example.com")); err != nil {
			t.Fatal(err)
		}
		if got := server.received(); len(got) != 1 || got[0].TLS {
			t.Fatalf("received %+v, want one message in plaintext", got)
		}
	})
}

func TestSMTPSenderMarksAnUnknownRecipientAsRejected(t *testing.T) {
	server := startSMTP(t, smtpConfig{rejectRcpt: map[string]bool{"nobody@example.com": true}})
	sender, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{server.host(), server.port(), SecurityLoopbackPlain}})
	if err != nil {
		t.Fatal(err)
	}
	err = sender.Send(t.Context(), testEnvelope("nobody@example.com"))
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	if !strings.Contains(err.Error(), "5.1.1") {
		t.Errorf("err = %v, want the server's reply in it", err)
	}
}

func TestSMTPMessageContents(t *testing.T) {
	server := startSMTP(t, smtpConfig{})
	sender, err := NewSMTPSender(SMTPOptions{Server: SMTPServer{"localhost", server.port(), SecurityLoopbackPlain}})
	if err != nil {
		t.Fatal(err)
	}
	outbox := NewOutbox(mustTemplates(t, ""), "Example")
	link := "https://auth.example.com/verify-email?token=tok_" + strings.Repeat("x", 60) + "&next=%2Fhome"
	r, err := outbox.Render(Message{Kind: KindVerifyEmail, To: "dave@example.com",
		Data: Data{Username: "dave", Link: link, ValidFor: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{ID: uuid.New(), Kind: KindVerifyEmail, From: `"Example Accounts" <accounts@example.com>`,
		To: "dave@example.com", Subject: r.Subject, Text: r.Text, HTML: r.HTML,
		Date: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	if err := sender.Send(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	got := server.received()
	if len(got) != 1 {
		t.Fatalf("received %d messages", len(got))
	}
	m := parseMessage(t, got[0].Data)

	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Example Accounts" || from[0].Address != "accounts@example.com" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if to, err := m.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "dave@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if s := m.Header.Get("Subject"); s != "Confirm your email address" {
		t.Errorf("Subject = %q", s)
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(env.Date) {
		t.Errorf("Date = %v (%v), want %v", d, err, env.Date)
	}
	if id := m.Header.Get("Message-ID"); id != "<"+env.ID.String()+"@example.com>" {
		t.Errorf("Message-ID = %q, want one made of the outbox id", id)
	}
	if v := m.Header.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", v)
	}
	if v := m.Header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	for _, want := range []string{"Hello dave,", "dave@example.com", "Example", link, "expires in 1 day"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("the text part lacks %q:\n%s", want, m.Text)
		}
	}
	escaped := strings.ReplaceAll(link, "&", "&amp;")
	for _, want := range []string{`<html lang="en">`, `<title>Confirm your email address</title>`, `href="` + escaped + `"`, "Hello dave,", "expires in 1 day"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("the HTML part lacks %q:\n%s", want, m.HTML)
		}
	}
	for _, external := range []string{"<img", "<script", "<link", "src=", "url("} {
		if strings.Contains(m.HTML, external) {
			t.Errorf("the HTML part loads something (%q)", external)
		}
	}
}
