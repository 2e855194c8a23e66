package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/gateway"
)

// rawUpstream is an HTTP/1.1 upstream that writes its answers byte for
// byte: each request (read whole, body included) is answered by answer,
// which writes to the connection and says whether to go on reading
// requests from it; otherwise the connection is closed.
type rawUpstream struct {
	t        *testing.T
	ln       net.Listener
	answer   func(conn, req int, r *http.Request, c net.Conn) (keep bool)
	conns    atomic.Int64
	mu       sync.Mutex
	requests []string // "conn/req METHOD path body"
	closed   chan int // the connections answer closed, by number
}

func newRawUpstream(t *testing.T, answer func(conn, req int, r *http.Request, c net.Conn) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{t: t, ln: ln, answer: answer, closed: make(chan int, 100)}
	var wg sync.WaitGroup
	var open sync.Map // net.Conn -> struct{}
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(u.conns.Add(1))
			open.Store(c, struct{}{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer open.Delete(c)
				u.serve(n, c)
			}()
		}
	}()
	return u
}

func (u *rawUpstream) serve(n int, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for i := 1; ; i++ {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, fmt.Sprintf("%d/%d %s %s %s", n, i, r.Method, r.URL.Path, body))
		u.mu.Unlock()
		if !u.answer(n, i, r, c) {
			c.Close()
			u.closed <- n
			return
		}
	}
}

// seen is every request the upstream read, in order.
func (u *rawUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requests...)
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// rawGateway is a gateway with public routes in front of u, and base's
// tokend.
func rawGateway(t *testing.T, base *fixture, u *rawUpstream) *fixture {
	return newFixtureSetup(t, base, "/ none\n", setup{options: func(o *gateway.Options) { o.Upstream = mustURL(t, u.url()) }})
}

// get sends method path (with body, when not empty) on a new connection to
// the gateway and reads the answer: its status, headers and body, and the
// error that cut it short (nil when it was read to its end).
func (f *fixture) get(method, path, body string, header ...string) (int, http.Header, string, error) {
	f.t.Helper()
	if body != "" {
		header = append(header, fmt.Sprintf("Content-Length: %d", len(body)))
	}
	conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, rawRequest(method, path, header...)+body); err != nil {
		f.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil { // the answer was aborted before its headers left the gateway's buffer
		return 0, nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b), err
}

const poisoned = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned"

