package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Security is how an SMTP connection is protected.
type Security int

const (
	// SecuritySTARTTLS connects in plaintext and requires the server to offer STARTTLS; a
	// server that does not is refused before anything is sent. smtp:// URLs get it.
	SecuritySTARTTLS Security = iota
	// SecurityImplicitTLS speaks TLS from the first byte (RFC 8314). smtps:// URLs get it.
	SecurityImplicitTLS
	// SecurityLoopbackPlain is for a relay on the same machine (smtp:// to localhost or a
	// loopback address): STARTTLS when the server offers it, plaintext otherwise, since the
	// traffic never leaves the host. It is refused for any other host.
	SecurityLoopbackPlain
)

func (s Security) String() string {
	switch s {
	case SecuritySTARTTLS:
		return "starttls"
	case SecurityImplicitTLS:
		return "tls"
	case SecurityLoopbackPlain:
		return "loopback"
	default:
		return "unknown"
	}
}

// SMTPServer is where and how to reach an SMTP server.
type SMTPServer struct {
	Host     string
	Port     int
	Security Security
}

// Default ports: the submission port with STARTTLS (RFC 6409) and submissions with implicit
// TLS (RFC 8314).
const (
	defaultSMTPPort  = 587
	defaultSMTPSPort = 465
)

// ParseSMTPURL reads an SMTP server URL: smtp://host[:port] (port 587 by default; STARTTLS
// required unless the host is localhost or a loopback address) or smtps://host[:port] (port
// 465 by default; implicit TLS). Credentials, paths and query parameters are refused: the
// credentials have settings of their own, kept out of a URL that ends up in logs. Errors never
// repeat the URL, which might hold a password.
func ParseSMTPURL(raw string) (SMTPServer, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return SMTPServer{}, errors.New("must be smtp://host:port or smtps://host:port")
	}
	var s SMTPServer
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		s.Port, s.Security = defaultSMTPPort, SecuritySTARTTLS
	case "smtps":
		s.Port, s.Security = defaultSMTPSPort, SecurityImplicitTLS
	default:
		return SMTPServer{}, errors.New("must start with smtp:// (STARTTLS) or smtps:// (implicit TLS)")
	}
	switch {
	case u.User != nil:
		return SMTPServer{}, errors.New("must not hold credentials; they have settings of their own")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.ForceQuery:
		return SMTPServer{}, errors.New("must be only a scheme, a host and a port, such as smtp://mail.example.com:587")
	case u.Hostname() == "":
		return SMTPServer{}, errors.New("must name a host, such as smtp://mail.example.com:587")
	}
	s.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPServer{}, errors.New("must have a port from 1 to 65535")
		}
		s.Port = n
	}
	if s.Security == SecuritySTARTTLS && isLoopback(s.Host) {
		s.Security = SecurityLoopbackPlain
	}
	return s, nil
}

// isLoopback reports whether host is localhost or a loopback IP address. Names are not
// resolved: only "localhost" itself counts, as RFC 6761 reserves it for the local machine.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadCertPool reads PEM certificates from path, for SMTPOptions.RootCAs: the certificate
// authorities a private SMTP server's certificate is checked against.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// SMTPOptions configure an SMTPSender.
type SMTPOptions struct {
	Server SMTPServer
	// Username and Password authenticate with SMTP AUTH when Username is set. The password is
	// only ever sent over TLS: on a plaintext loopback connection only challenge-response
	// mechanisms (SCRAM, CRAM-MD5) are used.
	Username string
	Password string
	// RootCAs verifies the server's certificate; nil means the system's roots. The certificate
	// must be valid for Server.Host.
	RootCAs *x509.CertPool
	// Timeout bounds connecting and each SMTP command; default 30s.
	Timeout time.Duration
	// HelloName is the name given in EHLO; default the machine's host name.
	HelloName string
}

// SMTPSender delivers messages to one SMTP server, one connection per message. It is safe for
// concurrent use.
type SMTPSender struct {
	server SMTPServer
	opts   []gomail.Option
}

// NewSMTPSender checks opts and returns a sender. It refuses plaintext (SecurityLoopbackPlain)
// towards a host that is not loopback.
func NewSMTPSender(o SMTPOptions) (*SMTPSender, error) {
	s := o.Server
	switch {
	case s.Host == "":
		return nil, errors.New("mail: SMTP server host is required")
	case s.Port < 1 || s.Port > 65535:
		return nil, fmt.Errorf("mail: SMTP server port %d is out of range", s.Port)
	case s.Security == SecurityLoopbackPlain && !isLoopback(s.Host):
		return nil, fmt.Errorf("mail: refusing to send mail to %s without TLS: it is not a loopback host; use smtp:// (STARTTLS) or smtps://", s.Host)
	case s.Security != SecuritySTARTTLS && s.Security != SecurityImplicitTLS && s.Security != SecurityLoopbackPlain:
		return nil, errors.New("mail: unknown SMTP security")
	case o.Password != "" && o.Username == "":
		return nil, errors.New("mail: an SMTP password needs a username")
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tlsConfig := &tls.Config{ServerName: s.Host, RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
	opts := []gomail.Option{
		gomail.WithPort(s.Port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsConfig),
	}
	switch s.Security {
	case SecurityImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case SecuritySTARTTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case SecurityLoopbackPlain:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if o.HelloName != "" {
		opts = append(opts, gomail.WithHELO(o.HelloName))
	}
	if o.Username != "" {
		// Auto-discovery picks the strongest mechanism the server offers and never PLAIN or
		// LOGIN outside TLS.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(o.Username), gomail.WithPassword(o.Password))
	}
	// Build one client now, so that a bad option fails here rather than at the first send.
	if _, err := gomail.NewClient(s.Host, opts...); err != nil {
		return nil, fmt.Errorf("mail: SMTP client: %w", err)
	}
	return &SMTPSender{server: s, opts: opts}, nil
}

// Send delivers e over a new connection. An SMTP 5xx reply to the recipient with an
// address-related enhanced status (5.1.x: no such mailbox or domain, bad syntax) wraps
// ErrRejected. Everything else is worth retrying, 5xx replies to MAIL FROM or DATA included:
// those mostly mean the relay refuses Authly itself (a sender domain it does not accept, a
// policy on the From address), which is fixed by configuration, after which the queued mail
// still goes out.
func (s *SMTPSender) Send(ctx context.Context, e Envelope) error {
	msg, err := buildMessage(e)
	if err != nil {
		return err
	}
	client, err := gomail.NewClient(s.server.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: SMTP client: %w", err)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err == nil || msg.IsDelivered() {
		// The server accepted the message; a failure after that (closing the connection)
		// must not send it again.
		return nil
	}
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) && sendErr.Reason == gomail.ErrSMTPRcptTo &&
		sendErr.ErrorCode() >= 500 && strings.HasPrefix(sendErr.EnhancedStatusCode(), "5.1.") {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return err
}
