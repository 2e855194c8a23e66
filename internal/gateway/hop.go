package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hop carries requests to a plain-HTTP upstream over HTTP/1.1 on kept-alive
// connections, in the handler's own goroutine: the request is written with
// net/http's Request.Write and the answer read with http.ReadResponse, the
// serialisation and parsing http.Transport uses, without the Transport's
// two goroutines per connection and the hand-offs between them.
//
// A connection goes back to the pool only after an answer read to its end
// whose framing leaves nothing to doubt: not when the upstream asked to
// close, sent a body delimited by closing, sent both Content-Length and
// Transfer-Encoding (the body is read chunked, as net/http reads it, and
// the connection dropped after it), or sent more bytes than the answer; and
// a pooled connection is taken again only if nothing has arrived on it
// while it was idle (see upConn.idleClean), so the upstream can never put a
// stray answer in front of another request. A request whose pooled
// connection turns out closed before any of the answer arrives is sent
// again on a new connection when that is safe: it has no body and its
// method is idempotent, or none of it was written.
//
// The request, body included, is written before its answer is read: an
// upstream that answers early (a 413 to a large upload) is heard once it
// stops reading, when writing fails, or when the body is in; one that
// answers early and then neither reads nor closes holds the request until
// the client leaves.
type hop struct {
	addr        string // host:port
	dialer      net.Dialer
	maxIdle     int
	idleTimeout time.Duration

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

// Limits of the hop, as http.Transport's defaults have them, except the
// answer headers, bounded as the server bounds a request's.
const (
	hopMaxIdle        = 1024
	hopIdleTimeout    = 90 * time.Second
	hopMaxHeaderBytes = http.DefaultMaxHeaderBytes // an answer's status line and headers, each 1xx's too
	hopMax1xx         = 32                         // informational answers before the final one
	hopBufferSize     = 4 << 10
	// hopEarlyAnswerWait bounds the wait for an answer the upstream may
	// have sent before it stopped reading the request (a 413 to a large
	// upload, say), once writing to it failed.
	hopEarlyAnswerWait = time.Second
)

func newHop(addr string) *hop {
	return &hop{addr: addr, dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle: hopMaxIdle, idleTimeout: hopIdleTimeout}
}

// upConn is a connection to the upstream with its buffers.
type upConn struct {
	conn net.Conn
	br   *bufio.Reader // reads through upConn.Read
	bw   *bufio.Writer // writes through connWriter
	// limit is what the reader may still take from the connection while
	// an answer's headers are read.
	limit    int64
	written  int64 // bytes written to the connection for this request
	writeErr error // the connection's own write error, not the body's
	reused   bool
	idleAt   time.Time
	stop     func() bool // ends the request context's watch (context.AfterFunc)

	rc      syscall.RawConn // for idleClean; nil where it cannot look
	peekFn  func(fd uintptr) bool
	peekBad bool
	peekBuf [1]byte
}

var aLongTimeAgo = time.Unix(1, 0)

// interrupt makes the connection's blocked reads and writes return: the
// request's context is done (the client went away).
func (c *upConn) interrupt() { _ = c.conn.SetDeadline(aLongTimeAgo) }

func (c *upConn) close() { _ = c.conn.Close() }

// Read reads from the connection, at most limit bytes while headers are
// read (see exchange).
func (c *upConn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.conn.Read(p)
	c.limit -= int64(n)
	return n, err
}

var errHeaderTooLarge = fmt.Errorf("the upstream's answer headers exceed %d bytes", hopMaxHeaderBytes)

// connWriter is the connection under the request's buffered writer: it
// counts what reaches the connection and keeps the connection's own
// errors apart from the request body's.
type connWriter struct{ c *upConn }

func (w connWriter) Write(p []byte) (int, error) {
	n, err := w.c.conn.Write(p)
	w.c.written += int64(n)
	if err != nil {
		w.c.writeErr = err
	}
	return n, err
}

// ReadFrom streams a request body to the connection as it arrives (the
// buffered writer hands the body over once the headers are flushed): a
// slow body reaches the upstream piece by piece rather than when a buffer
// fills.
func (w connWriter) ReadFrom(r io.Reader) (int64, error) {
	buf := bufferPool{}.Get()
	defer bufferPool{}.Put(buf)
	var n int64
	for {
		nr, rerr := r.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// get takes the most recently used idle connection that is still clean,
// or dials a new one (fresh: always a new one).
func (h *hop) get(ctx context.Context, fresh bool) (*upConn, error) {
	for !fresh {
		h.mu.Lock()
		n := len(h.idle)
		if n == 0 {
			h.mu.Unlock()
			break
		}
		c := h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		h.mu.Unlock()
		if time.Since(c.idleAt) < h.idleTimeout && c.idleClean() {
			return c, nil
		}
		c.close()
	}
	conn, err := h.dialer.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{conn: conn}
	c.br = bufio.NewReaderSize(c, hopBufferSize)
	c.bw = bufio.NewWriterSize(connWriter{c}, hopBufferSize)
	if sc, ok := conn.(syscall.Conn); ok && canPeek {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.peekFn = c.peek
		}
	}
	return c, nil
}

// put returns c to the pool, and closes the oldest idle connection if it
// has idled past the timeout.
func (h *hop) put(c *upConn) {
	c.reused, c.idleAt = true, time.Now()
	var stale *upConn
	h.mu.Lock()
	if len(h.idle) >= h.maxIdle {
		h.mu.Unlock()
		c.close()
		return
	}
	h.idle = append(h.idle, c)
	if old := h.idle[0]; c.idleAt.Sub(old.idleAt) > h.idleTimeout {
		stale = old
		copy(h.idle, h.idle[1:])
		h.idle[len(h.idle)-1] = nil
		h.idle = h.idle[:len(h.idle)-1]
	}
	h.mu.Unlock()
	if stale != nil {
		stale.close()
	}
}

// idleClean reports whether nothing arrived on c while it was idle: no
// byte (an answer to no request, which the next request would take for
// its own), no end of stream (the upstream closed it) and no error. Where
// the socket cannot be looked at without reading (not a TCP connection),
// it reports true: the retry in roundTrip still covers a closed one.
func (c *upConn) idleClean() bool {
	if c.rc == nil {
		return true
	}
	c.peekBad = true
	if err := c.rc.Read(c.peekFn); err != nil {
		return false
	}
	return !c.peekBad
}

// errNothingRead wraps the failure of a request whose answer had not begun
// to arrive.
type errNothingRead struct{ err error }

func (e errNothingRead) Error() string { return e.err.Error() }
func (e errNothingRead) Unwrap() error { return e.err }

// roundTrip sends out on a connection and reads the answer's headers,
// forwarding informational answers (1xx) to w. The answer's body is read
// from the connection it returns, which goes back with release. A request
// that fails on a pooled connection before any of its answer arrived is
// sent once more on a new connection if it has no body and is idempotent
// (as http.Transport judges it), or if none of it was written.
func (h *hop) roundTrip(ctx context.Context, out *http.Request, w *answer) (*http.Response, *upConn, error) {
	for attempt := 0; ; attempt++ {
		c, err := h.get(ctx, attempt > 0)
		if err != nil {
			return nil, nil, err
		}
		c.stop = context.AfterFunc(ctx, c.interrupt)
		res, err := c.exchange(out, w)
		if err == nil {
			return res, c, nil
		}
		c.stop()
		c.close()
		var nothing errNothingRead
		if attempt > 0 || !c.reused || ctx.Err() != nil || out.Body != nil || !errors.As(err, &nothing) ||
			!idempotent(out) && c.written > 0 {
			return nil, nil, err
		}
	}
}

// idempotent reports whether out may be sent twice, as http.Transport has
// it: its method is idempotent, or it carries an idempotency key.
func idempotent(out *http.Request) bool {
	switch out.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	if _, ok := out.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := out.Header["X-Idempotency-Key"]
	return ok
}

// exchange writes out on c and reads the answer's headers, forwarding 1xx
// answers to w.
func (c *upConn) exchange(out *http.Request, w *answer) (*http.Response, error) {
	c.written, c.writeErr = 0, nil
	err := out.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		if c.writeErr == nil {
			return nil, err // the body failed (the client's side): nothing to read
		}
		// The upstream may have answered before it stopped reading (a 413
		// to a large upload): read that answer if it is there.
		if c.conn.SetReadDeadline(time.Now().Add(hopEarlyAnswerWait)) != nil {
			return nil, err
		}
		res, rerr := c.readAnswer(out, w)
		if rerr != nil {
			var nothing errNothingRead
			if errors.As(rerr, &nothing) {
				return nil, errNothingRead{err} // roundTrip judges whether to send it again
			}
			return nil, err
		}
		res.Close = true // the connection is broken; the answer's body must come within the wait too
		return res, nil
	}
	return c.readAnswer(out, w)
}

// readAnswer reads the final answer's headers, forwarding 1xx answers to w.
func (c *upConn) readAnswer(out *http.Request, w *answer) (*http.Response, error) {
	c.limit = hopMaxHeaderBytes
	if _, err := c.br.Peek(1); err != nil {
		return nil, errNothingRead{err}
	}
	for n1xx := 0; ; {
		both, known := c.framing()
		res, err := http.ReadResponse(c.br, out)
		if err != nil {
			if c.limit <= 0 {
				err = errHeaderTooLarge
			}
			return nil, err
		}
		if code := res.StatusCode; code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			if n1xx++; n1xx > hopMax1xx {
				return nil, fmt.Errorf("more than %d informational answers from the upstream", hopMax1xx)
			}
			h := w.Header()
			for k, vs := range res.Header {
				h[k] = vs
			}
			w.WriteHeader(code)
			clear(h)
			c.limit = hopMaxHeaderBytes
			continue
		}
		c.limit = math.MaxInt64
		if both || !known && len(res.TransferEncoding) > 0 {
			// Read chunked, Content-Length removed (RFC 9112, 6.3): the
			// connection is not trusted with another request.
			res.Close = true
		}
		return res, nil
	}
}

