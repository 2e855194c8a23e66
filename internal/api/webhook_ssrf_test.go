package api_test

import (
	"fmt"
	"testing"
)

// A webhook cannot be pointed at an address that is not globally reachable
// (IANA's special-purpose ranges: TEST-NET, benchmarking, documentation,
// NAT64 and 6to4 forms of them) nor at this host's own addresses, on
// creation nor update: 422 on url, saying the operator can allow it.
func TestWebhookURLSpecialPurposeAddresses(t *testing.T) {
	e := newEnv(t)
	base := e.path("/api/accounts/%d/webhooks", e.acme)
	const want = `{"errors":{"url":["points to a private or internal address; the operator can allow it (--webhook-allow-private)"]}}`
	created := e.createWebhook(e.admin, map[string]any{"url": "https://hooks.example.org/tokend", "event_types": []string{"delivery"}})
	for _, url := range []string{
		"https://192.0.2.2/in",           // TEST-NET-1 (this VM's own address too)
		"https://198.18.0.1/in",          // benchmarking
		"https://198.19.255.254:8443/in", //
		"https://198.51.100.7/in",        // TEST-NET-2
		"https://203.0.113.7/in",         // TEST-NET-3
		"https://192.0.0.170/in",         // IETF protocol assignments
		"https://[2001:db8::1]/in",       // documentation
		"https://[2001::1]/in",           // Teredo
		"https://[64:ff9b::c000:202]/in", // NAT64 of 192.0.2.2
		"https://[2002:c612:1::1]/in",    // 6to4 of 198.18.0.1
		"https://[::ffff:198.18.0.1]/in", // IPv4-mapped
		"https://[fec0::1]/in",           // site-local
	} {
		t.Run(url, func(t *testing.T) {
			e := e.with(t)
			r := e.post(base, e.admin, map[string]any{"webhook": map[string]any{"url": url, "event_types": []string{"delivery"}}}).want(422)
			if got := string(r.Body); got != want+"\n" && got != want {
				t.Errorf("create: %s, want %s", got, want)
			}
			r = e.patch(fmt.Sprintf("%s/%d", base, created.ID), e.admin, map[string]any{"webhook": map[string]any{"url": url}}).want(422)
			if got := string(r.Body); got != want+"\n" && got != want {
				t.Errorf("update: %s, want %s", got, want)
			}
		})
	}
}
