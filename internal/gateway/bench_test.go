package gateway_test

import (
	"bufio"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/gateway"
	"github.com/tokend/tokend/internal/middlewaretest"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/middleware"
)

var benchConns = flag.Int("gateway.conns", 64, "BenchmarkGateway's client connections (at least GOMAXPROCS)")

// BenchmarkGateway drives GET requests over real loopback connections
// (-gateway.conns of them, kept alive, 64 by default), through: the upstream alone;
// a minimal httputil.ReverseProxy with a tuned http.Transport and a buffer
// pool (what the gateway was built on); and the gateway with a public
// route ("/ none") and with authentication (no routes: a valid token),
// without a log and with one like tokend proxy's (to io.Discard). The
// upstream answers a 13-byte body with the headers nginx sends for a small
// static file. Each op is one request and its answer, the client's own
// work included: compare the sub-benchmarks, and profile with
// -cpuprofile/-memprofile focused on the gateway's functions.
//
//	go test -run '^$' -bench Gateway -benchmem -cpu 2 ./internal/gateway
//
// With 64 connections ns/op is the inverse of the throughput; with
// -gateway.conns 2 -cpu 2, half the latency of a request.
func BenchmarkGateway(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Last-Modified"] = []string{"Sun, 06 Dec 2026 10:00:00 GMT"}
		h["Etag"] = []string{`"6751cd50-d"`}
		h["Accept-Ranges"] = []string{"bytes"}
		h["Content-Length"] = []string{"13"}
		io.WriteString(w, "hello, world\n")
	}))
	b.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)

	tk := testutil.Tokend(b, testutil.TokendOptions{})
	auth := middlewaretest.Start(b, tk.URL, tk.Token(b, "gateway").Value, middleware.Options{})
	user := tk.Token(b, "user").Value

	serve := func(h http.Handler) string {
		s := httptest.NewServer(h)
		b.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	gw := func(routes string, logger *slog.Logger) string {
		opts := gateway.Options{Upstream: upURL, Auth: auth, Logger: logger}
		if routes != "" {
			var err error
			if opts.Routes, err = gateway.ParseRoutes(strings.NewReader(routes)); err != nil {
				b.Fatal(err)
			}
		}
		h, err := gateway.New(opts)
		if err != nil {
			b.Fatal(err)
		}
		return serve(h)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1024, 1024, 90*time.Second
	rp := httputil.NewSingleHostReverseProxy(upURL)
	rp.Transport, rp.BufferPool = t, benchPool{}

	for _, c := range []struct {
		name, addr string
	}{
		{"upstream", up.Listener.Addr().String()},
		{"reverseproxy", serve(rp)},
		{"gateway/public", gw("/ none\n", nil)},
		{"gateway/token", gw("", nil)},
		// As tokend proxy logs (internal/cli's newLogger): a JSON line per
		// request, durations and the level as text.
		{"gateway/token-logged", gw("", slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				switch a.Value.Kind() {
				case slog.KindDuration:
					a.Value = slog.StringValue(a.Value.Duration().String())
				case slog.KindAny:
					if l, ok := a.Value.Any().(slog.Level); ok {
						a.Value = slog.StringValue(l.String())
					}
				}
				return a
			}})))},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := []byte("GET /hello.txt HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\nAuthorization: Bearer " + user + "\r\n\r\n")
			b.ReportAllocs()
			b.SetParallelism(max(1, *benchConns/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				conn, err := net.Dial("tcp", c.addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				for pb.Next() {
					if _, err := conn.Write(req); err != nil {
						b.Error(err)
						return
					}
					res, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("%s: %d", c.name, res.StatusCode)
						return
					}
				}
			})
		})
	}
}

// benchPool is the buffer pool a minimal ReverseProxy is given.
type benchPool struct{}

var benchBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (benchPool) Get() []byte  { return benchBuffers.Get().(*[32 << 10]byte)[:] }
func (benchPool) Put(b []byte) { benchBuffers.Put((*[32 << 10]byte)(b)) }
