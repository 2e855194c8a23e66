package dns_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/tokend/tokend/internal/dns"
	"github.com/tokend/tokend/internal/testutil"
)

// opts keep the failing lookups short: at most 2 × 200 ms.
var opts = dns.Options{Timeout: 200 * time.Millisecond, Attempts: 2}

// bound is how long a lookup may take with opts, with some slack for a
// loaded machine.
const bound = 2*200*time.Millisecond + 300*time.Millisecond

func resolver(t *testing.T, server string) *dns.Resolver {
	t.Helper()
	r, err := dns.New(server, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dkim returns a DKIM record for a 2048-bit RSA key (392 bytes of base64),
// different for each seed, and the two strings it is published as.
func dkim(seed byte) (record string, strs []string) {
	key := make([]byte, 294)
	for i := range key {
		key[i] = seed + byte(i)*7
	}
	record = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(key)
	return record, []string{record[:255], record[255:]}
}

func TestLookupTXT(t *testing.T) {
	dkim1, dkim1Strs := dkim(1)
	dkim2, dkim2Strs := dkim(2)
	dkim3, dkim3Strs := dkim(3)
	dkim4, dkim4Strs := dkim(4)
	tokens := []string{
		"tokend-verification=0123456789abcdef0123456789abcdef",
		"google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"v=spf1 include:_spf.tokend.test ~all",
	}
	tests := []struct {
		name    string
		setup   func(s *testutil.DNSServer)
		lookup  string
		want    []string
		queries int // how many queries the server answers
	}{{
		name:    "single record",
		setup:   func(s *testutil.DNSServer) { s.AddTXT("example.com", "v=spf1 -all") },
		lookup:  "example.com",
		want:    []string{"v=spf1 -all"},
		queries: 1,
	}, {
		name: "several records",
		setup: func(s *testutil.DNSServer) {
			s.AddTXT("example.com", "v=spf1 -all")
			s.AddTXT("example.com", "tokend-verification=abc")
		},
		lookup:  "example.com",
		want:    []string{"v=spf1 -all", "tokend-verification=abc"},
		queries: 1,
	}, {
		name:    "split strings joined",
		setup:   func(s *testutil.DNSServer) { s.SetTXT("s1._domainkey.example.com", dkim1Strs) },
		lookup:  "s1._domainkey.example.com",
		want:    []string{dkim1},
		queries: 1,
	}, {
		name:    "mixed case name",
		setup:   func(s *testutil.DNSServer) { s.AddTXT("_dmarc.example.com", "v=DMARC1; p=none") },
		lookup:  "_DMARC.Example.COM",
		want:    []string{"v=DMARC1; p=none"},
		queries: 1,
	}, {
		name:    "trailing dot",
		setup:   func(s *testutil.DNSServer) { s.AddTXT("example.com", "v=spf1 -all") },
		lookup:  "example.com.",
		want:    []string{"v=spf1 -all"},
		queries: 1,
	}, {
		name:    "bytes that DNS escapes",
		setup:   func(s *testutil.DNSServer) { s.AddTXT("example.com", `a "quoted" \ back`, "slash; é\x00\x7f") },
		lookup:  "example.com",
		want:    []string{`a "quoted" \ backslash; é` + "\x00\x7f"},
		queries: 1,
	}, {
		name:    "NXDOMAIN",
		setup:   func(s *testutil.DNSServer) { s.AddTXT("example.com", "v=spf1 -all") },
		lookup:  "_dmarc.example.com",
		queries: 1,
	}, {
		name:    "NODATA",
		setup:   func(s *testutil.DNSServer) { s.SetTXT("example.com") },
		lookup:  "example.com",
		queries: 1,
	}, {
		name: "CNAME followed",
		setup: func(s *testutil.DNSServer) {
			s.SetCNAME("s1._domainkey.example.com", "s1.dkim.tokend.test")
			s.SetTXT("s1.dkim.tokend.test", dkim1Strs)
		},
		lookup:  "s1._domainkey.example.com",
		want:    []string{dkim1},
		queries: 1,
	}, {
		name: "CNAME chain followed",
		setup: func(s *testutil.DNSServer) {
			s.SetCNAME("a.example.com", "B.example.com.")
			s.SetCNAME("b.example.com", "c.example.com")
			s.AddTXT("c.example.com", "at c")
		},
		lookup:  "a.example.com",
		want:    []string{"at c"},
		queries: 1,
	}, {
		name: "CNAME target asked for",
		setup: func(s *testutil.DNSServer) {
			s.ChaseCNAMEs(false)
			s.SetCNAME("a.example.com", "b.example.com")
			s.SetCNAME("b.example.com", "c.example.com")
			s.AddTXT("c.example.com", "at c")
		},
		lookup:  "a.example.com",
		want:    []string{"at c"},
		queries: 3,
	}, {
		name:    "CNAME to nowhere",
		setup:   func(s *testutil.DNSServer) { s.SetCNAME("a.example.com", "gone.example.com") },
		lookup:  "a.example.com",
		queries: 1,
	}, {
		name: "CNAME to no TXT",
		setup: func(s *testutil.DNSServer) {
			s.SetCNAME("a.example.com", "b.example.com")
			s.SetTXT("b.example.com")
		},
		lookup:  "a.example.com",
		queries: 2, // the answer could be an authoritative server's, without the target
	}, {
		name: "answer over 512 bytes",
		setup: func(s *testutil.DNSServer) {
			s.SetTXT("example.com", dkim1Strs)
			for _, tok := range tokens {
				s.AddTXT("example.com", tok)
			}
		},
		lookup:  "example.com",
		want:    append([]string{dkim1}, tokens...),
		queries: 1, // with EDNS0
	}, {
		name: "truncation: TCP fallback",
		setup: func(s *testutil.DNSServer) {
			s.SetTXT("example.com", dkim1Strs, dkim2Strs, dkim3Strs, dkim4Strs)
		},
		lookup:  "example.com",
		want:    []string{dkim1, dkim2, dkim3, dkim4},
		queries: 2, // UDP, truncated; TCP
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testutil.StartDNS(t)
			tt.setup(s)
			got, err := resolver(t, s.Addr()).LookupTXT(t.Context(), tt.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("LookupTXT(%q) = %q, want %q", tt.lookup, got, tt.want)
			}
			if n := s.Queries(); n != tt.queries {
				t.Errorf("%d queries, want %d", n, tt.queries)
			}
		})
	}
}

func TestLookupTXTFails(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, s *testutil.DNSServer) (server string, ctx context.Context)
		lookup    string
		temporary bool
		says      []string // what the error says
		within    time.Duration
	}{{
		name: "SERVFAIL",
		setup: func(t *testing.T, s *testutil.DNSServer) (string, context.Context) {
			s.AddTXT("example.com", "v=spf1 -all")
			s.FailWith(mdns.RcodeServerFailure)
			return s.Addr(), t.Context()
		},
		temporary: true,
		says:      []string{"SERVFAIL", "query 2 of 2"},
		within:    bound,
	}, {
		name: "REFUSED",
		setup: func(t *testing.T, s *testutil.DNSServer) (string, context.Context) {
			s.FailWith(mdns.RcodeRefused)
			return s.Addr(), t.Context()
		},
		temporary: true,
		says:      []string{"REFUSED"},
		within:    bound,
	}, {
		name: "server stopped",
		setup: func(t *testing.T, s *testutil.DNSServer) (string, context.Context) {
			s.AddTXT("example.com", "v=spf1 -all")
			s.Stop()
			return s.Addr(), t.Context()
		},
		temporary: true,
		within:    bound,
	}, {
		name: "server silent",
		setup: func(t *testing.T, _ *testutil.DNSServer) (string, context.Context) {
			return silentUDP(t), t.Context()
		},
		temporary: true,
		says:      []string{"timeout"},
		within:    bound,
	}, {
		name: "ctx cancelled",
		setup: func(t *testing.T, _ *testutil.DNSServer) (string, context.Context) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(50*time.Millisecond, cancel)
			return silentUDP(t), ctx
		},
		temporary: true,
		says:      []string{context.Canceled.Error()},
		within:    150 * time.Millisecond,
	}, {
		name: "ctx deadline before the bound",
		setup: func(t *testing.T, _ *testutil.DNSServer) (string, context.Context) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			t.Cleanup(cancel)
			return silentUDP(t), ctx
		},
		temporary: true,
		within:    200 * time.Millisecond,
	}, {
		name: "CNAME loop",
		setup: func(t *testing.T, s *testutil.DNSServer) (string, context.Context) {
			s.SetCNAME("a.example.com", "b.example.com")
			s.SetCNAME("b.example.com", "a.example.com")
			return s.Addr(), t.Context()
		},
		lookup: "a.example.com",
		says:   []string{"CNAME"},
		within: bound,
	}, {
		name: "not a domain name",
		setup: func(t *testing.T, s *testutil.DNSServer) (string, context.Context) {
			return s.Addr(), t.Context()
		},
		lookup: strings.Repeat("a", 64) + ".example.com",
		says:   []string{"not a domain name"},
		within: 10 * time.Millisecond,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, ctx := tt.setup(t, testutil.StartDNS(t))
			lookup := cmp.Or(tt.lookup, "example.com")
			start := time.Now()
			got, err := resolver(t, server).LookupTXT(ctx, lookup)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("LookupTXT(%q) = %q, want an error", lookup, got)
			}
			t.Logf("took %v: %v", took, err)
			if errors.Is(err, dns.ErrTemporary) != tt.temporary {
				t.Errorf("errors.Is(err, ErrTemporary) = %t, want %t", !tt.temporary, tt.temporary)
			}
			if tt.temporary && !strings.Contains(err.Error(), server) {
				t.Errorf("the error does not name server %s", server)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not say %q", s)
				}
			}
			if took > tt.within {
				t.Errorf("took %v, want at most %v", took, tt.within)
			}
		})
	}
}

