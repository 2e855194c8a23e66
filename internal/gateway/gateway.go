// Package gateway is "tokend proxy": an authenticating reverse proxy that
// puts tokend's tokens in front of any HTTP API.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/middleware"
)

// Options are the gateway's dependencies and settings.
type Options struct {
	Upstream *url.URL
	Auth     *middleware.Authenticator
	// Routes map request patterns to what they require; nil means every
	// request needs a valid token of the account.
	Routes []Route
	// ForwardCredentials passes the client's Api-Token and Authorization:
	// Bearer headers upstream; by default they are removed.
	ForwardCredentials bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed (and
	// passed on, with the peer appended).
	TrustedProxies api.Prefixes
	Transport      http.RoundTripper // default: one tuned for a single upstream
	Logger         *slog.Logger      // the access log; default: discard
}

// Headers the upstream receives with an authenticated request. Any the
// client sends are removed first.
var identityHeaders = []string{api.HeaderAccountID, api.HeaderTokenID, api.HeaderEnvironment}

// New returns the gateway's handler.
func New(opts Options) (http.Handler, error) {
	if opts.Upstream == nil || opts.Auth == nil {
		return nil, fmt.Errorf("gateway: an upstream and an authenticator are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1024, 1024, 90*time.Second
		opts.Transport = t
	}
	g := &gateway{opts: opts, mux: http.NewServeMux()}
	g.proxy = &httputil.ReverseProxy{Rewrite: g.rewrite, Transport: opts.Transport, ErrorHandler: g.upstreamFailed,
		BufferPool: bufferPool{}, ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)}
	routes := opts.Routes
	if routes == nil {
		routes = []Route{{Pattern: "/"}}
	}
	catchAll := false
	for _, rt := range routes {
		h, err := g.handler(rt)
		if err != nil {
			return nil, err
		}
		if err := register(g.mux, rt, h); err != nil {
			return nil, err
		}
		catchAll = catchAll || rt.Pattern == "/"
	}
	if !catchAll {
		g.mux.Handle("/", http.HandlerFunc(notFound))
	}
	return g, nil
}

// register adds a route, turning ServeMux's panic on a bad or conflicting
// pattern into an error that names the line.
func register(mux *http.ServeMux, rt Route, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("routes line %d: %v", rt.Line, v)
		}
	}()
	mux.Handle(rt.Pattern, h)
	return nil
}

type gateway struct {
	opts  Options
	mux   *http.ServeMux
	proxy *httputil.ReverseProxy
}

func (g *gateway) handler(rt Route) (http.Handler, error) {
	switch {
	case rt.Rule.Public:
		return g.proxy, nil
	case len(rt.Rule.Permissions) == 0:
		return g.opts.Auth.Require()(g.proxy), nil
	}
	static := true
	for _, p := range rt.Rule.Permissions {
		static = static && p.IDFrom == ""
	}
	if static {
		perms := make([]client.Permission, len(rt.Rule.Permissions))
		for i, p := range rt.Rule.Permissions {
			perms[i], _ = p.resolve(nil)
		}
		return g.opts.Auth.Require(perms...)(g.proxy), nil
	}
	templates := rt.Rule.Permissions
	return g.opts.Auth.RequireFunc(func(r *http.Request) ([]client.Permission, error) {
		perms := make([]client.Permission, len(templates))
		for i, p := range templates {
			var err error
			if perms[i], err = p.resolve(r); err != nil {
				return nil, err
			}
		}
		return perms, nil
	})(g.proxy), nil
}

// ServeHTTP routes the request and writes one access-log line.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
	g.mux.ServeHTTP(rec, r) // sets r.Pattern
	if !g.opts.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", methodLabel(r.Method)),
		slog.String("route", routeLabel(r.Pattern)),
		slog.Int("status", rec.code()),
		slog.Duration("duration", time.Since(start)),
	}
	if rec.token != 0 {
		attrs = append(attrs, slog.Int64("token_id", rec.token))
	}
	g.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// rewrite builds the upstream request: the client's identity headers and
// (unless configured) its credential are dropped, and the verified
// identity is added.
func (g *gateway) rewrite(pr *httputil.ProxyRequest) {
	if _, viaProxy := g.opts.TrustedProxies.ClientAddr(pr.In); viaProxy {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetURL(g.opts.Upstream)
	pr.SetXForwarded()
	h := pr.Out.Header
	for _, k := range identityHeaders {
		delete(h, k)
	}
	if !g.opts.ForwardCredentials {
		delete(h, "Api-Token")
		var keep []string
		for _, v := range h["Authorization"] {
			if scheme, _, _ := strings.Cut(strings.TrimSpace(v), " "); !strings.EqualFold(scheme, "Bearer") {
				keep = append(keep, v)
			}
		}
		if keep == nil {
			delete(h, "Authorization")
		} else {
			h["Authorization"] = keep
		}
	}
	if id, ok := middleware.FromContext(pr.In.Context()); ok {
		h[api.HeaderAccountID] = []string{strconv.FormatInt(id.AccountID, 10)}
		h[api.HeaderTokenID] = []string{strconv.FormatInt(id.TokenID, 10)}
		h[api.HeaderEnvironment] = []string{id.Environment}
		if rec, ok := pr.In.Context().Value(recorderKey{}).(*statusRecorder); ok {
			rec.token = id.TokenID
		}
	}
}

type recorderKey struct{}

// bufferPool reuses the buffers responses are copied through, which
// ReverseProxy otherwise allocates (32 KiB) for every request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

func (g *gateway) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	g.opts.Logger.Warn("upstream request failed", "method", methodLabel(r.Method), "route", routeLabel(r.Pattern), "err", err)
	middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusBadGateway, Code: "upstream_unavailable",
		Message: "The upstream service did not answer"})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusNotFound, Code: "not_found", Message: "Not Found"})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	token  int64
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// methodLabel keeps log fields to a fixed set of methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func routeLabel(p string) string {
	if p == "" {
		return "unmatched"
	}
	return p
}
