// Package dns looks up the TXT records that prove a sending domain's
// ownership and publish its SPF, DKIM and DMARC policies. It asks DNS
// servers directly, so it can tell a record that is definitely not published
// (NXDOMAIN, NODATA) from a lookup that failed for now.
package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// ErrTemporary is wrapped by every error that says nothing about the
// records themselves: a server that timed out, failed (SERVFAIL), refused,
// was unreachable or sent a reply that could not be used, or a context that
// ended first. Asking again later may succeed.
var ErrTemporary = errors.New("temporary DNS failure")

const (
	// udpSize is the EDNS0 buffer size advertised, the DNS Flag Day 2020
	// value: it avoids IP fragmentation on every common path.
	udpSize = 1232
	// maxCNAMEs is how many aliases a lookup follows before giving up.
	maxCNAMEs = 8
	// resolvConf lists the system's resolvers.
	resolvConf = "/etc/resolv.conf"
)

// Options tune a Resolver. A zero or negative field takes its default.
type Options struct {
	// Timeout bounds one exchange with one server: a query over UDP, or
	// its retry over TCP after a truncated answer. Default 2 s.
	Timeout time.Duration
	// Attempts is how many times a query is sent before the lookup fails,
	// each time to the next server in turn (so set it to at least the number
	// of servers for each to be asked). Default 3.
	Attempts int
}

// Resolver looks up TXT records. It is safe for concurrent use.
type Resolver struct {
	servers  []string // host:port
	timeout  time.Duration
	attempts int
}

// New returns a resolver asking server ("host:port"). An empty server means
// the system's resolvers, the nameserver lines of /etc/resolv.conf read
// now, on port 53 (127.0.0.1:53 if the file is unreadable or names none).
// It fails only on a malformed server.
func New(server string, opts Options) (*Resolver, error) {
	var servers []string
	if server == "" {
		servers = systemServers(resolvConf)
	} else {
		host, port, err := net.SplitHostPort(server)
		if err != nil {
			return nil, fmt.Errorf("dns: server %q: want host:port: %w", server, err)
		}
		if host == "" {
			return nil, fmt.Errorf("dns: server %q: no host", server)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return nil, fmt.Errorf("dns: server %q: port %q is not a number from 1 to 65535", server, port)
		}
		servers = []string{server}
	}
	return newResolver(servers, opts), nil
}

func newResolver(servers []string, opts Options) *Resolver {
	r := &Resolver{servers: servers, timeout: opts.Timeout, attempts: opts.Attempts}
	if r.timeout <= 0 {
		r.timeout = 2 * time.Second
	}
	if r.attempts <= 0 {
		r.attempts = 3
	}
	return r
}

// systemServers returns the servers a resolv.conf file names, or
// 127.0.0.1:53.
func systemServers(path string) []string {
	conf, err := mdns.ClientConfigFromFile(path)
	if err != nil || len(conf.Servers) == 0 {
		return []string{"127.0.0.1:53"}
	}
	servers := make([]string, len(conf.Servers))
	for i, s := range conf.Servers {
		servers[i] = net.JoinHostPort(s, conf.Port)
	}
	return servers
}

// LookupTXT returns the TXT records at name (any case, trailing dot
// optional, always absolute: no search list), each record's
// character-strings joined without separator, as RFC 7208 §3.3 reads them
// (a 2048-bit DKIM key is published as several 255-byte strings in one
// record). Each record is its bytes as published, not escaped. When name is
// an alias, LookupTXT follows the CNAMEs (at most 8) and returns the records
// of the name they lead to; records for any other name are ignored.
//
// It returns (nil, nil) for NXDOMAIN or NODATA: the records are definitely
// not published. An error wrapping ErrTemporary means the lookup could not
// tell; it names the server and what happened, and also wraps ctx's error
// when ctx ended first, os.ErrDeadlineExceeded after a timeout. Any other
// error (name is not a domain name, or a CNAME loop) is the same when asked
// again.
//
// A lookup sends up to Attempts queries per name looked up, over UDP with
// EDNS0 (and again over TCP when the answer is truncated); the whole of it
// takes at most Attempts × Timeout, or until ctx ends if sooner.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if _, ok := mdns.IsDomainName(name); !ok || name == "" {
		return nil, fmt.Errorf("dns: TXT %q: not a domain name", name)
	}
	budget := time.Duration(r.attempts) * r.timeout
	ctx, cancel := context.WithTimeoutCause(ctx, budget,
		fmt.Errorf("no answer within the lookup's %v (Attempts × Timeout): %w", budget, os.ErrDeadlineExceeded))
	defer cancel()
	name = mdns.CanonicalName(name)
	followed := 0
	for {
		reply, err := r.query(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("%w: TXT %s: %w", ErrTemporary, name, err)
		}
		if reply.Rcode == mdns.RcodeNameError {
			return nil, nil
		}
		// Follow the aliases the answer holds, then take the records of
		// the name they lead to.
		cnames := make(map[string]string)
		for _, rr := range reply.Answer {
			if c, ok := rr.(*mdns.CNAME); ok {
				cnames[mdns.CanonicalName(c.Hdr.Name)] = mdns.CanonicalName(c.Target)
			}
		}
		asked := name
		for target, ok := cnames[name]; ok; target, ok = cnames[name] {
			if followed++; followed > maxCNAMEs {
				return nil, fmt.Errorf("dns: TXT %s: more than %d CNAMEs (a loop?)", asked, maxCNAMEs)
			}
			name = target
		}
		var txts []string
		for _, rr := range reply.Answer {
			if t, ok := rr.(*mdns.TXT); ok && mdns.CanonicalName(t.Hdr.Name) == name {
				var b strings.Builder
				for _, s := range t.Txt {
					b.WriteString(unescape(s))
				}
				txts = append(txts, b.String())
			}
		}
		if len(txts) > 0 || name == asked {
			return txts, nil
		}
		// The answer ends at an alias without its target's records (the
		// target is in another zone of an authoritative server): ask for
		// the target.
	}
}