// silentUDP returns the address of a UDP socket that never answers.
func silentUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// A server that comes back answers again, with the same records.
func TestLookupTXTRecovers(t *testing.T) {
	s := testutil.StartDNS(t)
	s.AddTXT("example.com", "v=spf1 -all")
	r := resolver(t, s.Addr())
	s.Stop()
	if _, err := r.LookupTXT(t.Context(), "example.com"); !errors.Is(err, dns.ErrTemporary) {
		t.Fatalf("server stopped: %v, want ErrTemporary", err)
	}
	s.Restart()
	s.FailWith(mdns.RcodeServerFailure)
	if _, err := r.LookupTXT(t.Context(), "example.com"); !errors.Is(err, dns.ErrTemporary) {
		t.Fatalf("SERVFAIL: %v, want ErrTemporary", err)
	}
	s.FailWith(0)
	got, err := r.LookupTXT(t.Context(), "example.com")
	if err != nil || !slices.Equal(got, []string{"v=spf1 -all"}) {
		t.Fatalf("server back = %q, %v", got, err)
	}
}

// The servers of resolv.conf are asked in turn.
func TestServersInTurn(t *testing.T) {
	down, failing, up := testutil.StartDNS(t), testutil.StartDNS(t), testutil.StartDNS(t)
	down.Stop()
	failing.FailWith(mdns.RcodeServerFailure)
	up.AddTXT("example.com", "v=spf1 -all")
	r := dns.NewServers([]string{down.Addr(), failing.Addr(), up.Addr()}, dns.Options{Timeout: 200 * time.Millisecond, Attempts: 3})
	got, err := r.LookupTXT(t.Context(), "example.com")
	if err != nil || !slices.Equal(got, []string{"v=spf1 -all"}) {
		t.Fatalf("LookupTXT = %q, %v", got, err)
	}
	if failing.Queries() != 1 || up.Queries() != 1 {
		t.Errorf("the failing server answered %d queries and the good one %d, want 1 and 1", failing.Queries(), up.Queries())
	}
}

