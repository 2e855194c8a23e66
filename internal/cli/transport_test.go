package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/api"
)

func TestTransportRefusesPlainHTTPOnTheNetwork(t *testing.T) {
	var proxies api.Prefixes
	if err := proxies.Set("10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  ServeConfig
		ok   bool
		says string // in the message or the transport description
	}{
		{"loopback IPv4", ServeConfig{Addr: "127.0.0.1:8080"}, true, "loopback"},
		{"loopback IPv6", ServeConfig{Addr: "[::1]:8080"}, true, "loopback"},
		{"localhost", ServeConfig{Addr: "localhost:8080"}, true, "loopback"},
		{"every interface", ServeConfig{Addr: ":8080"}, false, "--insecure-http"},
		{"unspecified IPv4", ServeConfig{Addr: "0.0.0.0:8080"}, false, "--trusted-proxies"},
		{"a network address", ServeConfig{Addr: "192.0.2.10:8080"}, false, "--tls-cert"},
		{"with TLS", ServeConfig{Addr: "0.0.0.0:8443", TLSCert: "c.pem", TLSKey: "k.pem"}, true, "https"},
		{"behind trusted proxies", ServeConfig{Addr: "0.0.0.0:8080", TrustedProxies: proxies}, true, "10.0.0.0/8"},
		{"explicitly insecure", ServeConfig{Addr: "0.0.0.0:8080", InsecureHTTP: true}, true, "insecure-http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			how, err := transport(context.Background(), tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("transport(%+v) = %q, %v; want ok=%v", tt.cfg, how, err, tt.ok)
			}
			text := how
			if err != nil {
				text = err.Error()
				if ExitCode(err) != 2 {
					t.Errorf("exit code %d, want 2", ExitCode(err))
				}
			}
			if !strings.Contains(text, tt.says) {
				t.Errorf("%q does not mention %q", text, tt.says)
			}
		})
	}
}
