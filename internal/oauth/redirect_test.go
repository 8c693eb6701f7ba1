package oauth

import (
	"strings"
	"testing"
)

func TestRedirectURIRegistration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		uri    string
		typ    ClientType
		reason string // empty: accepted
	}{
		{"https://app.example.com/callback", ClientConfidential, ""},
		{"https://app.example.com:8443/cb?tenant=a", ClientConfidential, ""},
		{"http://127.0.0.1/callback", ClientPublic, ""},
		{"http://127.0.0.1:8080/callback", ClientConfidential, ""},
		{"http://[::1]/callback", ClientPublic, ""},
		{"http://localhost:3000/callback", ClientConfidential, ""},
		{"com.example.app:/oauth2redirect", ClientPublic, ""},
		{"com.example.app://callback", ClientPublic, ""},
		{"", ClientPublic, "must not be empty"},
		{"/callback", ClientConfidential, "absolute"},
		{"app.example.com/callback", ClientConfidential, "absolute"},
		{"https://app.example.com/cb#section", ClientConfidential, "fragment"},
		{"https://app.example.com/cb#", ClientConfidential, "fragment"},
		{"https://app.example.com/a b", ClientConfidential, "whitespace"},
		{"https://app.example.com/\tb", ClientConfidential, "whitespace"},
		{"HTTPS://app.example.com/cb", ClientConfidential, "lower-case scheme"},
		{"https://user:pass@app.example.com/cb", ClientConfidential, "user information"},
		{"https:///cb", ClientConfidential, "host"},
		{"https://*.example.com/cb", ClientConfidential, "wildcard"},
		{"https://app.example.com:99999/cb", ClientConfidential, "port"},
		{"http://app.example.com/cb", ClientConfidential, "loopback"},
		{"http://127.0.0.1.example.com/cb", ClientPublic, "loopback"},
		{"http://127.0.0.2/cb", ClientPublic, "loopback"},
		{"http://0.0.0.0/cb", ClientPublic, "loopback"},
		{"com.example.app:/cb", ClientConfidential, "public client"},
		{"myapp:/cb", ClientPublic, "reverse domain name"},
		{"javascript://alert(1)", ClientPublic, "reverse domain name"},
		{"data:/text/html,hi", ClientPublic, "reverse domain name"},
		{"file:///etc/passwd", ClientPublic, "reverse domain name"},
		{"com.example.app:callback", ClientPublic, "hierarchical"},
		{"https://app.example.com/" + strings.Repeat("a", 2000), ClientConfidential, "too long"},
	}
	for _, tc := range tests {
		name := "accepts " + tc.uri + " for a " + string(tc.typ) + " client"
		if tc.reason != "" {
			name = "refuses " + tc.uri + " for a " + string(tc.typ) + " client: " + tc.reason
		}
		t.Run(name, func(t *testing.T) {
			got := validateRedirectURI(tc.uri, tc.typ)
			if tc.reason == "" && got != "" {
				t.Fatalf("refused: %s", got)
			}
			if tc.reason != "" && !strings.Contains(got, tc.reason) {
				t.Fatalf("got %q, want a refusal mentioning %q", got, tc.reason)
			}
		})
	}
}

func TestRedirectURIMatching(t *testing.T) {
	t.Parallel()
	registered := []string{
		"https://app.example.com/callback",
		"http://127.0.0.1/native",
		"http://[::1]:4000/native6",
		"http://localhost:3000/dev",
		"com.example.app:/oauth2redirect",
	}
	tests := []struct {
		name      string
		presented string
		typ       ClientType
		want      string // the URI the code is bound to; empty: no match
	}{
		{"an exact https URI matches", "https://app.example.com/callback", ClientConfidential, "https://app.example.com/callback"},
		{"a URI differing in case does not", "https://APP.example.com/callback", ClientConfidential, ""},
		{"a trailing slash does not", "https://app.example.com/callback/", ClientConfidential, ""},
		{"an extra query does not", "https://app.example.com/callback?x=1", ClientConfidential, ""},
		{"a longer path does not", "https://app.example.com/callback/evil", ClientConfidential, ""},
		{"a percent-encoded twin does not", "https://app.example.com/%63allback", ClientConfidential, ""},
		{"another port on https does not", "https://app.example.com:444/callback", ClientPublic, ""},
		{"a public client's IPv4 loopback matches on any port", "http://127.0.0.1:53124/native", ClientPublic, "http://127.0.0.1:53124/native"},
		{"a public client's IPv4 loopback matches without a port", "http://127.0.0.1/native", ClientPublic, "http://127.0.0.1/native"},
		{"a public client's IPv6 loopback matches on any port", "http://[::1]:61000/native6", ClientPublic, "http://[::1]:61000/native6"},
		{"a public client's IPv6 loopback matches on no port though one was registered", "http://[::1]/native6", ClientPublic, "http://[::1]/native6"},
		{"a loopback URI with another path does not", "http://127.0.0.1:53124/other", ClientPublic, ""},
		{"a loopback URI with an added query does not", "http://127.0.0.1:53124/native?x", ClientPublic, ""},
		{"the other loopback family does not", "http://[::1]:53124/native", ClientPublic, ""},
		{"a loopback port out of range does not", "http://127.0.0.1:70000/native", ClientPublic, ""},
		{"a loopback port with a leading zero does not", "http://127.0.0.1:0808/native", ClientPublic, ""},
		{"a host that only starts like a loopback address does not", "http://127.0.0.1.evil.example:80/native", ClientPublic, ""},
		{"userinfo before a loopback address does not", "http://evil@127.0.0.1:80/native", ClientPublic, ""},
		{"a loopback URI over https does not take the exception", "https://127.0.0.1:53124/native", ClientPublic, ""},
		{"a confidential client's loopback URI must match its port", "http://127.0.0.1:53124/native", ClientConfidential, ""},
		{"localhost matches exactly", "http://localhost:3000/dev", ClientPublic, "http://localhost:3000/dev"},
		{"localhost on another port does not: it is not treated as loopback", "http://localhost:3001/dev", ClientPublic, ""},
		{"a private-use scheme matches exactly", "com.example.app:/oauth2redirect", ClientPublic, "com.example.app:/oauth2redirect"},
		{"a private-use scheme with another path does not", "com.example.app:/oauth2redirect2", ClientPublic, ""},
		{"nothing matches the empty string", "", ClientPublic, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := matchRedirectURI(registered, tc.presented, tc.typ)
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("matchRedirectURI(%q) = %q, %v; want %q", tc.presented, got, ok, tc.want)
			}
		})
	}
}
