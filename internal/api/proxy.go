package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Prefixes is a set of networks, given on the command line as comma-separated
// CIDRs (a bare address means just that host). It implements flag.Value.
type Prefixes []netip.Prefix

// String renders the set as it is given on the command line.
func (p *Prefixes) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, n := range *p {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

// Set parses comma-separated CIDRs, replacing the set.
func (p *Prefixes) Set(v string) error {
	var out Prefixes
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an IP address", f)
			}
			n = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, n.Masked())
	}
	*p = out
	return nil
}

// Contains reports whether a is in one of the networks.
func (p Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// maxForwardedHops bounds how much of a forwarding chain is read.
const maxForwardedHops = 32

// clientAddr is the address of the client a request comes from (see
// Prefixes.ClientAddr).
func (s *Server) clientAddr(r *http.Request) (addr string, viaProxy bool) {
	return s.opts.TrustedProxies.ClientAddr(r)
}

// ClientAddr is the address of the client r comes from, with p the trusted
// proxies. It is the connection's peer, unless the peer is a trusted proxy:
// then it is the rightmost address in X-Forwarded-For (or, when that header
// is absent, in Forwarded, or the address in X-Real-IP) that is not itself
// a trusted proxy. Entries left
// of it were written by the client and are never believed. An unreadable
// entry stops the walk at the last trusted hop, so a garbled header can
// blame a proxy but never lets a client choose its own address. The result
// is always a canonical IP, so it is bounded in size. viaProxy reports
// whether a trusted proxy forwarded the request.
func (p Prefixes) ClientAddr(r *http.Request) (addr string, viaProxy bool) {
	if len(p) == 0 {
		// The common case, without an allocation: the peer as the network
		// stack wrote it, which is bounded.
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host, false
		}
		return clip(r.RemoteAddr, 64), false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return clip(r.RemoteAddr, 64), false
	}
	ip := peer.Addr().Unmap()
	if !p.Contains(ip) {
		return ip.String(), false
	}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxForwardedHops; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			break
		}
		ip = hop
		if !p.Contains(hop) {
			break
		}
	}
	return ip.String(), true
}

// forwardedFor returns the addresses of the forwarding chain, client first:
// every X-Forwarded-For value in order, or, only when there is none, the for=
// parameters of Forwarded (RFC 7239), or, when neither is there, the one
// address of X-Real-IP (nginx's proxy_set_header X-Real-IP $remote_addr).
func forwardedFor(h http.Header) []string {
	var hops []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, v := range xff {
			for _, f := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(f))
			}
		}
		return hops
	}
	if len(h.Values("Forwarded")) == 0 {
		if real := h.Values("X-Real-Ip"); len(real) == 1 {
			return []string{strings.TrimSpace(real[0])}
		}
		return nil
	}
	for _, v := range h.Values("Forwarded") {
		for _, elem := range strings.Split(v, ",") {
			found := ""
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					found = strings.Trim(val, `"`)
				}
			}
			hops = append(hops, found)
		}
	}
	return hops
}

// parseHop reads one forwarding entry: an IP, an IP:port, or [IPv6]:port.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// forwardedHTTPS reports whether a trusted proxy says the client used HTTPS.
func forwardedHTTPS(h http.Header) bool {
	if p := h.Get("X-Forwarded-Proto"); p != "" {
		return strings.EqualFold(strings.TrimSpace(p), "https")
	}
	for _, v := range h.Values("Forwarded") {
		for _, pair := range strings.Split(v, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(val, `"`), "https") {
				return true
			}
		}
	}
	return false
}

// clip bounds a string copied from a request into logs.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
