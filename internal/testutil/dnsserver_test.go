package testutil_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/tokend/tokend/internal/testutil"
)

// ask sends a TXT query for name over network, with EDNS0 when edns.
func ask(t *testing.T, s *testutil.DNSServer, network, name string, edns bool) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(mdns.Fqdn(name), mdns.TypeTXT)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &mdns.Client{Net: network, Timeout: time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s query for %s: %v", network, name, err)
	}
	return r
}

func TestDNSServerAnswers(t *testing.T) {
	s := testutil.StartDNS(t)
	s.AddTXT("Example.com", "v=spf1 -all")
	s.SetTXT("empty.example.com")
	s.AddTXT("gone.example.com", "x")
	s.Remove("GONE.example.com.")
	tests := []struct {
		name    string
		rcode   int
		answers int
	}{
		{"example.com", mdns.RcodeSuccess, 1},
		{"EXAMPLE.COM.", mdns.RcodeSuccess, 1},
		{"empty.example.com", mdns.RcodeSuccess, 0},
		{"gone.example.com", mdns.RcodeNameError, 0},
		{"never.example.com", mdns.RcodeNameError, 0},
	}
	for _, tt := range tests {
		r := ask(t, s, "udp", tt.name, false)
		if r.Rcode != tt.rcode || len(r.Answer) != tt.answers || !r.Authoritative {
			t.Errorf("%s: %s with %d answers (AA %t), want %s with %d", tt.name,
				mdns.RcodeToString[r.Rcode], len(r.Answer), r.Authoritative, mdns.RcodeToString[tt.rcode], tt.answers)
		}
	}
	if n := s.Queries(); n != len(tests) {
		t.Errorf("Queries() = %d, want %d", n, len(tests))
	}
}

// A DKIM record for a 2048-bit key and a few more records at one name make
// an answer over 512 bytes: truncated over UDP without EDNS0, whole with
// EDNS0 or over TCP.
func TestDNSServerTruncates(t *testing.T) {
	s := testutil.StartDNS(t)
	key := strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx", 9)[:392]
	s.AddTXT("example.com", "v=DKIM1; k=rsa; p="+key) // split in 255 + 155 bytes
	s.AddTXT("example.com", "v=spf1 include:_spf.tokend.test ~all")
	s.AddTXT("example.com", "tokend-verification=0123456789abcdef0123456789abcdef")
	s.AddTXT("example.com", "google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	for _, c := range []struct {
		network string
		edns    bool
		tc      bool
	}{{"udp", false, true}, {"udp", true, false}, {"tcp", false, false}} {
		r := ask(t, s, c.network, "example.com", c.edns)
		if r.Truncated != c.tc || (!c.tc && len(r.Answer) != 4) {
			t.Errorf("%s (EDNS0 %t): TC %t with %d answers, want TC %t", c.network, c.edns, r.Truncated, len(r.Answer), c.tc)
		}
		if !c.tc {
			if got := r.Answer[0].(*mdns.TXT).Txt; len(got) != 2 || len(got[0]) != 255 || got[0]+got[1] != "v=DKIM1; k=rsa; p="+key {
				t.Errorf("%s: the DKIM record came as %q", c.network, got)
			}
		}
	}
}

func TestDNSServerStopRestart(t *testing.T) {
	s := testutil.StartDNS(t)
	s.AddTXT("example.com", "v=spf1 -all")
	s.Stop()
	m := new(mdns.Msg).SetQuestion("example.com.", mdns.TypeTXT)
	for _, network := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: network, Timeout: 200 * time.Millisecond}
		if _, _, err := c.Exchange(m, s.Addr()); err == nil {
			t.Errorf("a stopped server answered over %s", network)
		}
	}
	s.Restart()
	s.FailWith(mdns.RcodeServerFailure)
	if r := ask(t, s, "tcp", "example.com", false); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("FailWith(SERVFAIL): %s", mdns.RcodeToString[r.Rcode])
	}
	s.FailWith(0)
	if r := ask(t, s, "udp", "example.com", true); len(r.Answer) != 1 {
		t.Errorf("restarted: %d answers, want 1", len(r.Answer))
	}
}

// Records change while queries are answered.
func TestDNSServerConcurrent(t *testing.T) {
	s := testutil.StartDNS(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := &mdns.Client{Timeout: time.Second}
			for range 20 {
				m := new(mdns.Msg).SetQuestion("a.example.com.", mdns.TypeTXT)
				if _, _, err := c.Exchange(m, s.Addr()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range 50 {
		s.AddTXT("example.com", "v=spf1 -all")
		s.SetCNAME("a.example.com", "example.com")
		if i%2 == 0 {
			s.Remove("example.com")
		}
	}
	wg.Wait()
	if n := s.Queries(); n != 80 {
		t.Errorf("Queries() = %d, want 80", n)
	}
}
