package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"
)

// embeddedTemplates holds the default templates: <kind>.txt (text/template) and <kind>.html
// (html/template) for every kind. The text template also defines "subject", the Subject
// header.
//
//go:embed templates/*.txt templates/*.html
var embeddedTemplates embed.FS

// maxTemplateFileSize bounds an override file; the embedded ones are about 2 KiB.
const maxTemplateFileSize = 256 << 10

// maxSubjectLen bounds a rendered subject, in characters.
const maxSubjectLen = 200

// Templates are the parsed text and HTML templates of every kind. Build them with
// LoadTemplates; they are safe for concurrent use.
type Templates struct {
	text map[Kind]*texttemplate.Template
	html map[Kind]*htmltemplate.Template
}

// view is what a template sees: the message's Data, formatted for people, and the context.
type view struct {
	SiteName string // the service's name, such as "Authly"
	To       string // the recipient
	Subject  string // the rendered subject (empty while the subject itself renders)
	Username string
	Link     string
	ValidFor string // "1 hour", "30 minutes"
	NewEmail string
	OldEmail string
	At       string // "2 January 2006 at 15:04 UTC"
}

// LoadTemplates parses the embedded templates and, when dir is not empty, the overrides in
// dir: a file there named like an embedded one (verify_email.txt, verify_email.html, …)
// replaces it. Every template is then rendered once with sample data, so that a template that
// does not parse, names a field that does not exist or renders an empty subject fails here,
// at start-up, rather than when a message is queued. Other .txt or .html files in dir are an
// error too, since a misspelt name would otherwise be silently ignored.
func LoadTemplates(dir string) (*Templates, error) {
	overrides := map[string]string{} // file name -> path
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		known := map[string]bool{}
		for _, k := range kinds {
			known[string(k)+".txt"], known[string(k)+".html"] = true, true
		}
		var unknown []string
		for _, e := range entries {
			name := e.Name()
			ext := filepath.Ext(name)
			if e.IsDir() || (ext != ".txt" && ext != ".html") {
				continue
			}
			if !known[name] {
				unknown = append(unknown, name)
				continue
			}
			overrides[name] = filepath.Join(dir, name)
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			var names []string
			for _, k := range kinds {
				names = append(names, string(k))
			}
			return nil, fmt.Errorf("mail templates: %s: unknown template file %s; the names are <kind>.txt and <kind>.html for the kinds %s",
				dir, strings.Join(unknown, ", "), strings.Join(names, ", "))
		}
	}

	t := &Templates{text: map[Kind]*texttemplate.Template{}, html: map[Kind]*htmltemplate.Template{}}
	var errs []error
	for _, k := range kinds {
		textName, htmlName := string(k)+".txt", string(k)+".html"
		textSrc, textFrom, err := templateSource(textName, overrides)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		htmlSrc, htmlFrom, err := templateSource(htmlName, overrides)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tt, err := texttemplate.New(textName).Option("missingkey=error").Parse(textSrc)
		if err != nil {
			errs = append(errs, fmt.Errorf("mail templates: %s: %w", textFrom, err))
			continue
		}
		if tt.Lookup("subject") == nil {
			errs = append(errs, fmt.Errorf(`mail templates: %s: must define the subject, as {{define "subject"}}…{{end}}`, textFrom))
			continue
		}
		ht, err := htmltemplate.New(htmlName).Option("missingkey=error").Parse(htmlSrc)
		if err != nil {
			errs = append(errs, fmt.Errorf("mail templates: %s: %w", htmlFrom, err))
			continue
		}
		t.text[k], t.html[k] = tt, ht
		if _, err := t.render(k, "Authly", "alice@example.com", sampleData()); err != nil {
			errs = append(errs, fmt.Errorf("mail templates: %s or %s: %w", textFrom, htmlFrom, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// templateSource returns the text of the template file name, from the overrides when one is
// there, and where it came from, for messages.
func templateSource(name string, overrides map[string]string) (src, from string, err error) {
	if path, ok := overrides[name]; ok {
		info, err := os.Stat(path)
		if err != nil {
			return "", path, fmt.Errorf("mail templates: %w", err)
		}
		if info.Size() > maxTemplateFileSize {
			return "", path, fmt.Errorf("mail templates: %s: larger than %d bytes", path, maxTemplateFileSize)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", path, fmt.Errorf("mail templates: %w", err)
		}
		if !utf8.Valid(b) {
			return "", path, fmt.Errorf("mail templates: %s: not valid UTF-8", path)
		}
		return string(b), path, nil
	}
	b, err := fs.ReadFile(embeddedTemplates, "templates/"+name)
	if err != nil {
		return "", name, fmt.Errorf("mail templates: embedded %s: %w", name, err) // a build defect
	}
	return string(b), "embedded " + name, nil
}

// sampleData fills every field, for the start-up check of the templates.
func sampleData() Data {
	return Data{
		Username: "alice",
		Link:     "https://auth.example.com/verify?token=sample",
		ValidFor: time.Hour,
		NewEmail: "alice@example.org",
		OldEmail: "alice@example.com",
		At:       time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC),
	}
}

// render runs the templates of kind k.
func (t *Templates) render(k Kind, siteName, to string, d Data) (Rendered, error) {
	tt, ht := t.text[k], t.html[k]
	if tt == nil || ht == nil {
		return Rendered{}, fmt.Errorf("mail: unknown kind %q", k)
	}
	v := view{
		SiteName: siteName,
		To:       to,
		Username: d.Username,
		Link:     d.Link,
		ValidFor: humanDuration(d.ValidFor),
		NewEmail: d.NewEmail,
		OldEmail: d.OldEmail,
	}
	if !d.At.IsZero() {
		v.At = d.At.UTC().Format("2 January 2006 at 15:04 UTC")
	}

	var subject bytes.Buffer
	if err := tt.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Rendered{}, fmt.Errorf("subject: %w", err)
	}
	v.Subject = strings.Join(strings.Fields(subject.String()), " ")
	switch {
	case v.Subject == "":
		return Rendered{}, errors.New("the subject is empty")
	case utf8.RuneCountInString(v.Subject) > maxSubjectLen:
		return Rendered{}, fmt.Errorf("the subject is longer than %d characters", maxSubjectLen)
	}

	var text, html bytes.Buffer
	if err := tt.Execute(&text, v); err != nil {
		return Rendered{}, fmt.Errorf("text: %w", err)
	}
	if err := ht.Execute(&html, v); err != nil {
		return Rendered{}, fmt.Errorf("html: %w", err)
	}
	if strings.TrimSpace(text.String()) == "" || strings.TrimSpace(html.String()) == "" {
		return Rendered{}, errors.New("a body is empty")
	}
	return Rendered{Subject: v.Subject, Text: text.String(), HTML: html.String()}, nil
}

// humanDuration writes d for people: "45 minutes", "1 hour", "1 hour 30 minutes", "2 days".
// It rounds down to whole minutes (but says at least 1 minute), so a link is not said to live
// longer than it does.
func humanDuration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	minutes := max(1, int64(d/time.Minute))
	days, hours, mins := minutes/(24*60), minutes/60%24, minutes%60
	unit := func(n int64, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	var parts []string
	if days > 0 && hours == 0 && mins == 0 {
		return unit(days, "day", "days")
	}
	if h := days*24 + hours; h > 0 {
		parts = append(parts, unit(h, "hour", "hours"))
	}
	if mins > 0 {
		parts = append(parts, unit(mins, "minute", "minutes"))
	}
	return strings.Join(parts, " ")
}
