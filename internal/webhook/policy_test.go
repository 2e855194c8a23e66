package webhook_test

import (
	"net"
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
		{"public IPv4 literal", strict, "https://93.184.215.14/in", ""},
		{"public IPv6 literal", strict, "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/in", ""},
		{"TEST-NET-1", strict, "https://192.0.2.2/in", private},
		{"TEST-NET-1 allowed", inPrivate, "https://192.0.2.2/in", ""},
		{"benchmarking", strict, "https://198.18.0.1/in", private},
		{"documentation IPv6", strict, "https://[2001:db8::1]/in", private},
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
		{"NAT64 of a public address", strict, "https://[64:ff9b::5db8:d70e]/in", ""},
		{"NAT64 of TEST-NET-3", strict, "https://[64:ff9b::cb00:7107]/in", private},
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

// The classifier: which addresses a delivery may reach, strictly and with
// AllowPrivate (AllowHTTP adds loopback to the strict set).
func TestPolicyAllows(t *testing.T) {
	webhook.SetHostAddrs(t, "127.0.0.1", "::1", "93.184.215.15", "2606:4700::6810:84e5")
	const (
		public   = iota // allowed by every policy
		internal        // allowed only by AllowPrivate
		loopback        // allowed by AllowPrivate or AllowHTTP
		never           // no endpoint's address: refused always
	)
	tests := []struct {
		addr string
		kind int
	}{
		{"93.184.215.14", public},
		{"1.1.1.1", public},
		{"8.8.8.8", public},
		{"192.0.1.255", public},
		{"192.0.3.0", public},
		{"198.17.255.255", public},
		{"198.20.0.0", public},
		{"223.255.255.255", public},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", public},
		{"2001:4860:4860::8888", public},
		{"2001:200::1", public},            // just past 2001::/23
		{"::ffff:93.184.215.14", public},   // IPv4-mapped
		{"64:ff9b::5db8:d70e", public},     // NAT64 of 93.184.215.14
		{"2002:5db8:d70e::1", public},      // 6to4 of 93.184.215.14
		{"0.0.0.0", never},                 // this network
		{"0.1.2.3", never},                 //
		{"10.1.2.3", internal},             // private
		{"100.64.0.1", internal},           // shared address space
		{"100.127.255.255", internal},      //
		{"127.0.0.1", loopback},            // loopback
		{"127.255.255.254", loopback},      //
		{"169.254.169.254", internal},      // link-local, cloud metadata
		{"172.16.0.1", internal},           // private
		{"172.31.255.255", internal},       //
		{"192.0.0.1", internal},            // IETF protocol assignments
		{"192.0.0.170", internal},          // NAT64 discovery
		{"192.0.2.2", internal},            // TEST-NET-1
		{"192.88.99.1", internal},          // 6to4 relay anycast
		{"192.168.0.1", internal},          // private
		{"198.18.0.1", internal},           // benchmarking
		{"198.19.255.255", internal},       //
		{"198.51.100.7", internal},         // TEST-NET-2
		{"203.0.113.7", internal},          // TEST-NET-3
		{"224.0.0.1", never},               // multicast
		{"239.255.255.250", never},         //
		{"240.0.0.1", never},               // reserved
		{"255.255.255.255", never},         // broadcast
		{"::", never},                      // unspecified
		{"::1", loopback},                  // loopback
		{"::ffff:10.0.0.1", internal},      // IPv4-mapped
		{"::ffff:127.0.0.1", loopback},     //
		{"::ffff:198.18.0.1", internal},    //
		{"::ffff:0.0.0.0", never},          //
		{"::a00:1", internal},              // IPv4-compatible
		{"64:ff9b::c000:202", internal},    // NAT64 of 192.0.2.2
		{"64:ff9b::a9fe:a9fe", internal},   // NAT64 of 169.254.169.254
		{"64:ff9b::7f00:1", loopback},      // NAT64 of 127.0.0.1
		{"64:ff9b:1::5db8:d70e", internal}, // local-use NAT64
		{"2002:a00:1::1", internal},        // 6to4 of 10.0.0.1
		{"2002:c612:1::1", internal},       // 6to4 of 198.18.0.1
		{"100::1", internal},               // discard-only
		{"2001::1", internal},              // Teredo
		{"2001:1::1", internal},            // IETF protocol assignments
		{"2001:1ff:ffff::1", internal},     //
		{"2001:db8::1", internal},          // documentation
		{"3fff::1", internal},              // documentation
		{"5f00::1", internal},              // segment routing
		{"fc00::1", internal},              // unique local
		{"fd00::2", internal},              //
		{"fe80::1", internal},              // link-local
		{"fe80::1%eth0", internal},         //
		{"fec0::1", internal},              // site-local
		{"ff02::1", never},                 // multicast
		{"93.184.215.15", internal},        // this host's own address
		{"::ffff:93.184.215.15", internal}, //
		{"64:ff9b::5db8:d70f", internal},   //
		{"2606:4700::6810:84e5", internal}, //
	}
	strict, devHTTP, inPrivate := webhook.Policy{}, webhook.Policy{AllowHTTP: true}, webhook.Policy{AllowPrivate: true}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			want := [3]bool{tt.kind == public, tt.kind == public || tt.kind == loopback, tt.kind != never}
			got := [3]bool{strict.Allows(tt.addr), devHTTP.Allows(tt.addr), inPrivate.Allows(tt.addr)}
			if got != want {
				t.Errorf("allows %s: strict, AllowHTTP, AllowPrivate = %v, want %v", tt.addr, got, want)
			}
		})
	}
}

// This host's own addresses are refused, as read from its interfaces.
func TestPolicyRefusesThisHostsAddresses(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if (webhook.Policy{}).Allows(n.IP.String()) {
			t.Errorf("this host's address %s is allowed", n.IP)
		}
	}
}
