package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
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

// counter counts open connections, in all and per client address, for
// every listener of one server: the submission server's STARTTLS and
// implicit TLS listeners share one, so that an address holds at most
// maxPerIP connections to submission whichever port it uses.
type counter struct {
	mu    sync.Mutex
	perIP map[string]int
	total int
}

func newCounter() *counter { return &counter{perIP: map[string]int{}} }

// take counts a connection from ip, or says why it may not be opened.
func (n *counter) take(ip string, maxConns, maxPerIP int) (refusal, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.total >= maxConns:
		return "421 4.7.0 Too many connections; try again later\r\n", "connections"
	case n.perIP[ip] >= maxPerIP:
		return "421 4.7.0 Too many connections from your address; try again later\r\n", "connections_per_address"
	}
	n.total++
	n.perIP[ip]++
	return "", ""
}

func (n *counter) release(ip string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.total--
	if n.perIP[ip]--; n.perIP[ip] <= 0 {
		delete(n.perIP, ip)
	}
}

// limitListener refuses connections past the limits before go-smtp sees
// them, with a 421 reply, and wraps the others in a *conn.
type limitListener struct {
	net.Listener
	l     *limits
	count *counter
	// tls is set on implicit TLS listeners: a refusal is written after the
	// handshake, so that the client reads it.
	tls *tls.Config

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

type limits struct {
	maxConns, maxPerIP int
	commandBytes       int64 // bytes a session may send outside messages' data
	idle               time.Duration
	refused            func(reason string)
}

// refusals bounds the refusals over TLS being written at once: each is a
// handshake, which a client may drag out to its deadline.
var refusals = make(chan struct{}, 64)

// refusalHandshake is how long a refused client has to finish the TLS
// handshake that carries the refusal.
const refusalHandshake = 5 * time.Second

func newLimitListener(ln net.Listener, l *limits, count *counter, implicitTLS *tls.Config) *limitListener {
	return &limitListener{Listener: ln, l: l, count: count, tls: implicitTLS, conns: map[*conn]struct{}{}}
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		if reply, reason := ln.count.take(ip, ln.l.maxConns, ln.l.maxPerIP); reply != "" {
			ln.refuse(c, reply, reason)
			continue
		}
		wc := &conn{Conn: c, ln: ln, ip: ip}
		ln.mu.Lock()
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
	if ln.l.refused != nil {
		ln.l.refused(reason)
	}
	if ln.tls == nil {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(reply))
		c.Close()
		return
	}
	select {
	case refusals <- struct{}{}:
	default: // too many at once: these clients only see the connection close
		c.Close()
		return
	}
	go func() {
		defer func() { <-refusals }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refusalHandshake))
		tc := tls.Server(c, ln.tls)
		ctx, cancel := context.WithTimeout(context.Background(), refusalHandshake)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return
		}
		tc.Write([]byte(reply))
		tc.Close()
	}()
}

func (ln *limitListener) release(c *conn) {
	ln.mu.Lock()
	_, ok := ln.conns[c]
	delete(ln.conns, c)
	ln.mu.Unlock()
	if ok {
		ln.count.release(c.ip)
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

	// top is the connection go-smtp reads commands from and writes replies
	// to, once a session has told it: this conn itself before TLS, the TLS
	// connection on it after a completed handshake. nil while unknown.
	top atomic.Pointer[net.Conn]
	// ending: the session wrote (or is writing) its last reply; reads find
	// the end of the input, and once that reply is written nothing more is.
	ending  atomic.Bool
	replied atomic.Bool
	// wmu orders the writes of the reply that ends a session (written from
	// Read) with go-smtp's.
	wmu sync.Mutex
}

func (c *conn) Read(b []byte) (int, error) {
	inData := c.data.Load()
	if inData {
		c.Conn.SetReadDeadline(time.Now().Add(c.ln.l.idle))
	} else if c.ending.Load() {
		return 0, io.EOF
	} else if c.stopping.Load() {
		return 0, errStopping
	}
	n, err := c.Conn.Read(b)
	if !inData && n > 0 && c.commands.Add(int64(n)) > c.ln.l.commandBytes {
		if c.ln.l.refused != nil {
			c.ln.l.refused("commands")
		}
		if c.endWith(tooManyCommandsReply(c.ln.l.commandBytes)) {
			return 0, io.EOF // go-smtp closes the session without a word
		}
		return 0, errTooManyCommands // go-smtp answers 421 4.4.0 and ends the session
	}
	return n, err
}

// tooManyCommandsReply is the reply to the command that spends a session's
// command bytes.
func tooManyCommandsReply(limit int64) string {
	size := fmt.Sprintf("%d bytes", limit)
	switch {
	case limit%(1<<20) == 0:
		size = fmt.Sprintf("%d MiB", limit>>20)
	case limit%(1<<10) == 0:
		size = fmt.Sprintf("%d KiB", limit>>10)
	}
	return "421 4.7.0 This session reached its limit of commands (" + size + " outside messages); reconnect to go on\r\n"
}

// endWith writes reply to the client as the session's last, and ends the
// session, when the session's connection is known; it says whether it did.
func (c *conn) endWith(reply string) bool {
	top := c.top.Load()
	if top == nil {
		return false
	}
	c.ending.Store(true)
	(*top).SetWriteDeadline(time.Now().Add(5 * time.Second))
	if *top == net.Conn(c) {
		c.wmu.Lock()
		c.Conn.Write([]byte(reply))
		c.replied.Store(true)
		c.wmu.Unlock()
		return true
	}
	(*top).Write([]byte(reply)) // through TLS, and so through c.Write
	return true
}

func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.replied.Load() {
		return len(b), nil // after the session's last reply, nothing
	}
	if c.ending.Load() {
		defer c.replied.Store(true)
	}
	return c.Conn.Write(b)
}

// setTop tells c the connection its session speaks on: tc is *conn c or a
// TLS connection on it whose handshake is complete.
func (c *conn) setTop(tc net.Conn) {
	switch t := tc.(type) {
	case *conn:
		if t == c {
			c.top.Store(&tc)
		}
	case *tls.Conn:
		if t.NetConn() == net.Conn(c) {
			c.top.Store(&tc)
		}
	}
}

// inData marks the start and end of a message's data.
func (c *conn) inData(on bool) { c.data.Store(on) }

// endAfterReply makes the reply being answered the session's last: go-smtp
// then finds the end of the input and closes the connection, and writes
// nothing after that reply.
func (c *conn) endAfterReply() { c.ending.Store(true) }

// stop makes the session end at its next command.
func (c *conn) stop() {
	c.stopping.Store(true)
	if !c.data.Load() {
		c.Conn.SetReadDeadline(time.Now())
	}
}

// lingerFor is how long a connection the server ends reads what the client
// still sends before closing, so that closing with unread input does not
// reset the connection before the client has read the last reply.
const lingerFor = 2 * time.Second

func (c *conn) Close() error {
	c.once.Do(func() {
		c.ln.release(c)
		if c.ending.Load() {
			if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
				tc.CloseWrite()
				c.Conn.SetReadDeadline(time.Now().Add(lingerFor))
				io.CopyN(io.Discard, c.Conn, 1<<20)
			}
		}
	})
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
