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
	// link-local, CGNAT and unique-local ranges.
	AllowPrivate bool
}

// The problems ValidateURL reports that the operator can lift.
const (
	problemHTTP    = "http:// is only allowed for loopback hosts, and only when the operator allows it (--webhook-allow-http)"
	problemPrivate = "points to a private or internal address; the operator can allow it (--webhook-allow-private)"
)

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	reserved    = netip.MustParsePrefix("240.0.0.0/4") // 255.255.255.255 included
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
)

// allows reports whether p lets a delivery connect to a. Unspecified,
// multicast, 0.0.0.0/8 and 240.0.0.0/4 (broadcast included) are never
// allowed: they are no endpoint's address. An IPv4 address in IPv6 form
// (IPv4-mapped, or in the NAT64 prefix 64:ff9b::/96) is judged as the
// IPv4 address it reaches.
func (p Policy) allows(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast(), thisNetwork.Contains(a), reserved.Contains(a):
		return false
	case a.IsLoopback():
		return p.AllowPrivate || p.AllowHTTP
	case a.IsPrivate(), a.IsLinkLocalUnicast(), cgnat.Contains(a):
		return p.AllowPrivate
	}
	return true
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
//     (169.254/16, fe80::/10) and CGNAT (100.64/10) ranges, and these in
//     IPv4-mapped IPv6 form; but AllowHTTP allows loopback. Unspecified,
//     multicast, 0.0.0.0/8 and broadcast addresses are refused always;
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
