// Command minproxy is the baseline of scripts/bench-gateway: a minimal
// httputil.ReverseProxy with the settings tokend proxy's http.Transport
// has (DefaultTransport with 1,024 idle connections to the upstream, 90 s
// idle timeout), its 32 KiB buffer pool and its server's settings, and
// nothing else: no routes, no header scrubbing, no log, no verification.
// It is not part of tokend.
//
//	go build -o minproxy ./scripts/minproxy
//	./minproxy --addr 127.0.0.1:8082 --upstream http://127.0.0.1:9000
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "address to listen on")
	upstream := flag.String("upstream", "", "the upstream: http://host:port")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		log.Fatalf("--upstream %q: want http://host:port", *upstream)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1024, 1024, 90*time.Second
	proxy := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport:  t,
		BufferPool: bufferPool{},
	}
	srv := &http.Server{Addr: *addr, Handler: proxy, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	log.Fatal(srv.ListenAndServe())
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[32 << 10]byte)[:] }

func (bufferPool) Put(b []byte) {
	if len(b) == 32<<10 {
		buffers.Put((*[32 << 10]byte)(b))
	}
}
