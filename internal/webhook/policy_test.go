package webhook_test

import (
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/webhook"
)

func TestValidateURL(t *testing.T) {
	const (
		httpOnly = "http:// is only allowed for loopback hosts, and only when the operator allows it (--webhook-allow-http)"
		private  = "points to a private or internal address; the operator can allow it (--webhook-allow-private)"
	)
	var (
		strict    = webhook.Policy{}
		devHTTP   = webhook.Policy{AllowHTTP: true}
		inPrivate = webhook.Policy{AllowPrivate: true}
	)
	long := "https://example.com/" + strings.Repeat("a", 2048-len("https://example.com/"))
	tests := []struct {
		name   string
		policy webhook.Policy
		url    string
		want   string
	}{
		{"https", strict, "https://hooks.example.com/mailtrap?token=abc", ""},
		{"https with a port", strict, "https://hooks.example.com:8443/in", ""},
		{"public IPv4 literal", strict, "https://203.0.113.7/in", ""},
		{"public IPv6 literal", strict, "https://[2001:db8::1]/in", ""},
		{"http to 127.0.0.1 allowed", devHTTP, "http://127.0.0.1:8080/in", ""},
		{"http to localhost allowed", devHTTP, "http://localhost:8080/in", ""},
		{"http to [::1] allowed", devHTTP, "http://[::1]:8080/in", ""},
		{"http to 127.0.0.1 not allowed", strict, "http://127.0.0.1:8080/in", httpOnly},
		{"http to example.com even if allowed", devHTTP, "http://example.com/in", httpOnly},
		{"http to a private address even if allowed", webhook.Policy{AllowHTTP: true, AllowPrivate: true}, "http://10.0.0.1/in", httpOnly},
		{"ftp", strict, "ftp://example.com/in", "must be an https:// URL"},
		{"no scheme", strict, "example.com/in", "must be an https:// URL"},
		{"credentials", strict, "https://user:pass@example.com/in", "must not contain credentials"},
		{"user only", strict, "https://user@example.com/in", "must not contain credentials"},
		{"no host", strict, "https:///in", "must name a host"},
		{"port only", strict, "https://:443/in", "must name a host"},
		{"opaque", strict, "https:example.com", "must name a host"},
		{"fragment", strict, "https://example.com/in#top", "must not have a fragment"},
		{"empty fragment", strict, "https://example.com/in#", "must not have a fragment"},
		{"not a URL", strict, "https://exa mple.com/", "is not a valid URL"},
		{"longest", strict, long, ""},
		{"too long", strict, long + "a", "must be at most 2048 characters long"},
		{"10.0.0.1", strict, "https://10.0.0.1/in", private},
		{"10.0.0.1 allowed", inPrivate, "https://10.0.0.1/in", ""},
		{"172.16.0.1", strict, "https://172.16.0.1/in", private},
		{"192.168.1.1", strict, "https://192.168.1.1/in", private},
		{"cloud metadata", strict, "https://169.254.169.254/latest/meta-data/", private},
		{"cloud metadata allowed", inPrivate, "https://169.254.169.254/latest/meta-data/", ""},
		{"cloud metadata with AllowHTTP", devHTTP, "https://169.254.169.254/", private},
		{"[::1]", strict, "https://[::1]/in", private},
		{"[::1] allowed", inPrivate, "https://[::1]/in", ""},
		{"[::1] with AllowHTTP", devHTTP, "https://[::1]/in", ""},
		{"127.0.0.1", strict, "https://127.0.0.1/in", private},
		{"127.1.2.3", strict, "https://127.1.2.3/in", private},
		{"localhost", strict, "https://localhost/in", private},
		{"LOCALHOST.", strict, "https://LOCALHOST./in", private},
		{"under localhost", strict, "https://hooks.localhost/in", private},
		{"localhost allowed", inPrivate, "https://localhost/in", ""},
		{"[fd00::1]", strict, "https://[fd00::1]/in", private},
		{"[fd00::1] allowed", inPrivate, "https://[fd00::1]/in", ""},
		{"[fe80::1%25eth0]", strict, "https://[fe80::1%25eth0]/in", private},
		{"100.64.0.1", strict, "https://100.64.0.1/in", private},
		{"100.64.0.1 allowed", inPrivate, "https://100.64.0.1/in", ""},
		{"IPv4-mapped 10.0.0.1", strict, "https://[::ffff:10.0.0.1]/in", private},
		{"IPv4-mapped 127.0.0.1", strict, "https://[::ffff:127.0.0.1]/in", private},
		{"NAT64 of 169.254.169.254", strict, "https://[64:ff9b::a9fe:a9fe]/in", private},
		{"NAT64 of a public address", strict, "https://[64:ff9b::cb00:7107]/in", ""},
		{"0.0.0.0", strict, "https://0.0.0.0/in", private},
		{"0.0.0.0 even if allowed", inPrivate, "https://0.0.0.0/in", private},
		{"[::] even if allowed", inPrivate, "https://[::]/in", private},
		{"broadcast even if allowed", inPrivate, "https://255.255.255.255/in", private},
		{"multicast even if allowed", inPrivate, "https://224.0.0.1/in", private},
		{"a name is not resolved", strict, "https://internal.corp.example/in", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.ValidateURL(tt.url); got != tt.want {
				t.Errorf("%+v.ValidateURL(%q) = %q, want %q", tt.policy, tt.url, got, tt.want)
			}
		})
	}
}