// The upstream's answer is read as net/http reads it, and a connection
// whose framing is in any doubt never carries another request: no stray
// bytes of the upstream's can become the answer to a later request.
func TestHopFramingFromTheUpstream(t *testing.T) {
	base := newFixture(t, "/ none\n", false)
	for _, c := range []struct {
		name   string
		first  string // the upstream's answer to the first request, then it keeps the connection
		status int
		body   string
		cut    bool // the client sees the first answer cut short
		conns  int  // connections the upstream has seen after the second request
	}{
		{"an ordinary answer keeps its connection",
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, 1},
		{"both Content-Length and chunked: read chunked, connection dropped",
			"HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + poisoned,
			200, "hello", false, 2},
		{"chunked, then Content-Length: read chunked, connection dropped",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			200, "hello", false, 2},
		{"bytes after the answer: connection dropped",
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + poisoned, 200, "hello", false, 2},
		{"Connection: close", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", 200, "hello", false, 2},
		{"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, 2},
		{"two different Content-Lengths: 502",
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 502, "", false, 2},
		{"an unknown Transfer-Encoding: 502",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 502, "", false, 2},
		{"a malformed chunk: cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
			200, "", true, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := newRawUpstream(t, func(conn, req int, r *http.Request, w net.Conn) bool {
				if conn == 1 && req == 1 {
					io.WriteString(w, c.first)
				} else {
					io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
				}
				return true
			})
			f := rawGateway(t, base, u)
			status, h, body, err := f.get("GET", "/first", "")
			if (err != nil) != c.cut || !c.cut && (status != c.status || c.status == 200 && body != c.body) {
				t.Fatalf("first: %d %q, error %v; want %d %q, cut short %v", status, body, err, c.status, c.body, c.cut)
			}
			if status == 200 && !c.cut && h.Get("Content-Length") != "" && h.Get("Content-Length") != fmt.Sprint(len(body)) {
				t.Errorf("first: Content-Length %q for a body of %d bytes", h.Get("Content-Length"), len(body))
			}
			status, _, body, err = f.get("GET", "/second", "")
			if status != 200 || body != "second" || err != nil {
				t.Fatalf("second: %d %q %v, want the upstream's answer to it", status, body, err)
			}
			if n := int(u.conns.Load()); n != c.conns {
				t.Errorf("the upstream saw %d connections, want %d (%v)", n, c.conns, u.seen())
			}
		})
	}
}

// An upstream that fails partway is a 502 before the answer has begun,
// and an answer cut short after: the client never takes a truncated body
// for a whole one.
func TestHopUpstreamFailsMidAnswer(t *testing.T) {
	base := newFixture(t, "/ none\n", false)
	for _, c := range []struct {
		name   string
		answer string // then the upstream closes the connection
		status int    // 0: the answer is cut short
	}{
		{"closed before answering", "", 502},
		{"closed in the status line", "HTTP/1.1 20", 502},
		{"closed in the headers", "HTTP/1.1 200 OK\r\nContent-Le", 502},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 50), 0},
		{"closed mid-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + strings.Repeat("x", 50), 0},
		{"closed before the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0},
		{"a header past the limit", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("x", 1<<20+1) + "\r\n\r\n", 502},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := newRawUpstream(t, func(conn, req int, r *http.Request, w net.Conn) bool {
				if r.URL.Path == "/fail" {
					io.WriteString(w, c.answer)
					return false
				}
				io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			})
			f := rawGateway(t, base, u)
			status, _, body, err := f.get("GET", "/fail", "")
			switch {
			case c.status != 0 && (status != c.status || !strings.Contains(body, "upstream_unavailable")):
				t.Fatalf("%d %q, want %d upstream_unavailable", status, body, c.status)
			case c.status == 0 && err == nil:
				t.Fatalf("%d %q read whole, want the body cut short", status, body)
			}
			if status, _, body, err := f.get("GET", "/ok", ""); status != 200 || body != "ok" || err != nil {
				t.Fatalf("the next request: %d %q %v", status, body, err)
			}
		})
	}
}

// A pooled connection the upstream has closed is not used again; a request
// that meets one closing under it is sent again on a new connection only
// when that is safe: no body, and an idempotent method or key.
func TestHopClosedPooledConnections(t *testing.T) {
	base := newFixture(t, "/ none\n", false)
	t.Run("closed while idle", func(t *testing.T) {
		for _, method := range []string{"GET", "POST"} {
			t.Run(method, func(t *testing.T) {
				u := newRawUpstream(t, func(conn, req int, r *http.Request, w net.Conn) bool {
					io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					return conn != 1 // the first connection closes once it has answered, as an idle timeout would
				})
				f := rawGateway(t, base, u)
				if status, _, _, err := f.get("GET", "/1", ""); status != 200 || err != nil {
					t.Fatalf("first: %d %v", status, err)
				}
				<-u.closed
				if status, _, body, err := f.get(method, "/2", "payload"); status != 200 || body != "ok" || err != nil {
					t.Fatalf("%s after the close: %d %q %v", method, status, body, err)
				}
				if got := u.seen(); len(got) != 2 || got[1] != "2/1 "+method+" /2 payload" {
					t.Fatalf("the upstream read %q, want the second request once, on a new connection", got)
				}
			})
		}
	})
	for _, c := range []struct {
		name, method, body string
		header             []string
		status             int
		sent               int // times the upstream read the request
	}{
		{"GET is sent again", "GET", "", nil, 200, 2},
		{"HEAD is sent again", "HEAD", "", nil, 200, 2},
		{"POST with an Idempotency-Key is sent again", "POST", "", []string{"Idempotency-Key: k1", "Content-Length: 0"}, 200, 2},
		{"POST without a body is not", "POST", "", []string{"Content-Length: 0"}, 502, 1},
		{"POST with a body is not", "POST", "payload", nil, 502, 1},
		{"GET with a body is not", "GET", "payload", nil, 502, 1},
	} {
		t.Run("closed under the request/"+c.name, func(t *testing.T) {
			u := newRawUpstream(t, func(conn, req int, r *http.Request, w net.Conn) bool {
				if conn == 1 && req == 2 {
					return false // read, then closed without an answer
				}
				io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return true
			})
			f := rawGateway(t, base, u)
			if status, _, _, err := f.get("GET", "/warm", ""); status != 200 || err != nil {
				t.Fatalf("first: %d %v", status, err)
			}
			status, _, _, _ := f.get(c.method, "/again", c.body, c.header...)
			if status != c.status {
				t.Fatalf("%d, want %d", status, c.status)
			}
			n := 0
			for _, s := range u.seen() {
				if strings.Contains(s, " /again") {
					n++
				}
			}
			if n != c.sent {
				t.Fatalf("the upstream read the request %d times, want %d: %q", n, c.sent, u.seen())
			}
		})
	}
}

