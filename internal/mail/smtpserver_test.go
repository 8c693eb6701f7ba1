package mail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/authly/authly/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// testPKI is a certificate authority made for one test and a server certificate it signed,
// valid for localhost, 127.0.0.1 and ::1.
type testPKI struct {
	serverTLS *tls.Config
	roots     *x509.CertPool
	caPEM     []byte
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Authly test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return testPKI{
		serverTLS: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
			MinVersion:   tls.VersionTLS12,
		},
		roots: roots,
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	}
}

// received is one message as the test SMTP server got it.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session was encrypted
	User string // the authenticated user, if any
}

// smtpConfig sets up a testSMTP.
type smtpConfig struct {
	tls      *tls.Config // offered through STARTTLS, or spoken at once with implicit
	implicit bool
	// username and password, when set, are required: MAIL is refused until AUTH succeeds.
	username, password string
	// rejectRcpt answers RCPT TO for these addresses with 550 5.1.1.
	rejectRcpt map[string]bool
	// rendezvous, when above 1, holds the first message's DATA until that many sessions are in
	// DATA at the same moment, which proves that many senders worked concurrently.
	rendezvous int
}

// testSMTP is a real SMTP server (github.com/emersion/go-smtp) on a loopback port, recording
// what it receives. It can be stopped and started again on the same port.
type testSMTP struct {
	t   *testing.T
	cfg smtpConfig

	mu       sync.Mutex
	msgs     []received
	authFail int
	srv      *smtp.Server
	addr     string

	inData      int
	met         bool
	rendezvousC chan struct{}
}

func startSMTP(t *testing.T, cfg smtpConfig) *testSMTP {
	t.Helper()
	s := &testSMTP{t: t, cfg: cfg, rendezvousC: make(chan struct{})}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *testSMTP) start(addr string) {
	s.t.Helper()
	var ln net.Listener
	var err error
	// Restarting on the port just closed: retry briefly while the kernel lets it go.
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("test SMTP server: %v", err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{server: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.ErrorLog = discardLogger{}
	if s.cfg.implicit {
		ln = tls.NewListener(ln, s.cfg.tls)
	} else {
		srv.TLSConfig = s.cfg.tls
	}
	s.mu.Lock()
	s.srv, s.addr = srv, ln.Addr().String()
	s.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // returns when stopped
}

// stop closes the listener and every open session.
func (s *testSMTP) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart starts the server again on the port it had.
func (s *testSMTP) restart() { s.start(s.addr) }

func (s *testSMTP) host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

func (s *testSMTP) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

func (s *testSMTP) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *testSMTP) authFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type testSession struct {
	server *testSMTP
	conn   *smtp.Conn
	user   string
	from   string
	to     []string
}

func (s *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.server.cfg.username || password != s.server.cfg.password || username == "" {
			s.server.mu.Lock()
			s.server.authFail++
			s.server.mu.Unlock()
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.server.cfg.username != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.server.cfg.rejectRcpt[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.server.meet()
	_, isTLS := s.conn.TLSConnectionState()
	s.server.mu.Lock()
	s.server.msgs = append(s.server.msgs, received{From: s.from, To: s.to, Data: data, TLS: isTLS, User: s.user})
	s.server.mu.Unlock()
	return nil
}

// meet implements smtpConfig.rendezvous: the sessions in DATA wait for each other until
// enough are there at once, then every later session passes straight through.
func (s *testSMTP) meet() {
	if s.cfg.rendezvous < 2 {
		return
	}
	s.mu.Lock()
	if s.met {
		s.mu.Unlock()
		return
	}
	s.inData++
	if s.inData >= s.cfg.rendezvous {
		s.met = true
		close(s.rendezvousC)
	}
	s.mu.Unlock()
	select {
	case <-s.rendezvousC:
	case <-time.After(20 * time.Second):
		// Released without meeting; the test reports it through rendezvousMet.
	}
	s.mu.Lock()
	s.inData--
	s.mu.Unlock()
}

func (s *testSMTP) rendezvousMet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.met
}

func (s *testSession) Reset()        { s.from, s.to = "", nil }
func (s *testSession) Logout() error { return nil }

// parsedMessage is a received message taken apart as a mail client would.
type parsedMessage struct {
	Header netmail.Header
	Text   string
	HTML   string
}

// parseMessage reads an RFC 5322 message with a multipart/alternative body of a text and an
// HTML part, decoding their transfer encodings.
func parseMessage(t *testing.T, data []byte) parsedMessage {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, data)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	p := parsedMessage{Header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var order []string
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the parts: %v", err)
		}
		partType, partParams, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		var body io.Reader = part
		switch strings.ToLower(part.Header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(part)
		case "base64":
			t.Fatalf("unexpected base64 part")
		}
		content, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		if cs := strings.ToLower(partParams["charset"]); cs != "utf-8" {
			t.Errorf("%s part charset = %q, want UTF-8", partType, cs)
		}
		order = append(order, partType)
		switch partType {
		case "text/plain":
			p.Text = string(content)
		case "text/html":
			p.HTML = string(content)
		}
	}
	if strings.Join(order, ",") != "text/plain,text/html" {
		t.Errorf("parts = %v, want text/plain then text/html (the preferred last)", order)
	}
	return p
}
