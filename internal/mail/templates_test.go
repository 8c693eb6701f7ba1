package mail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustTemplates(t *testing.T, dir string) *Templates {
	t.Helper()
	tmpl, err := LoadTemplates(dir)
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	return tmpl
}

// fullMessage is a valid message of kind k.
func fullMessage(k Kind) Message {
	return Message{Kind: k, To: "alice@example.com", Data: Data{
		Username: "alice",
		Link:     "https://auth.example.com/act?token=T0KEN-" + string(k) + "&a=1",
		ValidFor: 90 * time.Minute,
		NewEmail: "alice@example.org",
		OldEmail: "alice@example.com",
		At:       time.Date(2026, 2, 3, 4, 5, 0, 0, time.FixedZone("CET", 3600)),
	}}
}

func TestEveryKindRendersItsSubjectAndBothBodies(t *testing.T) {
	outbox := NewOutbox(mustTemplates(t, ""), "")
	subjects := map[Kind]string{
		KindVerifyEmail:           "Confirm your email address",
		KindPasswordReset:         "Reset your password",
		KindEmailChangeConfirm:    "Confirm your new email address",
		KindEmailChangedNotice:    "Your email address was changed",
		KindPasswordChangedNotice: "Your password was changed",
	}
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			m := fullMessage(k)
			r, err := outbox.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			if r.Subject != subjects[k] {
				t.Errorf("subject = %q, want %q", r.Subject, subjects[k])
			}
			escapedLink := strings.ReplaceAll(m.Data.Link, "&", "&amp;")
			for _, want := range []string{"Hello alice,", "Authly", m.Data.Link} {
				if !strings.Contains(r.Text, want) {
					t.Errorf("text lacks %q:\n%s", want, r.Text)
				}
			}
			for _, want := range []string{"Hello alice,", "Authly", `href="` + escapedLink + `"`, "<title>" + subjects[k] + "</title>", `lang="en"`} {
				if !strings.Contains(r.HTML, want) {
					t.Errorf("HTML lacks %q:\n%s", want, r.HTML)
				}
			}
			if strings.Contains(r.Text, "{{") || strings.Contains(r.HTML, "{{") {
				t.Error("a template action was left unrendered")
			}
			switch k {
			case KindVerifyEmail, KindPasswordReset, KindEmailChangeConfirm:
				if !strings.Contains(r.Text, "1 hour 30 minutes") {
					t.Errorf("text does not say how long the link works:\n%s", r.Text)
				}
			default:
				if !strings.Contains(r.Text, "3 February 2026 at 03:05 UTC") {
					t.Errorf("text does not say when, in UTC:\n%s", r.Text)
				}
			}
		})
	}
}

func TestNoticesWithoutALinkPointToTheAdministrator(t *testing.T) {
	outbox := NewOutbox(mustTemplates(t, ""), "Example")
	for _, k := range []Kind{KindEmailChangedNotice, KindPasswordChangedNotice} {
		m := fullMessage(k)
		m.Data.Link = ""
		r, err := outbox.Render(m)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Text, "Contact the administrator of Example") || strings.Contains(r.HTML, "href=") {
			t.Errorf("%s without a link:\n%s\n%s", k, r.Text, r.HTML)
		}
	}
}