func TestNew(t *testing.T) {
	for _, server := range []string{"", "127.0.0.1:53", "[::1]:53", "dns.internal:5353"} {
		if _, err := dns.New(server, dns.Options{}); err != nil {
			t.Errorf("New(%q): %v", server, err)
		}
	}
	for _, server := range []string{"bad", "127.0.0.1", ":53", "127.0.0.1:", "127.0.0.1:dns", "127.0.0.1:0", "127.0.0.1:65536", "::1:53"} {
		if _, err := dns.New(server, dns.Options{}); err == nil {
			t.Errorf("New(%q) took it", server)
		} else if !strings.Contains(err.Error(), server) {
			t.Errorf("New(%q): %v, which does not name it", server, err)
		}
	}
}

func TestSystemServers(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("# test\nsearch example.com\nnameserver 10.0.0.1\nnameserver 2001:db8::1\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := dns.SystemServers(conf), []string{"10.0.0.1:53", "[2001:db8::1]:53"}; !slices.Equal(got, want) {
		t.Errorf("servers of %s = %q, want %q", conf, got, want)
	}
	if got, want := dns.SystemServers(filepath.Join(t.TempDir(), "none")), []string{"127.0.0.1:53"}; !slices.Equal(got, want) {
		t.Errorf("servers without resolv.conf = %q, want %q", got, want)
	}
}
