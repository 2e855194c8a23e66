package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxURLLength bounds a webhook URL.
const maxURLLength = 2048

// Policy says which endpoints deliveries may reach. The zero Policy is the
// strict one, for production: https:// only, public addresses only.
type Policy struct {
	// AllowHTTP allows http:// URLs, but only to loopback hosts (tests,
	// local development). It also allows loopback addresses, whatever
	// the scheme, even without AllowPrivate: so that http://127.0.0.1
	// test receivers work.
	AllowHTTP bool
	// AllowPrivate allows destinations in the private, loopback,
	// link-local, CGNAT and unique-local ranges, the other special-purpose
	// ranges that are not globally reachable, and this host's own
	// addresses.
	AllowPrivate bool
}

// The problems ValidateURL reports that the operator can lift.
const (
	problemHTTP    = "http:// is only allowed for loopback hosts, and only when the operator allows it (--webhook-allow-http)"
	problemPrivate = "points to a private or internal address; the operator can allow it (--webhook-allow-private)"
)

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	reserved    = netip.MustParsePrefix("240.0.0.0/4") // 255.255.255.255 included
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// internal are the IANA special-purpose ranges that are not globally
// reachable (beside loopback, link-local, multicast and what IsPrivate
// covers), refused unless AllowPrivate: a webhook has no business there.
// The few globally reachable anycast assignments inside 192.0.0.0/24 and
// 2001::/23 (PCP, TURN, AMT, AS112, ORCHID) are no webhook endpoint
// either, and go with their blocks.
var internal = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (deprecated)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments, Teredo (2001::/32) included
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation
	netip.MustParsePrefix("5f00::/16"),       // segment routing SIDs
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// hostAddrs lists this host's own interface addresses; a test replaces it.
var hostAddrs = net.InterfaceAddrs

// isHostAddr reports whether a is an address of one of this host's
// interfaces, read at each check so that an address added later counts.
// When the interfaces cannot be listed, only the ranges guard.
func isHostAddr(a netip.Addr) bool {
	addrs, err := hostAddrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		var ip net.IP
		switch v := ad.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if h, ok := netip.AddrFromSlice(ip); ok && h.Unmap() == a {
			return true
		}
	}
	return false
}

// allows reports whether p lets a delivery connect to a. Unspecified,
// multicast, 0.0.0.0/8 and 240.0.0.0/4 (broadcast included) are never
// allowed: they are no endpoint's address. Loopback needs AllowPrivate or
// AllowHTTP. The private, link-local and unique-local ranges, the other
// IANA special-purpose ranges that are not globally reachable (internal),
// and this host's own interface addresses need AllowPrivate. An IPv4
// address in IPv6 form (IPv4-mapped, in the NAT64 prefix 64:ff9b::/96, or
// a 6to4 address of 2002::/16) is judged as the IPv4 address it reaches.
func (p Policy) allows(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	switch b := a.As16(); {
	case nat64.Contains(a):
		a = netip.AddrFrom4([4]byte(b[12:]))
	case sixToFour.Contains(a):
		a = netip.AddrFrom4([4]byte(b[2:6]))
	}
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast(), thisNetwork.Contains(a), reserved.Contains(a):
		return false
	case a.IsLoopback():
		return p.AllowPrivate || p.AllowHTTP
	case p.AllowPrivate:
		return true
	case a.IsPrivate(), a.IsLinkLocalUnicast(), inAny(internal, a), isHostAddr(a):
		return false
	}
	return true
}

// inAny reports whether a is in one of prefixes.
func inAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, pf := range prefixes {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// isLocalhost reports whether host is "localhost" or a name under it
// (RFC 6761), which resolve to loopback.
func isLocalhost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// isLoopbackHost reports whether host, a URL's host name, is a loopback IP
// address or localhost.
func isLoopbackHost(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.WithZone("").Unmap().IsLoopback()
	}
	return isLocalhost(host)
}

