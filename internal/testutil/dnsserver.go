package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// DNSServer is a real authoritative DNS server on 127.0.0.1, UDP and TCP on
// the same port, whose records tests change while it runs. It answers TXT
// and CNAME records, for names in any case, trailing dot optional. A name it
// was never told of (or told to Remove) answers NXDOMAIN; a known name
// without TXT records answers NOERROR with no answer (NODATA). Over UDP an
// answer larger than the query allows (512 bytes, or its EDNS0 size) is
// truncated, with TC set, so that clients ask again over TCP. It is safe for
// concurrent use.
type DNSServer struct {
	t    testing.TB
	addr string

	mu      sync.Mutex
	names   map[string]*dnsName // by canonical name
	rcode   int
	noChase bool
	queries int
	udp     *mdns.Server
	tcp     *mdns.Server
}

// dnsName is what a name holds: an alias, or TXT records.
type dnsName struct {
	cname string     // canonical target
	txt   [][]string // each record's character-strings, escaped for miekg/dns
}

// StartDNS starts a DNS server with no records on a free loopback port; it
// stops with the test.
func StartDNS(t testing.TB) *DNSServer {
	t.Helper()
	s := &DNSServer{t: t, names: make(map[string]*dnsName)}
	var err error
	for i := 0; i < 10; i++ { // the TCP port may be taken for UDP
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			break
		}
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err != nil {
			ln.Close()
			continue
		}
		s.addr = ln.Addr().String()
		err = s.serve(pc, ln)
		break
	}
	if err != nil {
		t.Fatalf("start DNS server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's address, "127.0.0.1:port", for UDP and TCP.
func (s *DNSServer) Addr() string { return s.addr }

// SetTXT replaces the TXT records at name with values, each a record given
// as its character-strings (a string over 255 bytes is split in 255-byte
// strings, as DNS providers do). With no values, name has no TXT records
// left but stays known (NODATA). It replaces an alias.
func (s *DNSServer) SetTXT(name string, values ...[]string) {
	var txt [][]string
	for _, v := range values {
		txt = append(txt, txtStrings(v))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[mdns.CanonicalName(name)] = &dnsName{txt: txt}
}

// AddTXT adds a TXT record of those character-strings at name, replacing
// an alias.
func (s *DNSServer) AddTXT(name string, strs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.names[mdns.CanonicalName(name)]
	if n == nil || n.cname != "" {
		n = &dnsName{}
		s.names[mdns.CanonicalName(name)] = n
	}
	n.txt = append(n.txt, txtStrings(strs))
}

// SetCNAME makes name an alias of target, replacing its TXT records.
func (s *DNSServer) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[mdns.CanonicalName(name)] = &dnsName{cname: mdns.CanonicalName(target)}
}

// Remove forgets name: it answers NXDOMAIN.
func (s *DNSServer) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.names, mdns.CanonicalName(name))
}

// ChaseCNAMEs chooses whether an answer for an alias also holds what its
// target holds, following the chain (the default, as a recursive resolver
// or an authoritative server does within its zone), or only the CNAME
// record (as an authoritative server answers for a target in another zone),
// so that the client must ask for the target itself.
func (s *DNSServer) ChaseCNAMEs(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noChase = !on
}

// FailWith makes the server answer every query with rcode (as
// mdns.RcodeServerFailure) and nothing else, until FailWith(0).
func (s *DNSServer) FailWith(rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode = rcode
}

// Queries is the number of queries the server has answered so far, over
// UDP and TCP.
func (s *DNSServer) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// Stop closes the server's sockets: DNS is down, and queries are refused
// (ICMP port unreachable, TCP reset). It keeps the records.
func (s *DNSServer) Stop() {
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.udp, s.tcp = nil, nil
	s.mu.Unlock()
	if udp != nil {
		udp.Shutdown()
		tcp.Shutdown()
	}
}

// Restart answers again on the same address after Stop.
func (s *DNSServer) Restart() {
	s.t.Helper()
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after Stop
		var ln net.Listener
		var pc net.PacketConn
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			if pc, err = net.ListenPacket("udp", s.addr); err == nil {
				err = s.serve(pc, ln)
				break
			}
			ln.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("restart DNS server on %s: %v", s.addr, err)
	}
}

// serve answers on pc and ln until Stop.
func (s *DNSServer) serve(pc net.PacketConn, ln net.Listener) error {
	h := mdns.HandlerFunc(s.answer)
	udp := &mdns.Server{PacketConn: pc, Handler: h}
	tcp := &mdns.Server{Listener: ln, Handler: h}
	if err := activate(udp); err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	if err := activate(tcp); err != nil {
		udp.Shutdown()
		ln.Close()
		return err
	}
	s.mu.Lock()
	s.udp, s.tcp = udp, tcp
	s.mu.Unlock()
	return nil
}

// activate starts srv and returns once it serves (Shutdown fails before).
func activate(srv *mdns.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	failed := make(chan error, 1)
	go func() { failed <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-failed:
		return err
	}
}

func (s *DNSServer) answer(w mdns.ResponseWriter, req *mdns.Msg) {
	m := s.reply(req)
	size := mdns.MinMsgSize
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(1232, false)
		size = int(o.UDPSize())
	}
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// reply builds the answer to req from the records.
func (s *DNSServer) reply(req *mdns.Msg) *mdns.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	m := new(mdns.Msg).SetReply(req)
	if s.rcode != 0 {
		m.Rcode = s.rcode
		return m
	}
	m.Authoritative = true
	if len(req.Question) != 1 || req.Question[0].Qclass != mdns.ClassINET {
		m.Rcode = mdns.RcodeRefused
		return m
	}
	q := req.Question[0]
	name := mdns.CanonicalName(q.Name)
	for seen := map[string]bool{}; ; seen[name] = true {
		n := s.names[name]
		if n == nil {
			m.Rcode = mdns.RcodeNameError
			return m
		}
		if n.cname == "" || q.Qtype == mdns.TypeCNAME {
			if n.cname != "" {
				m.Answer = append(m.Answer, &mdns.CNAME{Hdr: rrHeader(name, mdns.TypeCNAME), Target: n.cname})
			}
			if q.Qtype == mdns.TypeTXT {
				for _, txt := range n.txt {
					m.Answer = append(m.Answer, &mdns.TXT{Hdr: rrHeader(name, mdns.TypeTXT), Txt: txt})
				}
			}
			return m
		}
		m.Answer = append(m.Answer, &mdns.CNAME{Hdr: rrHeader(name, mdns.TypeCNAME), Target: n.cname})
		if s.noChase || seen[n.cname] || len(seen) >= 8 {
			return m
		}
		name = n.cname
	}
}

func rrHeader(name string, rrtype uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: 60}
}

// txtStrings splits strs in strings of at most 255 bytes and escapes them
// for miekg/dns, which reads \ as an escape.
func txtStrings(strs []string) []string {
	var out []string
	for _, s := range strs {
		for first := true; first || s != ""; first = false {
			n := min(len(s), 255)
			out = append(out, strings.ReplaceAll(s[:n], `\`, `\\`))
			s = s[n:]
		}
	}
	return out
}