// query asks the servers in turn for the TXT records at name (canonical)
// until one answers NOERROR or NXDOMAIN, Attempts times at most. Its error
// names the last server and what went wrong.
func (r *Resolver) query(ctx context.Context, name string) (*mdns.Msg, error) {
	m := new(mdns.Msg).SetQuestion(name, mdns.TypeTXT) // RD set
	m.SetEdns0(udpSize, false)
	deadline, _ := ctx.Deadline() // the lookup's at the latest
	var err error
	for try := 0; try < r.attempts && ctx.Err() == nil && time.Now().Before(deadline); try++ {
		server := r.servers[try%len(r.servers)]
		m.Id = mdns.Id()
		var reply *mdns.Msg
		if reply, err = r.exchange(ctx, m, server); err == nil {
			return reply, nil
		}
		err = fmt.Errorf("server %s: %w (query %d of %d)", server, err, try+1, r.attempts)
	}
	if err == nil { // ctx ended before the first query
		err = cmp.Or(context.Cause(ctx), context.DeadlineExceeded)
	}
	return nil, err
}

// exchange sends m to server over UDP, and over TCP if the answer is
// truncated, and checks the reply: an error unless it answers m with
// NOERROR or NXDOMAIN.
func (r *Resolver) exchange(ctx context.Context, m *mdns.Msg, server string) (*mdns.Msg, error) {
	reply, err := r.exchangeOver(ctx, "udp", m, server)
	if reply != nil && reply.Truncated { // an unpacking error is likely then: the answer is cut
		if reply, err = r.exchangeOver(ctx, "tcp", m, server); err != nil {
			return nil, fmt.Errorf("truncated answer over UDP, and over TCP: %w", err)
		}
		if reply.Truncated {
			return nil, errors.New("truncated answer over TCP")
		}
	}
	if err != nil {
		return nil, err
	}
	q := m.Question[0]
	if !reply.Response || len(reply.Question) != 1 || !strings.EqualFold(reply.Question[0].Name, q.Name) ||
		reply.Question[0].Qtype != q.Qtype || reply.Question[0].Qclass != q.Qclass {
		return nil, errors.New("reply does not answer the query")
	}
	if reply.Rcode != mdns.RcodeSuccess && reply.Rcode != mdns.RcodeNameError {
		return nil, errors.New(mdns.RcodeToString[reply.Rcode])
	}
	return reply, nil
}

// exchangeOver sends m to server over network ("udp" or "tcp") and returns
// the reply with the same ID, within Timeout or until ctx ends. The reply
// may come with an error when it could not all be read (a truncated UDP
// answer).
func (r *Resolver) exchangeOver(ctx context.Context, network string, m *mdns.Msg, server string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, r.timeout,
		fmt.Errorf("no answer within %v: %w", r.timeout, os.ErrDeadlineExceeded))
	defer cancel()
	c := &mdns.Client{Net: network, Timeout: r.timeout}
	conn, err := c.DialContext(ctx, server)
	if err == nil {
		defer conn.Close()
		// The deadlines bound the exchange; closing the connection also
		// ends it when ctx is cancelled.
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		var reply *mdns.Msg
		if reply, _, err = c.ExchangeWithConnContext(ctx, m, conn); err == nil || reply != nil {
			return reply, err
		}
	}
	if ctx.Err() != nil { // say why rather than "use of closed network connection"
		err = context.Cause(ctx)
	}
	return nil, err
}

// unescape returns the bytes of a character-string as miekg/dns presents
// it, with \" \\ and \DDD escapes.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			c = s[i]
			if i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
				c = byte(int(s[i]-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0'))
				i += 2
			}
		}
		b = append(b, c)
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
