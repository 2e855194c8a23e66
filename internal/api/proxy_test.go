package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/app"
)

// behindProxy is an environment whose only trusted proxy is 127.0.0.1.
func behindProxy(t *testing.T, failureLimit int) *env {
	var proxies api.Prefixes
	if err := proxies.Set("127.0.0.1/32, ::1"); err != nil {
		t.Fatal(err)
	}
	return newEnv(t, withConfig(func(c *app.Config) {
		c.TrustedProxies = proxies
		c.AuthFailureLimit = failureLimit
	}))
}

// lastAuditAddr creates a project as the admin and returns the client address
// the audit log recorded for it.
func lastAuditAddr(e *env, from string, header http.Header) string {
	e.t.Helper()
	e.send(request{method: "POST", path: e.path("/api/accounts/%d/projects", e.acme), token: e.admin, from: from, header: header,
		body: map[string]any{"project": map[string]any{"name": "p"}}}).want(200)
	var page auditPage
	e.get("/api/audit_log?limit=1", e.admin).want(200).decode(&page)
	return page.Data[0].ClientAddr
}

func TestClientAddressFromTrustedProxiesOnly(t *testing.T) {
	e := behindProxy(t, 1_000_000)
	tests := []struct {
		name   string
		from   string
		header http.Header
		want   string
	}{
		{"trusted proxy, X-Forwarded-For", "127.0.0.1", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"client-written entries left of the proxy's are ignored", "127.0.0.1", http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}}, "203.0.113.9"},
		{"repeated header lines read as one list", "127.0.0.1", http.Header{"X-Forwarded-For": {"198.51.100.1", "203.0.113.10"}}, "203.0.113.10"},
		{"chain of trusted proxies", "127.0.0.1", http.Header{"X-Forwarded-For": {"203.0.113.11, 127.0.0.1"}}, "203.0.113.11"},
		{"Forwarded with IPv6 and port", "127.0.0.1", http.Header{"Forwarded": {`for="[2001:db8::1]:4711";proto=https`}}, "2001:db8::1"},
		{"X-Forwarded-For wins over Forwarded", "127.0.0.1", http.Header{"Forwarded": {"for=198.51.100.2"}, "X-Forwarded-For": {"203.0.113.12"}}, "203.0.113.12"},
		{"garbage entry stops at the proxy", "127.0.0.1", http.Header{"X-Forwarded-For": {"not-an-ip"}}, "127.0.0.1"},
		{"no header: the proxy itself", "127.0.0.1", nil, "127.0.0.1"},
		{"untrusted peer: header ignored", "127.0.0.2", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "127.0.0.2"},
		{"untrusted peer: Forwarded ignored", "127.0.0.2", http.Header{"Forwarded": {"for=203.0.113.9"}}, "127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lastAuditAddr(e.with(t), tt.from, tt.header); got != tt.want {
				t.Errorf("client address %q, want %q", got, tt.want)
			}
		})
	}
}

// Behind a proxy, one client's guessing throttles that client only, never the
// others who share the proxy's address; and without --trusted-proxies a
// client cannot dodge the throttle by writing X-Forwarded-For.
func TestThrottleBehindAProxyIsPerClient(t *testing.T) {
	e := behindProxy(t, 3)
	guess := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	bad := http.Header{"X-Forwarded-For": {"203.0.113.66"}}
	for i := 0; i < 3; i++ {
		e.send(request{method: "GET", path: "/api/whoami", token: guess, header: bad}).want(401)
	}
	assertThrottled(t, e.send(request{method: "GET", path: "/api/whoami", token: guess, header: bad}))
	good := e.createToken(e.admin, "good client", perm("account", e.acme, 10)) // not yet verified by the server
	e.send(request{method: "GET", path: "/api/whoami", token: good.Token, header: http.Header{"X-Forwarded-For": {"203.0.113.77"}}}).want(200)

	// From an untrusted peer, a rotating X-Forwarded-For changes nothing.
	for i := 0; i < 3; i++ {
		h := http.Header{"X-Forwarded-For": {"198.51.100." + string(rune('1'+i))}}
		e.send(request{method: "GET", path: "/api/whoami", token: guess, from: "127.0.0.4", header: h}).want(401)
	}
	assertThrottled(t, e.send(request{method: "GET", path: "/api/whoami", token: guess, from: "127.0.0.4",
		header: http.Header{"X-Forwarded-For": {"198.51.100.99"}}}))
}

// An IPv6 client is throttled by its /64: fresh addresses from the same
// network do not buy fresh guesses, while other networks are unaffected.
func TestThrottleCountsAnIPv6ClientByItsNetwork(t *testing.T) {
	e := behindProxy(t, 3)
	guess := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	for i := 1; i <= 3; i++ {
		e.send(request{method: "GET", path: "/api/whoami", token: guess, header: from(fmt.Sprintf("2001:db8:1:2::%x", i))}).want(401)
	}
	assertThrottled(t, e.send(request{method: "GET", path: "/api/whoami", token: guess, header: from("2001:db8:1:2:ffff::9")}))
	e.send(request{method: "GET", path: "/api/whoami", token: guess, header: from("2001:db8:1:3::1")}).want(401)
}

func TestPrefixesFlag(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"10.0.0.0/8", "10.0.0.0/8", true},
		{"10.1.2.3/8, 192.168.1.1", "10.0.0.0/8,192.168.1.1/32", true},
		{"::1,fd00::/8", "::1/128,fd00::/8", true},
		{"", "", true},
		{"10.0.0.0/33", "", false},
		{"proxy.local", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var p api.Prefixes
			err := p.Set(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("Set(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && p.String() != tt.want {
				t.Errorf("Set(%q) = %q, want %q", tt.in, p.String(), tt.want)
			}
		})
	}
}
