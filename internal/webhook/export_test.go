package webhook

import (
	"crypto/x509"
	"net/http"
)

// TrustRoots makes c, a Policy's Client, trust the certificates in roots
// (a test server's), instead of the system's.
func TrustRoots(c *http.Client, roots *x509.CertPool) {
	c.Transport.(*transport).base.TLSClientConfig.RootCAs = roots
}
