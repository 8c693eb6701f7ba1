// Package web owns the server-rendered pages that the emailed one-time links open: verify an
// email address, set a new password, confirm an email change. They are html/template pages
// embedded in the binary, with one inline style allowed by its hash in a strict
// Content-Security-Policy, no script and nothing loaded from elsewhere.
//
// A page never changes anything when it is fetched: mail scanners and link previews fetch
// links too. Its form posts the link's token back, and only that post acts. The token in the
// form is what makes the post legitimate, so no other anti-forgery token is needed: a page on
// another site cannot post a token it does not know. This package renders; the transport
// (internal/httpapi) serves the pages and calls the domain.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"strings"
)

//go:embed templates/page.html templates/style.css
var files embed.FS

// Page is what one page shows.
type Page struct {
	Title  string
	Lines  []string // paragraphs
	Errors []string // shown prominently, such as why a password was refused
	Form   *Form    // nil for a page without a form
}

// Form posts a link's token back, with password fields when the page asks for a password.
type Form struct {
	// Action is where the form posts: the page's own last path segment, relative, so that it
	// works behind a proxy that serves Authly under a path prefix, and never carries the
	// link's query string.
	Action string
	Token  string
	Fields []Field
	Submit string // the button's label
}

// Field is a password input of a form.
type Field struct {
	Name  string
	Label string
}

// Renderer renders the pages. Build it with New; it is safe for concurrent use.
type Renderer struct {
	tmpl     *template.Template
	siteName string
	csp      string
}

// New parses the embedded templates. siteName is how pages name the service.
func New(siteName string) (*Renderer, error) {
	style, err := files.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	css := strings.TrimSpace(string(style))
	tmpl, err := template.New("style").Parse(css)
	if err != nil {
		return nil, err
	}
	if _, err := tmpl.ParseFS(files, "templates/page.html"); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(css))
	if strings.TrimSpace(siteName) == "" {
		siteName = "Authly"
	}
	return &Renderer{
		tmpl:     tmpl,
		siteName: siteName,
		// Nothing may load but the one inline style, identified by its hash; forms post only
		// here; no base element may redirect relative URLs; no site may frame the page.
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	}, nil
}

// CSP is the Content-Security-Policy every page is served with.
func (r *Renderer) CSP() string { return r.csp }

// Render returns p as an HTML document.
func (r *Renderer) Render(p Page) ([]byte, error) {
	var buf bytes.Buffer
	err := r.tmpl.ExecuteTemplate(&buf, "page.html", struct {
		Page
		SiteName string
	}{p, r.siteName})
	return buf.Bytes(), err
}
