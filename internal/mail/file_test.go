package mail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authly/authly/internal/gen/db"
	"github.com/authly/authly/internal/testdb"
)

func TestWithoutSMTPMessagesBecomeEMLFiles(t *testing.T) {
	pool := testdb.Pool(t)
	q := db.New(pool)
	dir := filepath.Join(t.TempDir(), "data", "mail")
	sender, err := NewFileSender(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorker(t, pool, sender, fastRetries(WorkerOptions{}))
	msgs := verifyMessages(2)
	ids := enqueue(t, pool, NewOutbox(mustTemplates(t, ""), ""), msgs...)

	res, err := w.Drain(t.Context())
	if err != nil || res != (Result{Sent: 2}) {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	if got := countStatus(t, q); got["sent"] != 2 {
		t.Errorf("statuses %v, want 2 sent", got)
	}

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("the mail directory has mode %#o, want 0700", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries in the mail directory, want 2 files and no temporary ones: %v", len(entries), entries)
	}
	for i, id := range ids {
		matches, _ := filepath.Glob(filepath.Join(dir, "*-"+id.String()+".eml"))
		if len(matches) != 1 {
			t.Fatalf("no .eml file for message %s", id)
		}
		info, err := os.Stat(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %#o, want 0600: it holds a one-time link", matches[0], perm)
		}
		data, err := os.ReadFile(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		m := parseMessage(t, data)
		if m.Header.Get("To") != "<"+msgs[i].To+">" && m.Header.Get("To") != msgs[i].To {
			t.Errorf("To = %q, want %s", m.Header.Get("To"), msgs[i].To)
		}
		if m.Header.Get("Message-ID") != "<"+id.String()+"@auth.example.com>" {
			t.Errorf("Message-ID = %q", m.Header.Get("Message-ID"))
		}
		if !strings.Contains(m.Text, msgs[i].Data.Link) || !strings.Contains(m.HTML, strings.ReplaceAll(msgs[i].Data.Link, "&", "&amp;")) {
			t.Errorf("the file lacks the message's link")
		}
	}
}

func TestWritingAMessageTwiceLeavesOneFile(t *testing.T) {
	dir := t.TempDir()
	sender, err := NewFileSender(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := testEnvelope("alice@example.com")
	for range 2 {
		if err := sender.Send(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), e.ID.String()+".eml") {
		t.Errorf("entries = %v, want the one message's file", entries)
	}
}
