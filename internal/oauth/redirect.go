package oauth

import (
	"net/url"
	"strconv"
	"strings"
)

// Limits on what a client may register.
const (
	maxRedirectURIs   = 20
	maxRedirectURILen = 2000
)

// Loopback hosts of RFC 8252 §7.3, written as they appear in a URI.
const (
	loopbackIPv4 = "127.0.0.1"
	loopbackIPv6 = "[::1]"
)

// validateRedirectURI checks one redirect URI (or post-logout redirect URI) for
// registration and says what is wrong, in words safe to show. The rules:
//   - absolute, at most maxRedirectURILen bytes, no whitespace or control characters, no
//     user information, no fragment (RFC 6749 §3.1.2), a lower-case scheme;
//   - https, with a host;
//   - or http on a loopback address, 127.0.0.1 or [::1], any port (RFC 8252 §7.3), or on
//     localhost, which is matched exactly like any other URI;
//   - or, for a public client (a native app), a private-use scheme in reverse domain name
//     form such as com.example.app:/callback (RFC 8252 §7.1): it must contain a period, which
//     also keeps out javascript:, data:, file: and the like.
//
// Wildcards do not exist: matching is by exact string (see matchRedirectURI).
func validateRedirectURI(raw string, typ ClientType) string {
	if raw == "" {
		return "must not be empty"
	}
	if len(raw) > maxRedirectURILen {
		return "is too long"
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] == 0x7f {
			return "must not contain whitespace or control characters"
		}
	}
	if strings.Contains(raw, "#") {
		return "must not contain a fragment"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "must be an absolute URI"
	}
	if !strings.HasPrefix(raw, u.Scheme+":") {
		return "must have a lower-case scheme"
	}
	if u.Opaque != "" {
		return "must be a hierarchical URI, such as scheme:/path"
	}
	if u.User != nil {
		return "must not contain user information"
	}
	if u.Port() != "" && !validPort(":"+u.Port()) {
		return "has an invalid port"
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" || u.Hostname() == "" {
			return "must name a host"
		}
		if strings.Contains(u.Host, "*") {
			return "must not contain a wildcard"
		}
	case "http":
		switch u.Hostname() {
		case "127.0.0.1", "::1", "localhost":
		default:
			return "may use http only on a loopback address (127.0.0.1 or [::1]) or localhost; use https"
		}
	default:
		if typ != ClientPublic {
			return "may use a private-use scheme only for a public client (a native app)"
		}
		if !strings.Contains(u.Scheme, ".") {
			return "must use https, loopback http, or a private-use scheme in reverse domain name form such as com.example.app"
		}
	}
	return ""
}

// matchRedirectURI returns the registered redirect URI that presented stands for, and
// whether there is one. Matching is by exact string comparison (RFC 9700 §4.1.3), with one
// exception: a public client's loopback redirect URI on 127.0.0.1 or [::1] over http
// matches whatever port the request names (RFC 8252 §7.3), because a native app listens on
// a port the operating system gives it at that moment. Everything else about such a URI,
// path and query included, must still be identical.
//
// localhost is not a loopback address here, though it may be registered: a name can resolve
// to an address other than the loopback interface (a hosts file, a DNS answer), and to the
// IPv4 loopback in one program and the IPv6 one in another, so that another program
// listening on the other family's port could receive the code (RFC 8252 §8.3). A localhost
// redirect URI must therefore match exactly, port included.
func matchRedirectURI(registered []string, presented string, typ ClientType) (string, bool) {
	for _, r := range registered {
		if r == presented {
			return r, true
		}
	}
	if typ != ClientPublic {
		return "", false
	}
	bare, ok := loopbackWithoutPort(presented)
	if !ok {
		return "", false
	}
	for _, r := range registered {
		if rb, ok := loopbackWithoutPort(r); ok && rb == bare {
			// The presented URI is the one the code is bound to: the token request must
			// repeat it, port included.
			return presented, true
		}
	}
	return "", false
}

// loopbackWithoutPort returns an http URI on 127.0.0.1 or [::1] with its port taken out,
// and whether raw is such a URI. The rest of the string is kept exactly as it is.
func loopbackWithoutPort(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, "http://")
	if !ok {
		return "", false
	}
	authority, tail := rest, ""
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		authority, tail = rest[:end], rest[end:]
	}
	if strings.Contains(tail, "#") {
		return "", false
	}
	var host, port string
	switch {
	case strings.HasPrefix(authority, loopbackIPv4):
		host, port = loopbackIPv4, authority[len(loopbackIPv4):]
	case strings.HasPrefix(authority, loopbackIPv6):
		host, port = loopbackIPv6, authority[len(loopbackIPv6):]
	default:
		return "", false
	}
	if port != "" && !validPort(port) {
		return "", false
	}
	return "http://" + host + tail, true
}

// validPort reports whether p is ":" and a port number 1-65535 without leading zeros.
func validPort(p string) bool {
	digits, ok := strings.CutPrefix(p, ":")
	if !ok || digits == "" || len(digits) > 5 || digits[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(digits)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == digits
}

// isClaimableRedirectURI reports whether any app on the user's device could receive a
// redirect to uri: a loopback or localhost port, or a private-use scheme. A client whose
// redirect URIs include one cannot prove its identity by them (RFC 8252 §8.6).
func isClaimableRedirectURI(uri string) bool {
	return !strings.HasPrefix(uri, "https://")
}