// ValidateURL checks a webhook URL as a user gives it and returns a problem
// sentence to show them, or "" if the URL is fine. A URL must be at most 2048
// characters, an https:// URL (or http:// to a loopback host under
// AllowHTTP) naming a host, with neither credentials nor a fragment; a host
// that is an IP address or localhost must be one p allows. ValidateURL does
// not resolve DNS names: the dialer of p's Client checks the addresses they
// resolve to, at each delivery.
func (p Policy) ValidateURL(raw string) string {
	if len(raw) > maxURLLength {
		return fmt.Sprintf("must be at most %d characters long", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	if strings.Contains(raw, "#") && u.Fragment == "" {
		u.Fragment = "#" // an empty fragment is a fragment too
	}
	if problem := p.shape(u); problem != "" {
		return problem
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil && !p.allows(a) {
		return problemPrivate
	}
	if isLocalhost(host) && !p.allows(netip.IPv6Loopback()) {
		return problemPrivate
	}
	return ""
}

// shape checks u's scheme and parts, but not the addresses it reaches.
func (p Policy) shape(u *url.URL) string {
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "must be an https:// URL"
	case u.User != nil:
		return "must not contain credentials"
	case u.Hostname() == "":
		return "must name a host"
	case u.Fragment != "":
		return "must not have a fragment"
	case u.Scheme == "http" && (!p.AllowHTTP || !isLoopbackHost(u.Hostname())):
		return problemHTTP
	}
	return ""
}

// Client returns an *http.Client for deliveries under p:
//
//   - it follows no redirect: the 3xx answer is the delivery's answer, a
//     failed one;
//   - timeout bounds each request, as http.Client.Timeout does;
//   - it refuses, before connecting, a URL whose scheme or shape p does not
//     allow (an http:// URL, unless AllowHTTP and the host is loopback);
//   - its dialer refuses every address p does not allow, after DNS
//     resolution, so that a name resolving to 10.0.0.1 or 169.254.169.254 is
//     refused like the address itself. Without AllowPrivate, that is the
//     loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
//     (169.254/16, fe80::/10) and CGNAT (100.64/10) ranges, the other IANA
//     special-purpose ranges that are not globally reachable (192.0.0/24,
//     the documentation ranges 192.0.2/24, 198.51.100/24, 203.0.113/24,
//     2001:db8::/32 and 3fff::/20, 192.88.99/24, benchmarking 198.18/15,
//     100::/64, 2001::/23 with Teredo, 64:ff9b:1::/48, 5f00::/16,
//     fec0::/10), any address of this host's own interfaces, and these in
//     IPv4-mapped, NAT64 or 6to4 form; but AllowHTTP allows loopback.
//     Unspecified, multicast, 0.0.0.0/8 and 240.0.0.0/4 (broadcast
//     included) are refused always;
//   - it uses no proxy (whatever the environment says), TLS 1.2 at least,
//     and keeps a bounded number of idle connections.
//
// A refusal is an error for which IsPermanent is true.
func (p Policy) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: p.control}
	base := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        60 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     &transport{policy: p, base: base},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// control is the dialer's check of the address it is about to connect to,
// DNS resolution done.
func (p Policy) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &permanentError{fmt.Errorf("destination %s refused: %w", address, err)}
	}
	if !p.allows(ap.Addr()) {
		return &permanentError{fmt.Errorf("destination %s refused: a private or internal address (--webhook-allow-private)", ap.Addr())}
	}
	return nil
}

// transport refuses the requests whose URL p does not allow, and passes the
// others to base, whose dialer checks addresses.
type transport struct {
	policy Policy
	base   *http.Transport
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if problem := t.policy.shape(req.URL); problem != "" {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &permanentError{fmt.Errorf("webhook URL refused: %s", problem)}
	}
	return t.base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach base.
func (t *transport) CloseIdleConnections() { t.base.CloseIdleConnections() }
