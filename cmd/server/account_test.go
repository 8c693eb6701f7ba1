package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authly/authly/internal/testdb"
)

// smtpSink is a real SMTP server on a loopback port that keeps what it receives.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{addr: ln.Addr().String()}
	srv := smtp.NewServer(sinkBackend{s})
	srv.Domain = "localhost"
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

type sinkBackend struct{ s *smtpSink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession(b), nil }

type sinkSession struct{ s *smtpSink }

func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (ss sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, string(b))
	ss.s.mu.Unlock()
	return err
}

// waitFor returns the first message containing want, waiting for it to arrive.
func (s *smtpSink) waitFor(t *testing.T, want string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		for _, m := range s.msgs {
			if strings.Contains(m, want) {
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
	}
	t.Fatalf("no message with %q arrived", want)
	return ""
}

func postJSON(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// quotedLink finds a link in a message body, undoing quoted-printable soft line breaks.
var quotedLink = regexp.MustCompile(`https://auth\.example\.com/verify-email\?token=([A-Za-z0-9_-]+)`)

// serve runs the outbox worker: a registration's verification mail reaches the SMTP server,
// with a link on AUTHLY_PUBLIC_URL whose token verifies the address.
func TestServeSendsAccountMailThroughSMTP(t *testing.T) {
	sink := startSMTPSink(t)
	base, stop := startServe(t, map[string]string{
		"DATABASE_URL": testdb.URL(t), "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK,
		"AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_BCRYPT_COST": "4",
		"AUTHLY_SMTP_URL": "smtp://" + sink.addr, "AUTHLY_MAIL_FROM": "Example <no-reply@example.com>",
		"AUTHLY_PUBLIC_URL": "https://auth.example.com/",
	})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	if resp := postJSON(t, base+"/api/v1/users", `{"username":"zoe","email":"zoe@example.com","password":"correct horse battery staple"}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	msg := sink.waitFor(t, "zoe@example.com")
	unfolded := strings.ReplaceAll(strings.ReplaceAll(msg, "=\r\n", ""), "=3D", "=")
	m := quotedLink.FindStringSubmatch(unfolded)
	if m == nil {
		t.Fatalf("no link on the public URL in:\n%s", msg)
	}
	body, _ := json.Marshal(map[string]string{"token": m[1]})
	if resp := postJSON(t, base+"/api/v1/auth/verify-email", string(body)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("verify: %d", resp.StatusCode)
	}
	if resp := postJSON(t, base+"/api/v1/auth/token", `{"grant_type":"password","username":"zoe","password":"correct horse battery staple"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("login after verifying: %d", resp.StatusCode)
	}
}

// Without SMTP, AUTHLY_MAIL_DIR receives every message as an .eml file.
func TestServeWritesMailToTheMailDirectory(t *testing.T) {
	dir := t.TempDir()
	base, stop := startServe(t, map[string]string{
		"DATABASE_URL": testdb.URL(t), "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK,
		"AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_BCRYPT_COST": "4", "AUTHLY_MAIL_DIR": dir,
	})
	defer func() { _ = stop() }()
	if resp := postJSON(t, base+"/api/v1/users", `{"username":"yves","email":"yves@example.com","password":"correct horse battery staple"}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		if len(files) == 1 {
			b, err := os.ReadFile(files[0])
			if err != nil || !bytes.Contains(b, []byte("yves@example.com")) || !bytes.Contains(b, []byte("http://127.0.0.1:8000/verify-email")) {
				t.Fatalf("%s: %v\n%s", files[0], err, b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d .eml files in %s, want 1", len(files), dir)
		}
	}
}

// With a database of its own and no way for mail to leave, Authly refuses to start and says
// what to set.
func TestServeWithoutAWayForMailRefusesToStart(t *testing.T) {
	err := run(context.Background(), []string{"serve"}, envFrom(map[string]string{
		"DATABASE_URL": testdb.URL(t), "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK,
		"AUTHLY_LISTEN_ADDR": "127.0.0.1:0",
	}), nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "AUTHLY_SMTP_URL") || !strings.Contains(err.Error(), "AUTHLY_MAIL_DIR") {
		t.Fatalf("want an error naming AUTHLY_SMTP_URL and AUTHLY_MAIL_DIR, got %v", err)
	}
}

// seedUser migrates the database at url and adds an ordinary, verified user.
func seedUser(t *testing.T, url, username, email string) {
	t.Helper()
	if err := run(context.Background(), []string{"migrate", "up"}, envFrom(map[string]string{
		"DATABASE_URL": url, "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK,
	}), nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(),
		`INSERT INTO users (username, email, password_hash, is_verified) VALUES ($1, $2, 'not a hash', true)`, username, email); err != nil {
		t.Fatal(err)
	}
}

func isAdmin(t *testing.T, url, username string) bool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var admin bool
	if err := pool.QueryRow(context.Background(), `SELECT is_admin FROM users WHERE username = $1`, username).Scan(&admin); err != nil {
		t.Fatal(err)
	}
	return admin
}

// AUTHLY_ADMIN_USERNAME naming an account that is not that admin stops the start, with a
// message naming the variable and what to do, and changes nothing.
func TestABootstrapAdminConflictStopsTheStart(t *testing.T) {
	cases := []struct {
		name, username, email string
		want                  []string
	}{
		{"an existing ordinary user", "bob", "bob@example.com",
			[]string{"AUTHLY_ADMIN_USERNAME", `"bob" already exists and is not an admin`, "is_admin"}},
		{"an existing admin with another email", "ops", "other@example.com",
			[]string{"AUTHLY_ADMIN_USERNAME", `"ops" already exists with the email ops@example.com`, "AUTHLY_ADMIN_EMAIL"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := testdb.URL(t)
			seedUser(t, url, "bob", "bob@example.com")
			vars := map[string]string{
				"DATABASE_URL": url, "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK, "AUTHLY_BCRYPT_COST": "4",
				"AUTHLY_LISTEN_ADDR": "127.0.0.1:0", "AUTHLY_MAIL_DIR": t.TempDir(),
			}
			if err := run(context.Background(), []string{"create-admin", "--username", "ops", "--email", "ops@example.com"},
				envFrom(vars), strings.NewReader("an admin passphrase\n"), io.Discard, io.Discard); err != nil {
				t.Fatal(err)
			}
			vars["AUTHLY_ADMIN_USERNAME"], vars["AUTHLY_ADMIN_EMAIL"], vars["AUTHLY_ADMIN_PASSWORD"] = tc.username, tc.email, "an admin passphrase"

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ready := make(chan string, 1)
			done := make(chan error, 1)
			go func() { done <- serve(ctx, envFrom(vars), io.Discard, ready) }()
			var err error
			select {
			case <-ready:
				cancel()
				<-done
				t.Fatal("the server started")
			case err = <-done:
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("start-up error %v, want it to say %q", err, w)
				}
			}
			if isAdmin(t, url, "bob") {
				t.Fatal("bob was promoted")
			}
		})
	}
}

// create-admin on an account that is not that admin says so, changes nothing and fails.
func TestCreateAdminRefusesAConflictingAccount(t *testing.T) {
	url := testdb.URL(t)
	seedUser(t, url, "bob", "bob@example.com")
	vars := map[string]string{"DATABASE_URL": url, "JWT_SECRET_KEY": secretA, "JWT_REFRESH_SECRET_KEY": secretB, "AUTHLY_KEY_ENCRYPTION_KEY": testKEK,
		"AUTHLY_BCRYPT_COST": "4", "AUTHLY_ADMIN_PASSWORD": "an admin passphrase"}
	createAdmin := func(username, email string) (string, error) {
		var stdout bytes.Buffer
		err := run(context.Background(), []string{"create-admin", "--username", username, "--email", email}, envFrom(vars), nil, &stdout, io.Discard)
		return stdout.String(), err
	}
	if _, err := createAdmin("bob", "bob@example.com"); err == nil || !strings.Contains(err.Error(), `"bob" already exists and is not an admin`) ||
		!strings.Contains(err.Error(), "--username") {
		t.Fatalf("create-admin on an ordinary user: %v", err)
	}
	if isAdmin(t, url, "bob") {
		t.Fatal("bob was promoted")
	}
	if _, err := createAdmin("ops", "ops@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := createAdmin("ops", "ops@example.net"); err == nil || !strings.Contains(err.Error(), "--email ops@example.com") {
		t.Fatalf("create-admin with another email: %v", err)
	}
	if out, err := createAdmin("ops", "OPS@example.com"); err != nil || !strings.Contains(out, "already exists") {
		t.Fatalf("create-admin again: %v %q", err, out)
	}
}
