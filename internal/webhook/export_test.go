package webhook

import (
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"testing"
)

// TrustRoots makes c, a Policy's Client, trust the certificates in roots
// (a test server's), instead of the system's.
func TrustRoots(c *http.Client, roots *x509.CertPool) {
	c.Transport.(*transport).base.TLSClientConfig.RootCAs = roots
}

// SetHostAddrs makes this host's interface addresses addrs until t ends.
func SetHostAddrs(t *testing.T, addrs ...string) {
	var out []net.Addr
	for _, a := range addrs {
		out = append(out, &net.IPNet{IP: net.IP(netip.MustParseAddr(a).AsSlice()), Mask: net.CIDRMask(24, 32)})
	}
	old := hostAddrs
	hostAddrs = func() ([]net.Addr, error) { return out, nil }
	t.Cleanup(func() { hostAddrs = old })
}

// Allows is allows for an address in text.
func (p Policy) Allows(a string) bool { return p.allows(netip.MustParseAddr(a)) }