// Answers that carry no body, or no length, or that stream, pass as
// net/http would pass them, and the connection is reused when it can be.
func TestHopAnswerShapes(t *testing.T) {
	base := newFixture(t, "/ none\n", false)
	for _, c := range []struct {
		name, method, answer string
		status               int
		body                 string
		header               map[string]string // wanted on the client's answer; "" for absent
		conns                int               // after the same request twice
		closes               bool              // the upstream closes the connection after answering
	}{
		{"HEAD with a length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 200, "",
			map[string]string{"Content-Length": "1000"}, 1, false},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", nil, 1, false},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n", 304, "", map[string]string{"Etag": `"x"`}, 1, false},
		{"no length: read until close", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", 200, "all of it",
			map[string]string{"Content-Length": ""}, 2, true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nall\r\n6\r\n of it\r\n0\r\n\r\n", 200, "all of it", nil, 1, false},
		{"hop-by-hop headers removed", "GET",
			"HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nContent-Length: 2\r\n\r\nok",
			200, "ok", map[string]string{"X-Secret": "", "Keep-Alive": "", "Proxy-Authenticate": "", "Connection": ""}, 1, false},
		{"the upstream's X-Request-Id replaced", "GET", "HTTP/1.1 200 OK\r\nX-Request-Id: upstream\r\nContent-Length: 2\r\n\r\nok",
			200, "ok", map[string]string{"X-Request-Id": "client-id"}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := newRawUpstream(t, func(conn, req int, r *http.Request, w net.Conn) bool {
				io.WriteString(w, c.answer)
				return !c.closes
			})
			f := rawGateway(t, base, u)
			for i := range 2 {
				status, h, body, err := f.get(c.method, "/x", "", "X-Request-Id: client-id")
				if status != c.status || body != c.body || err != nil {
					t.Fatalf("request %d: %d %q %v, want %d %q", i+1, status, body, err, c.status, c.body)
				}
				for k, v := range c.header {
					if got := h.Get(k); got != v {
						t.Errorf("request %d: %s %q, want %q", i+1, k, got, v)
					}
				}
			}
			if n := int(u.conns.Load()); n != c.conns {
				t.Errorf("the upstream saw %d connections, want %d", n, c.conns)
			}
		})
	}
}

