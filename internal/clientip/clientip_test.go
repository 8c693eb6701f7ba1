package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/authly/authly/internal/clientip"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	// The load balancer is 10.0.0.0/8, the edge proxy 192.0.2.7, and an IPv6
	// ingress fd00::/8.
	trusted, err := clientip.ParseTrustedProxies("10.0.0.0/8, 192.0.2.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	withProxies := clientip.NewResolver(trusted)
	noProxies := clientip.NewResolver(nil)

	cases := []struct {
		name     string
		resolver *clientip.Resolver
		remote   string
		headers  map[string][]string
		want     string
	}{
		{
			name:   "a direct client is its peer address",
			remote: "203.0.113.9:5555",
			want:   "203.0.113.9",
		},
		{
			name:    "an untrusted peer's X-Forwarded-For is ignored",
			remote:  "203.0.113.9:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}},
			want:    "203.0.113.9",
		},
		{
			name:     "with no trusted proxies every X-Forwarded-For is ignored, even from 10/8",
			resolver: noProxies,
			remote:   "10.1.2.3:5555",
			headers:  map[string][]string{"X-Forwarded-For": {"198.51.100.1"}},
			want:     "10.1.2.3",
		},
		{
			name:    "a trusted peer's X-Forwarded-For names the client",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}},
			want:    "198.51.100.1",
		},
		{
			name:    "a spoofed entry left of the real client is ignored",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1"}},
			want:    "198.51.100.1",
		},
		{
			name:    "a spoofed trusted address left of the real client is ignored",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"10.9.9.9, 198.51.100.1"}},
			want:    "198.51.100.1",
		},
		{
			name:    "a chain of trusted proxies is walked to the first untrusted hop",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1, 192.0.2.7, 10.0.0.5"}},
			want:    "198.51.100.1",
		},
		{
			name:    "a chain of only trusted proxies gives the farthest one",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"192.0.2.7, 10.0.0.5"}},
			want:    "192.0.2.7",
		},
		{
			name:    "a trusted peer without X-Forwarded-For is itself the client",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{},
			want:    "10.1.2.3",
		},
		{
			name:    "several X-Forwarded-For headers are read as one list, last header rightmost",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1", "192.0.2.7"}},
			want:    "198.51.100.1",
		},
		{
			name:    "a spoofed first header does not beat what the proxy appended to the last",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"1.2.3.4", "198.51.100.1"}},
			want:    "198.51.100.1",
		},
		{
			name:    "garbage right of the client stops the walk at the trusted peer",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1, not-an-ip"}},
			want:    "10.1.2.3",
		},
		{
			name:    "garbage deeper in the chain falls back to the last trusted hop",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1, <script>, 192.0.2.7"}},
			want:    "192.0.2.7",
		},
		{
			name:    "garbage left of the client is never reached",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"unknown, 300.1.1.1, 198.51.100.1"}},
			want:    "198.51.100.1",
		},
		{
			name:    "an empty entry is malformed",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1,"}},
			want:    "10.1.2.3",
		},
		{
			name:    "an entry with a port is malformed",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1:443"}},
			want:    "10.1.2.3",
		},
		{
			name:    "an entry with a zone is malformed",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"fe80::1%eth0"}},
			want:    "10.1.2.3",
		},
		{
			name:    "an empty header is malformed",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {""}},
			want:    "10.1.2.3",
		},
		{
			name:   "X-Real-IP is ignored from an untrusted peer",
			remote: "203.0.113.9:5555",
			headers: map[string][]string{
				"X-Real-Ip": {"198.51.100.1"}, "Forwarded": {"for=198.51.100.1"}, "Cf-Connecting-Ip": {"198.51.100.1"},
			},
			want: "203.0.113.9",
		},
		{
			name:   "X-Real-IP, Forwarded and CF-Connecting-IP are ignored even from a trusted peer",
			remote: "10.1.2.3:5555",
			headers: map[string][]string{
				"X-Real-Ip": {"198.51.100.1"}, "Forwarded": {"for=198.51.100.1"}, "Cf-Connecting-Ip": {"198.51.100.1"},
				"X-Forwarded-For": {"198.51.100.2"},
			},
			want: "198.51.100.2",
		},
		{
			name:   "an IPv6 peer is written canonically",
			remote: "[2001:DB8:0:0::1]:5555",
			want:   "2001:db8::1",
		},
		{
			name:   "an IPv4-mapped IPv6 peer is written as IPv4",
			remote: "[::ffff:203.0.113.9]:5555",
			want:   "203.0.113.9",
		},
		{
			name:    "an IPv4-mapped trusted peer is still trusted",
			remote:  "[::ffff:10.1.2.3]:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}},
			want:    "198.51.100.1",
		},
		{
			name:    "an IPv4-mapped entry is written as IPv4, and trusted as IPv4",
			remote:  "10.1.2.3:5555",
			headers: map[string][]string{"X-Forwarded-For": {"::ffff:198.51.100.1, ::ffff:10.0.0.5"}},
			want:    "198.51.100.1",
		},
		{
			name:    "an IPv6 trusted peer's IPv6 client",
			remote:  "[fd00::2]:5555",
			headers: map[string][]string{"X-Forwarded-For": {"2001:DB8::7, fd00::1"}},
			want:    "2001:db8::7",
		},
		{
			name:    "a link-local peer loses its zone",
			remote:  "[fe80::1%eth0]:5555",
			headers: map[string][]string{"X-Forwarded-For": {"198.51.100.1"}},
			want:    "fe80::1",
		},
		{
			name:   "a bare address RemoteAddr is read too",
			remote: "203.0.113.9",
			want:   "203.0.113.9",
		},
		{
			name:   "a RemoteAddr that is no address comes back as it is",
			remote: "@",
			want:   "@",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resolver := c.resolver
			if resolver == nil {
				resolver = withProxies
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = c.remote
			for name, values := range c.headers {
				for _, v := range values {
					req.Header.Add(name, v)
				}
			}
			if got := resolver.ClientIP(req); got != c.want {
				t.Errorf("ClientIP = %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"192.0.2.7", []string{"192.0.2.7/32"}},
		{"2001:db8::1", []string{"2001:db8::1/128"}},
		{"::ffff:192.0.2.7", []string{"192.0.2.7/32"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{" 10.0.0.0/8 , fd00::/8,192.0.2.7 ", []string{"10.0.0.0/8", "fd00::/8", "192.0.2.7/32"}},
	}
	for _, c := range valid {
		t.Run("accepts "+c.in, func(t *testing.T) {
			got, err := clientip.ParseTrustedProxies(c.in)
			if err != nil {
				t.Fatal(err)
			}
			var text []string
			for _, p := range got {
				text = append(text, p.String())
			}
			if strings.Join(text, " ") != strings.Join(c.want, " ") {
				t.Errorf("ParseTrustedProxies(%q) = %v, want %v", c.in, text, c.want)
			}
		})
	}

	invalid := []struct {
		in       string
		mentions []string
	}{
		{"10.0.0.0/33", []string{`trusted proxy 1 ("10.0.0.0/33")`, "CIDR"}},
		{"10.0.0.0/8,", []string{"trusted proxy 2", "empty"}},
		{"example.com", []string{`"example.com"`, "not an IP address"}},
		{"fe80::1%eth0", []string{"not an IP address"}},
		{"192.0.2.7:80", []string{"not an IP address"}},
		{"bad, 10.0.0.0/8, worse", []string{`trusted proxy 1 ("bad")`, `trusted proxy 3 (" worse")`}},
	}
	for _, c := range invalid {
		t.Run("rejects "+c.in, func(t *testing.T) {
			got, err := clientip.ParseTrustedProxies(c.in)
			if err == nil {
				t.Fatalf("ParseTrustedProxies(%q) = %v, want an error", c.in, got)
			}
			for _, m := range c.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestNewResolverNormalisesPrefixesItIsGiven(t *testing.T) {
	t.Parallel()
	// A caller that builds prefixes itself may leave them unmasked or mapped.
	resolver := clientip.NewResolver([]netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"),
		netip.MustParsePrefix("::ffff:192.0.2.0/120"),
	})
	for remote, want := range map[string]string{"10.200.0.1:1": "198.51.100.1", "192.0.2.99:1": "198.51.100.1"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		req.Header.Set("X-Forwarded-For", "198.51.100.1")
		if got := resolver.ClientIP(req); got != want {
			t.Errorf("ClientIP from %s = %q, want %q", remote, got, want)
		}
	}
}
