package smtpd

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The limits every listener holds to, beside go-smtp's own (message size,
// recipients, line length): connections per client address and in all,
// idle time, and the commands of a session. go-smtp gives its backend no
// word of the commands it answers itself (NOOP, RSET, VRFY, HELP, EHLO),
// and under TLS only the bytes on the wire are seen here, so a session's
// commands are bounded by the bytes it sends outside messages' data
// (commandBytes), and the sessions count their messages and failed AUTHs.

// limitListener refuses connections past the limits before go-smtp sees
// them, with a 421 reply, and wraps the others in a *conn.
type limitListener struct {
	net.Listener
	l *limits

	mu     sync.Mutex
	perIP  map[string]int
	total  int
	conns  map[*conn]struct{}
	closed bool
}

type limits struct {
	maxConns, maxPerIP int
	commandBytes       int64 // bytes a session may send outside messages' data
	idle               time.Duration
	refused            func(reason string)
}

func newLimitListener(ln net.Listener, l *limits) *limitListener {
	return &limitListener{Listener: ln, l: l, perIP: map[string]int{}, conns: map[*conn]struct{}{}}
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		ln.mu.Lock()
		switch {
		case ln.total >= ln.l.maxConns:
			ln.mu.Unlock()
			ln.refuse(c, "421 4.7.0 Too many connections; try again later\r\n", "connections")
			continue
		case ln.perIP[ip] >= ln.l.maxPerIP:
			ln.mu.Unlock()
			ln.refuse(c, "421 4.7.0 Too many connections from your address; try again later\r\n", "connections_per_address")
			continue
		}
		ln.total++
		ln.perIP[ip]++
		wc := &conn{Conn: c, ln: ln, ip: ip}
		ln.conns[wc] = struct{}{}
		closed := ln.closed
		ln.mu.Unlock()
		if closed {
			wc.stop()
		}
		return wc, nil
	}
}

func (ln *limitListener) refuse(c net.Conn, reply, reason string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write([]byte(reply))
	c.Close()
	if ln.l.refused != nil {
		ln.l.refused(reason)
	}
}

func (ln *limitListener) release(c *conn) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if _, ok := ln.conns[c]; !ok {
		return
	}
	delete(ln.conns, c)
	ln.total--
	if ln.perIP[c.ip]--; ln.perIP[c.ip] <= 0 {
		delete(ln.perIP, c.ip)
	}
}

// drain ends every session that is not sending a message, now and from now
// on: its next command read fails at once, and go-smtp closes it. Sessions
// in the middle of a message finish it first.
func (ln *limitListener) drain() {
	ln.mu.Lock()
	ln.closed = true
	conns := make([]*conn, 0, len(ln.conns))
	for c := range ln.conns {
		conns = append(conns, c)
	}
	ln.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
}

// conn counts the bytes a session sends outside messages' data, and closes
// it past the limit; while a message's data is read it counts nothing and
// keeps the idle deadline moving, so that a large message only has to keep
// coming.
type conn struct {
	net.Conn
	ln       *limitListener
	ip       string
	commands atomic.Int64
	data     atomic.Bool
	stopping atomic.Bool
	once     sync.Once
}

func (c *conn) Read(b []byte) (int, error) {
	inData := c.data.Load()
	if inData {
		c.Conn.SetReadDeadline(time.Now().Add(c.ln.l.idle))
	} else if c.stopping.Load() {
		return 0, errStopping
	}
	n, err := c.Conn.Read(b)
	if !inData && n > 0 && c.commands.Add(int64(n)) > c.ln.l.commandBytes {
		// go-smtp answers 421 and ends the session.
		if c.ln.l.refused != nil {
			c.ln.l.refused("commands")
		}
		return 0, errTooManyCommands
	}
	return n, err
}

// inData marks the start and end of a message's data.
func (c *conn) inData(on bool) { c.data.Store(on) }

// stop makes the session end at its next command.
func (c *conn) stop() {
	c.stopping.Store(true)
	if !c.data.Load() {
		c.Conn.SetReadDeadline(time.Now())
	}
}

func (c *conn) Close() error {
	c.once.Do(func() { c.ln.release(c) })
	return c.Conn.Close()
}

// stoppingError ends a session as go-smtp ends an idle one: 421, closed.
type stoppingError struct{}

func (stoppingError) Error() string   { return "the server is shutting down" }
func (stoppingError) Timeout() bool   { return true }
func (stoppingError) Temporary() bool { return true }

var (
	errStopping        net.Error = stoppingError{}
	errTooManyCommands           = errors.New("too many commands in one session")
)

// clientIP is the address part of a peer address.
func clientIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
