package web

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

func TestThePageStyleIsTheOneTheCSPAllows(t *testing.T) {
	r, err := New("Example")
	if err != nil {
		t.Fatal(err)
	}
	html, err := r.Render(Page{Title: "T", Lines: []string{"a line"}})
	if err != nil {
		t.Fatal(err)
	}
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(html)
	if style == nil {
		t.Fatalf("no style in %s", html)
	}
	sum := sha256.Sum256(style[1])
	want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if !strings.Contains(r.CSP(), want) {
		t.Fatalf("CSP %q does not allow the page's style (%s)", r.CSP(), want)
	}
	for _, directive := range []string{"default-src 'none'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(r.CSP(), directive) {
			t.Errorf("CSP %q lacks %s", r.CSP(), directive)
		}
	}
	if strings.Contains(string(html), "<script") || strings.Contains(string(html), "http") {
		t.Errorf("the page loads or runs something:\n%s", html)
	}
}

func TestPagesEscapeWhatTheyShow(t *testing.T) {
	r, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	hostile := `"><script>alert(1)</script>`
	html, err := r.Render(Page{
		Title:  hostile,
		Lines:  []string{hostile},
		Errors: []string{hostile},
		Form:   &Form{Action: "reset-password", Token: hostile, Submit: hostile, Fields: []Field{{Name: "new_password", Label: hostile}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(html), "<script>") {
		t.Fatalf("a value was not escaped:\n%s", html)
	}
	for _, want := range []string{`<form method="post" action="reset-password">`, `name="new_password" type="password" autocomplete="new-password"`, "· Authly</title>"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the page lacks %s:\n%s", want, html)
		}
	}
}