// What the client sends reaches the upstream as net/http would send it:
// bodies with a length or chunked, hop-by-hop headers removed, and never
// the request's own trailers (which scrub does not see).
func TestHopRequestShapes(t *testing.T) {
	type got struct {
		body             string
		header, trailers http.Header
		te               []string
		length           int64
	}
	ch := make(chan got, 1)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{string(b), r.Header, r.Trailer, r.TransferEncoding, r.ContentLength}
		io.WriteString(w, "ok")
	})
	f := newFixtureSetup(t, nil, "/ none\n", setup{upstream: up})
	for _, c := range []struct {
		name, request string
		body          string
		absent        []string // headers the upstream must not get
		present       map[string]string
	}{
		{"a body with a length", rawRequest("POST", "/x", "Content-Length: 7") + "payload", "payload", nil, nil},
		{"a chunked body", rawRequest("POST", "/x", "Transfer-Encoding: chunked") + "3\r\npay\r\n4\r\nload\r\n0\r\n\r\n", "payload", nil, nil},
		{"a chunked body with trailers", rawRequest("POST", "/x", "Transfer-Encoding: chunked", "Trailer: X-Tokend-Account-Id, X-Sum") +
			"7\r\npayload\r\n0\r\nX-Tokend-Account-Id: 999\r\nX-Sum: 1\r\n\r\n", "payload", []string{"Trailer", "X-Sum", "X-Tokend-Account-Id"}, nil},
		{"hop-by-hop headers", rawRequest("GET", "/x", "Connection: X-Hop, keep-alive", "X-Hop: 1", "Keep-Alive: 300",
			"Proxy-Connection: keep-alive", "Te: trailers, deflate"), "", []string{"X-Hop", "Connection", "Keep-Alive", "Proxy-Connection"},
			map[string]string{"Te": "trailers"}},
		{"no User-Agent stays none", rawRequest("GET", "/x"), "", []string{"User-Agent"}, nil},
		{"a User-Agent passes", rawRequest("GET", "/x", "User-Agent: curl/8"), "", nil, map[string]string{"User-Agent": "curl/8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, c.request)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("%v %v", res, err)
			}
			g := <-ch
			if g.body != c.body {
				t.Errorf("the upstream read %q, want %q", g.body, c.body)
			}
			for _, k := range c.absent {
				if _, ok := g.header[k]; ok {
					t.Errorf("the upstream got %s: %q", k, g.header[k])
				}
				if g.trailers.Get(k) != "" {
					t.Errorf("the upstream got the trailer %s: %q", k, g.trailers.Get(k))
				}
			}
			for k, v := range c.present {
				if g.header.Get(k) != v {
					t.Errorf("the upstream got %s %q, want %q", k, g.header.Get(k), v)
				}
			}
		})
	}
}

// A request whose query the upstream could split otherwise than Go is
// passed on re-encoded, as ReverseProxy passes it.
func TestHopQueries(t *testing.T) {
	ch := make(chan string, 1)
	f := newFixtureSetup(t, nil, "/ none\n", setup{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.URL.RawQuery
	})})
	for _, c := range []struct{ name, query, want string }{
		{"plain", "a=1&b=2", "a=1&b=2"},
		{"semicolons", "a=1;b=2&c=3", "c=3"},
		{"a bad escape", "a=%zz&b=2", "b=2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, _, _, _ := f.raw(rawRequest("GET", "/x?"+c.query)); status != 200 {
				t.Fatalf("%d", status)
			}
			if got := <-ch; got != c.want {
				t.Fatalf("the upstream got the query %q, want %q", got, c.want)
			}
		})
	}
}

// Streams reach the client as they come: each event before the upstream
// writes the next, informational answers before the final one, trailers
// after the body.
func TestHopStreams(t *testing.T) {
	next := make(chan struct{})
	f := newFixtureSetup(t, nil, "/ none\n", setup{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "created")
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		}
	})})

	t.Run("events", func(t *testing.T) {
		res, err := http.Get(f.gw.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		tp := textproto.NewReader(bufio.NewReader(res.Body))
		for i := range 3 {
			line, err := tp.ReadLine() // blocks for good unless the event was flushed
			if err != nil || line != fmt.Sprintf("data: %d", i) {
				t.Fatalf("event %d: %q %v", i, line, err)
			}
			tp.ReadLine()
			next <- struct{}{}
		}
	})
	t.Run("informational answers", func(t *testing.T) {
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", f.gw.URL+"/hints", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 201 || string(b) != "created" || len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" {
			t.Fatalf("%d %q, informational %q", res.StatusCode, b, hints)
		}
	})
	t.Run("trailers", func(t *testing.T) {
		res, err := http.Get(f.gw.URL + "/trailers")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "body" || res.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("%q, trailers %v", b, res.Trailer)
		}
	})
}

