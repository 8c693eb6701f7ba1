// Package clientip owns the rule for which address a request comes from, the one Authly rate-limits and logs.
//
// The peer of the TCP connection is the client, unless that peer is a proxy
// the operator trusts. Only then is X-Forwarded-For read, and only from the
// right: each trusted proxy appends the address it received the request
// from, so the rightmost address that is not a trusted proxy is the one the
// outermost trusted proxy saw connect, the client. Everything left of it was
// written by the client and may be forged.
//
// X-Real-IP, Forwarded and CF-Connecting-IP are never read. A client can set
// them as easily as X-Forwarded-For, and honouring a second header would let
// it choose whichever one a proxy does not overwrite.
package clientip

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver applies the rule for one set of trusted proxies. It is safe for
// concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver that trusts X-Forwarded-For only from peers
// inside trusted. With none, it always answers with the peer's address.
func NewResolver(trusted []netip.Prefix) *Resolver {
	normal := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		normal = append(normal, normalPrefix(p))
	}
	return &Resolver{trusted: normal}
}

// ParseTrustedProxies reads the trusted proxies setting: comma-separated
// CIDRs or bare IP addresses, such as "10.0.0.0/8, 192.0.2.7, fd00::/8".
// The empty string means none. Every bad entry is reported at once.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var (
		prefixes []netip.Prefix
		errs     []error
	)
	for i, entry := range strings.Split(s, ",") {
		p, err := parseTrusted(strings.TrimSpace(entry))
		if err != nil {
			errs = append(errs, fmt.Errorf("clientip: trusted proxy %d (%q): %w", i+1, entry, err))
			continue
		}
		prefixes = append(prefixes, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return prefixes, nil
}

func parseTrusted(entry string) (netip.Prefix, error) {
	if entry == "" {
		return netip.Prefix{}, errors.New("empty")
	}
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR such as 10.0.0.0/8 or fd00::/8")
		}
		return normalPrefix(p), nil
	}
	addr, err := netip.ParseAddr(entry)
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, errors.New("not an IP address or CIDR")
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// normalPrefix masks p and writes an IPv4-mapped IPv6 prefix as IPv4, since
// addresses are unmapped before they are compared.
func normalPrefix(p netip.Prefix) netip.Prefix {
	if addr := p.Addr(); addr.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(addr.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// ClientIP is RemoteAddr's host, unless that peer is inside a trusted prefix;
// only then is X-Forwarded-For used, taking the rightmost address that is not
// itself trusted (walking right to left through all X-Forwarded-For headers
// joined). Malformed entries stop the walk and fall back to the last trusted
// hop's address. No other header (X-Real-IP, Forwarded, CF-Connecting-IP) is
// ever trusted.
//
// Addresses come back in netip's canonical form, IPv4-mapped IPv6 ones as
// IPv4, so one client always has one spelling. A RemoteAddr that holds no IP
// address (such as a Unix socket's) comes back as it is.
func (r *Resolver) ClientIP(req *http.Request) string {
	peer, ok := parseRemoteAddr(req.RemoteAddr)
	if !ok {
		return req.RemoteAddr
	}
	if !r.isTrusted(peer) {
		return peer.String()
	}
	// Header.Values keeps the order the headers arrived in, and a proxy that
	// appends adds to the last one, so joining them gives one list.
	hops := strings.Split(strings.Join(req.Header.Values("X-Forwarded-For"), ","), ",")
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			break
		}
		if !r.isTrusted(hop) {
			return hop.String()
		}
		last = hop
	}
	return last.String()
}

func (r *Resolver) isTrusted(addr netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parseRemoteAddr reads net/http's "host:port", or a bare address as tests
// and some listeners write it.
func parseRemoteAddr(remote string) (netip.Addr, bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

// parseHop reads one X-Forwarded-For entry: a bare address. Ports, brackets
// and zones are not what a proxy appends, so they make the entry malformed.
func parseHop(entry string) (netip.Addr, bool) {
	addr, err := netip.ParseAddr(strings.TrimSpace(entry))
	if err != nil || addr.Zone() != "" {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}