// framing looks at the headers of the answer about to be read (as far as
// they fit in the buffer) and reports whether they have both a
// Content-Length and a Transfer-Encoding, which http.ReadResponse resolves
// silently (chunked wins), and whether it could tell.
func (c *upConn) framing() (both, known bool) {
	for {
		b, _ := c.br.Peek(c.br.Buffered())
		if cl, te, end := scanFraming(b); end {
			return cl && te, true
		}
		if c.br.Buffered() >= c.br.Size() {
			return false, false
		}
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return false, false // http.ReadResponse reports it
		}
	}
}

// scanFraming reads a status line and header lines from b: whether a
// Content-Length and a Transfer-Encoding header appear before the empty
// line that ends them (end: whether that line is in b).
func scanFraming(b []byte) (cl, te, end bool) {
	for first := true; ; first = false {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return cl, te, false
		}
		line := bytes.TrimSuffix(b[:i], []byte{'\r'})
		b = b[i+1:]
		switch {
		case first:
		case len(line) == 0:
			return cl, te, true
		case hasFoldPrefix(line, "content-length:"):
			cl = true
		case hasFoldPrefix(line, "transfer-encoding:"):
			te = true
		}
	}
}

func hasFoldPrefix(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// release ends c's request: back to the pool when the answer was read to
// its end and the connection can take another request, else closed.
func (h *hop) release(c *upConn, res *http.Response, whole bool) {
	watched := c.stop() // false: the context's watch fired, and may have set a deadline
	if !whole || !watched || res.Close || c.br.Buffered() > 0 {
		c.close()
		return
	}
	h.put(c)
}

// Hop-by-hop headers, removed in both directions as httputil.ReverseProxy
// removes them: those the Connection header names, and these.
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for f != "" {
			var name string
			name, f, _ = cutComma(f)
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

func cutComma(s string) (before, after string, found bool) {
	return strings.Cut(s, ",")
}

// hasToken reports whether a comma-separated header value of vs holds
// token, in any case.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var t string
			t, v, _ = cutComma(v)
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}