// A client that goes away ends its upstream request.
func TestHopClientGoneEndsTheUpstreamRequest(t *testing.T) {
	started, ended := make(chan struct{}), make(chan struct{})
	f := newFixtureSetup(t, nil, "/ none\n", setup{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(ended)
		case <-time.After(10 * time.Second):
		}
	})})
	conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, rawRequest("GET", "/long-poll"))
	<-started
	conn.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request outlived its client")
	}
}

// Requests the hop does not carry take the ReverseProxy with its
// http.Transport: Expect: 100-continue (answered by the upstream) and, when
// allowed, upgrades (TestGatewayPassesUpgradesWhenAllowed); Options.Transport
// carries every request.
func TestHopLeavesSomeRequestsToTheTransport(t *testing.T) {
	t.Run("Expect: 100-continue", func(t *testing.T) {
		f := newFixtureSetup(t, nil, "/ none\n", setup{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s", r.Header.Get("Expect"), b)
		})})
		req, _ := http.NewRequest("POST", f.gw.URL+"/x", strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		c := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "100-continue payload" {
			t.Fatalf("%d %q", res.StatusCode, b)
		}
	})
	t.Run("Options.Transport", func(t *testing.T) {
		var trips atomic.Int64
		f := newFixtureSetup(t, nil, "/ none\n", setup{options: func(o *gateway.Options) {
			o.Transport = roundTripper(func(r *http.Request) (*http.Response, error) {
				trips.Add(1)
				return http.DefaultTransport.RoundTrip(r)
			})
		}})
		for range 3 {
			if status, s, _ := f.do("GET", "/x", nil); status != 200 || s.Path != "/x" {
				t.Fatalf("%d %+v", status, s)
			}
		}
		if n := trips.Load(); n != 3 {
			t.Fatalf("Options.Transport carried %d of 3 requests", n)
		}
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The upstream URL's path and query prefix every request's.
func TestHopUpstreamBase(t *testing.T) {
	ch := make(chan *url.URL, 1)
	f := newFixtureSetup(t, nil, "/ none\n", setup{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.URL
	}), options: func(o *gateway.Options) { o.Upstream.Path, o.Upstream.RawQuery = "/base/", "k=v" }})
	if status, _, _, _ := f.raw(rawRequest("GET", "/x/y?a=1")); status != 200 {
		t.Fatalf("%d", status)
	}
	if u := <-ch; u.Path != "/base/x/y" || u.RawQuery != "k=v&a=1" {
		t.Fatalf("the upstream got %s", u)
	}
}

// An upstream that answers a large upload before reading it (413) and
// closes is heard: the client gets that answer, not a 502.
func TestHopEarlyAnswerToAnUpload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil { // the headers only
					return
				}
				io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
			}()
		}
	}()
	f := newFixtureSetup(t, nil, "/ none\n", setup{options: func(o *gateway.Options) { o.Upstream = mustURL(t, "http://"+ln.Addr().String()) }})
	conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const size = 8 << 20
	go func() { // the client sends on while it reads, as clients do
		io.WriteString(conn, rawRequest("POST", "/upload", fmt.Sprintf("Content-Length: %d", size)))
		conn.Write(make([]byte, size))
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 413 || string(b) != "too big!" {
		t.Fatalf("%d %q, want the upstream's 413", res.StatusCode, b)
	}
}