func TestHTMLEscapesWhatItShows(t *testing.T) {
	outbox := NewOutbox(mustTemplates(t, ""), `Acme <b>&</b>`)
	m := fullMessage(KindVerifyEmail)
	m.Data.Username = `<script>alert("x")</script>`
	r, err := outbox.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, "<script>") || strings.Contains(r.HTML, "<b>") {
		t.Errorf("the HTML body holds unescaped markup:\n%s", r.HTML)
	}
	if !strings.Contains(r.HTML, "&lt;script&gt;") || !strings.Contains(r.HTML, "Acme &lt;b&gt;&amp;&lt;/b&gt;") {
		t.Errorf("the HTML body does not show the escaped text:\n%s", r.HTML)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := map[time.Duration]string{
		30 * time.Second:                "1 minute",
		time.Minute:                     "1 minute",
		45 * time.Minute:                "45 minutes",
		time.Hour:                       "1 hour",
		90*time.Minute + 59*time.Second: "1 hour 30 minutes",
		24 * time.Hour:                  "1 day",
		72 * time.Hour:                  "3 days",
		25 * time.Hour:                  "25 hours",
	}
	for d, want := range tests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func writeTemplate(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAnOverrideReplacesTheEmbeddedTemplateOfTheSameName(t *testing.T) {
	dir := t.TempDir()
	writeTemplate(t, dir, "password_reset.txt", `{{define "subject"}}{{.SiteName}}: new password{{end}}Reset it here: {{.Link}}`)
	writeTemplate(t, dir, "README.md", "notes for operators are ignored")
	outbox := NewOutbox(mustTemplates(t, dir), "Example")

	r, err := outbox.Render(fullMessage(KindPasswordReset))
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "Example: new password" || !strings.HasPrefix(r.Text, "Reset it here: https://") {
		t.Errorf("the override was not used: %q / %q", r.Subject, r.Text)
	}
	if !strings.Contains(r.HTML, "Choose a new password") {
		t.Errorf("the HTML, not overridden, should be the embedded one:\n%s", r.HTML)
	}
	other, err := outbox.Render(fullMessage(KindVerifyEmail))
	if err != nil || other.Subject != "Confirm your email address" {
		t.Errorf("another kind changed: %q, %v", other.Subject, err)
	}
}

func TestABrokenOverrideFailsLoading(t *testing.T) {
	tests := []struct {
		name, file, content, want string
	}{
		{"a template that does not parse", "verify_email.txt", `{{define "subject"}}Hi{{end}}{{.Link`, "verify_email.txt"},
		{"a field that does not exist", "verify_email.html", `<p>{{.Token}}</p>`, "Token"},
		{"a text template without a subject", "password_reset.txt", `Reset: {{.Link}}`, "must define the subject"},
		{"an empty subject", "password_reset.txt", `{{define "subject"}} {{end}}Reset: {{.Link}}`, "the subject is empty"},
		{"a misspelt file name", "verify-email.txt", `{{define "subject"}}Hi{{end}}x`, "unknown template file verify-email.txt"},
		{"HTML that cannot be escaped safely", "verify_email.html", `<a href="{{.Link}}`, "verify_email.html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTemplate(t, dir, tt.file, tt.content)
			_, err := LoadTemplates(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	t.Run("a missing directory", func(t *testing.T) {
		if _, err := LoadTemplates(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("a missing directory was accepted")
		}
	})
}

func TestRenderRefusesIncompleteMessages(t *testing.T) {
	outbox := NewOutbox(mustTemplates(t, ""), "")
	token := "SECRET-TOKEN-123"
	tests := []struct {
		name   string
		change func(*Message)
		want   string
	}{
		{"an unknown kind", func(m *Message) { m.Kind = "welcome" }, "unknown kind"},
		{"no recipient", func(m *Message) { m.To = "" }, "To: is required"},
		{"a recipient with a display name", func(m *Message) { m.To = "Alice <alice@example.com>" }, "bare address"},
		{"two recipients", func(m *Message) { m.To = "a@example.com, b@example.com" }, "bare address"},
		{"a header injection", func(m *Message) { m.To = "a@example.com\r\nBcc: b@example.com" }, "control characters"},
		{"a verification without a link", func(m *Message) { m.Data.Link = "" }, "Link is required"},
		{"a javascript link", func(m *Message) { m.Data.Link = "javascript:alert(1)//" + token }, "absolute http or https URL"},
		{"a relative link", func(m *Message) { m.Data.Link = "/verify?token=" + token }, "absolute http or https URL"},
		{"a link with spaces", func(m *Message) { m.Data.Link = "https://a.example/ x?token=" + token }, "spaces"},
		{"no validity", func(m *Message) { m.Data.ValidFor = 0 }, "ValidFor is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fullMessage(KindVerifyEmail)
			tt.change(&m)
			_, err := outbox.Render(m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error repeats the link's token: %v", err)
			}
		})
	}
	t.Run("an email change without the new address", func(t *testing.T) {
		m := fullMessage(KindEmailChangeConfirm)
		m.Data.NewEmail = ""
		if _, err := outbox.Render(m); err == nil || !strings.Contains(err.Error(), "NewEmail") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a notice without its time", func(t *testing.T) {
		m := fullMessage(KindPasswordChangedNotice)
		m.Data.At = time.Time{}
		if _, err := outbox.Render(m); err == nil || !strings.Contains(err.Error(), "At is required") {
			t.Fatalf("err = %v", err)
		}
	})
}
