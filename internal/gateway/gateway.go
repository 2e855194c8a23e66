// Package gateway is "tokend proxy": an authenticating reverse proxy that
// puts tokend's tokens in front of any HTTP API.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/httpx"
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
	// Bearer headers upstream; by default they are removed. Other headers
	// that could carry a credential of tokend's are removed either way
	// (see scrub).
	ForwardCredentials bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed (and
	// passed on, with the peer appended).
	TrustedProxies []netip.Prefix
	// TokenPrefix is the prefix of the tokend's token values (default "tk"):
	// a header value holding one that the gateway does not forward as the
	// verified credential never reaches the upstream.
	TokenPrefix string
	// AllowUpgrades passes protocol upgrades (WebSocket) through. The token
	// is checked when the upgraded connection opens, not while it lasts: a
	// revoked token's open connection stays open. By default the Upgrade
	// header is removed and the request goes on as plain HTTP.
	AllowUpgrades bool
	// BodyGrace and BodyMinRate bound how slowly a request body may
	// arrive: all of it within BodyGrace of the request's headers plus a
	// second for every BodyMinRate bytes received, or the request is
	// answered 408 request_timeout and its upstream request abandoned.
	// Defaults: DefaultBodyGrace, DefaultBodyMinRate.
	BodyGrace   time.Duration
	BodyMinRate int
	// Transport, when set, carries every request to the upstream (through
	// httputil.ReverseProxy). By default a plain-HTTP upstream is reached
	// through the gateway's own hop (see hop: HTTP/1.1 on kept-alive
	// connections, in the handler's goroutine), except upgrades, Expect:
	// 100-continue and CONNECT, which go, as everything to an HTTPS
	// upstream goes, through an http.Transport tuned for a single upstream.
	Transport http.RoundTripper
	Logger    *slog.Logger // the access log; default: discard
}

// New returns the gateway's handler.
func New(opts Options) (http.Handler, error) {
	if opts.Upstream == nil || opts.Auth == nil {
		return nil, fmt.Errorf("gateway: an upstream and an authenticator are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TokenPrefix == "" {
		opts.TokenPrefix = apikey.DefaultPrefix
	}
	if _, err := apikey.NewFormat(opts.TokenPrefix); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if opts.BodyGrace <= 0 {
		opts.BodyGrace = DefaultBodyGrace
	}
	if opts.BodyMinRate <= 0 {
		opts.BodyMinRate = DefaultBodyMinRate
	}
	g := &gateway{opts: opts, ids: httpx.NewRequestIDs(), log: opts.Logger.Handler(),
		tokenMarks: [2]string{opts.TokenPrefix + "_live_", opts.TokenPrefix + "_test_"}}
	transport := opts.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1024, 1024, 90*time.Second
		transport = t
		if opts.Upstream.Scheme == "http" && canPeek {
			g.hop = newHop(upstreamAddr(opts.Upstream))
		}
	}
	g.proxy = &httputil.ReverseProxy{Rewrite: g.rewrite, Transport: transport, ErrorHandler: g.proxyFailed,
		ModifyResponse: g.modifyResponse, BufferPool: bufferPool{},
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)}

	routes := opts.Routes
	if routes == nil {
		routes = []Route{{Pattern: "/"}}
	}
	// ServeMux checks the patterns: their syntax, and that no two conflict.
	mux := http.NewServeMux()
	for _, rt := range routes {
		if method, _, ok := strings.Cut(rt.Pattern, " "); ok && method == http.MethodConnect {
			g.connect = true
		}
		if err := register(mux, rt); err != nil {
			return nil, err
		}
	}
	// Anything no route matches is 404, unless a route ("/", "/{path...}")
	// already takes every path: then the fallback conflicts and is not needed.
	fallback := register(mux, Route{Pattern: "/"}) == nil
	t, err := compile(routes, fallback)
	if err != nil {
		return nil, err
	}
	g.table = t
	return g, nil
}

// upstreamAddr is the host:port to dial for u (http).
func upstreamAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// register adds a route to mux, turning ServeMux's panic on a bad or
// conflicting pattern into an error that names the line.
func register(mux *http.ServeMux, rt Route) (err error) {
	defer func() {
		if v := recover(); v != nil {
			// ServeMux says where in this package each pattern was registered:
			// nothing the routes file's author needs.
			msg := registeredAt.ReplaceAllString(fmt.Sprint(v), "")
			err = fmt.Errorf("routes line %d: %s", rt.Line, msg)
		}
	}()
	mux.Handle(rt.Pattern, http.NotFoundHandler())
	return nil
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

type gateway struct {
	opts  Options
	table *table // the routes
	// hop carries requests to a plain-HTTP upstream (nil: the upstream is
	// HTTPS, or Options.Transport is set); proxy, with Options.Transport or
	// an http.Transport, carries the rest: upgrades, Expect: 100-continue,
	// CONNECT.
	hop   *hop
	proxy *httputil.ReverseProxy
	ids   *httpx.RequestIDs
	log   slog.Handler // the access log's
	// idents caches the identity headers of recent identities, by token id.
	idents  [256]atomic.Pointer[identityHeaders]
	connect bool // a route names the CONNECT method
	// tokenMarks begin every live and test token value: a header value
	// holding one carries a token.
	tokenMarks [2]string
}

// requestState is what the gateway learns about a request as it serves it,
// for the access log, the upstream's request and the answer: one
// allocation per request.
type requestState struct {
	id       string
	start    time.Time
	route    string // the pattern matched, for the log
	tokenID  int64  // once the request authenticated
	identity *middleware.Identity
	// bodyTimedOut is set when the body did not arrive in time (see
	// slowBody), by whichever goroutine reads it.
	bodyTimedOut atomic.Bool
	// header backs the X-Request-Id header value: one allocation for the
	// upstream's request and the client's answer.
	header [1]string
	// forwarded backs the X-Forwarded-For and X-Forwarded-Host values.
	forwarded [2]string
	answer    answer
	body      slowBody
}

type stateKey struct{}

// state is the requestState of r, which the gateway puts in the context of
// the requests it passes to its ReverseProxy.
func state(r *http.Request) *requestState {
	st, _ := r.Context().Value(stateKey{}).(*requestState)
	if st == nil {
		st = &requestState{start: time.Now()} // not through ServeHTTP: nothing to record into
	}
	return st
}

// serveRoute serves a screened request: it finds its route (404 when
// none takes the path; never a redirect, see table.serve), authenticates
// what the route and the path's variants need (see variantNeeds), then
// forwards.
func (g *gateway) serveRoute(w *answer, r *http.Request, st *requestState) {
	var buf [256]byte // the path, with room for a slash (see table.serve)
	path := append(buf[:0], r.URL.Path...)
	var vals values
	rt, _, n := g.table.serve(r.Method, path, &vals)
	if rt == nil { // every path has a route or the fallback: not reached
		notFound(w, r)
		return
	}
	st.route = rt.pattern
	if rt.notFound {
		notFound(w, r)
		return
	}
	g.table.variantNeeds(r.Method, path, &n)
	if n.err != nil {
		middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusForbidden, Code: "insufficient_permissions", Message: n.err.Error()})
		return
	}
	if n.auth {
		id, refusal := g.opts.Auth.Authenticate(r, n.perms...)
		if refusal != nil {
			g.opts.Auth.WriteError(w, r, refusal)
			return
		}
		st.tokenID, st.identity = id.TokenID, id
	}
	if g.hop == nil || r.Method == http.MethodConnect || r.Header["Expect"] != nil ||
		g.opts.AllowUpgrades && r.Header["Upgrade"] != nil && hasToken(r.Header["Connection"], "upgrade") {
		g.viaProxy(w, r, st)
		return
	}
	g.forward(w, r, st)
}

// viaProxy passes r on through the ReverseProxy, with its state in its
// context.
func (g *gateway) viaProxy(w *answer, r *http.Request, st *requestState) {
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	r.Body = g.boundBody(w, r, st)
	g.proxy.ServeHTTP(w, r)
}

// screen refuses what the API behind could read differently than the
// routes do: a method not in upper case (some servers upper-case it, and
// "post" would dodge a "POST" rule), a method override, CONNECT unless a
// route names it (ServeMux neither cleans nor redirects a CONNECT path), and
// a path whose decoding is ambiguous (see pathProblem). The path left is
// cleaned, as ServeMux would redirect to: rules match it and the upstream
// receives it. Unless upgrades are allowed, it also removes a protocol
// upgrade, whose connection would outlive the token's checks.
func (g *gateway) screen(r *http.Request) *middleware.Error {
	for i := 0; i < len(r.Method); i++ {
		if c := r.Method[i]; 'a' <= c && c <= 'z' {
			return &middleware.Error{Status: http.StatusBadRequest, Code: "bad_method", Message: "Methods are upper case"}
		}
	}
	if r.Method == http.MethodConnect && !g.connect {
		return &middleware.Error{Status: http.StatusBadRequest, Code: "bad_method", Message: "CONNECT is not accepted: no route names it"}
	}
	if name := methodOverride(r.Header); name != "" {
		return &middleware.Error{Status: http.StatusBadRequest, Code: "bad_method",
			Message: name + " is not accepted: the upstream could run another method than the one the routes matched; send the method itself"}
	}
	if msg := pathProblem(r.URL); msg != "" {
		return &middleware.Error{Status: http.StatusBadRequest, Code: "bad_path", Message: msg}
	}
	r.URL.Path, r.URL.RawPath = cleanPath(r.URL.Path), ""
	if !g.opts.AllowUpgrades {
		dropUpgrade(r.Header)
	}
	return nil
}

// dropUpgrade removes a protocol upgrade from h: the Upgrade header and the
// "upgrade" token of Connection (the others stay, so their headers are still
// removed as hop-by-hop). The request then goes on as plain HTTP.
func dropUpgrade(h http.Header) {
	if _, ok := h["Upgrade"]; !ok {
		return
	}
	delete(h, "Upgrade")
	var keep []string
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !strings.EqualFold(tok, "upgrade") {
				keep = append(keep, tok)
			}
		}
	}
	if len(keep) == 0 {
		delete(h, "Connection")
	} else {
		h["Connection"] = []string{strings.Join(keep, ", ")}
	}
}

// ServeHTTP routes the request and writes one access-log line, naming the
// request by its ID (the client's X-Request-Id when usable, else a new one:
// the upstream and the client get it too) and the token that made it.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &requestState{id: g.ids.From(r.Header), start: time.Now()}
	st.header[0] = st.id
	st.answer = answer{ResponseWriter: w, id: st.header[:]}
	defer g.logRequest(r, st) // even when the answer is aborted (a panic)
	if refusal := g.screen(r); refusal != nil {
		middleware.WriteJSONError(&st.answer, r, refusal)
		return
	}
	g.serveRoute(&st.answer, r, st)
}

// logRequest writes the access-log line of r. It builds the record itself:
// slog.Logger would also look up the caller, which the line does not show.
func (g *gateway) logRequest(r *http.Request, st *requestState) {
	ctx := r.Context()
	if !g.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	end := time.Now()
	rec := slog.NewRecord(end, slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("request_id", st.id),
		slog.String("method", httpx.MethodLabel(r.Method)),
		slog.String("route", routeLabel(st.route)),
		slog.Int("status", st.answer.Code()),
		slog.Duration("duration", end.Sub(st.start)),
	)
	if st.tokenID != 0 {
		rec.AddAttrs(slog.Int64("token_id", st.tokenID))
	}
	_ = g.log.Handle(ctx, rec)
}

// answer is the gateway's ResponseWriter: it records the status answered
// (Code), for the access log, and puts the request's ID on the answer, in
// place of any the upstream set.
type answer struct {
	http.ResponseWriter
	status int
	id     []string // the X-Request-Id value
}

func (w *answer) WriteHeader(code int) {
	// An informational status (100 Continue, 103 Early Hints) comes before
	// the answer, except 101, which is the answer to an upgrade.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		w.ResponseWriter.Header()[httpx.HeaderRequestID] = w.id
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *answer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Code is the status answered, 200 when the handler wrote nothing.
func (w *answer) Code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes, the hijack of an upgrade).
func (w *answer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// rewrite builds the ReverseProxy's upstream request (see upstreamHeader).
func (g *gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(g.opts.Upstream)
	g.upstreamHeader(pr.Out.Header, pr.In, pr.In.Header["X-Forwarded-For"], state(pr.In))
}

// upstreamHeader turns h, the client's headers without their hop-by-hop
// and forwarding headers, into the upstream's: the headers the upstream
// could take for a credential or a client address are scrubbed (see
// scrub), and the forwarding headers, the request's ID and the verified
// identity are set. in is the client's request and prior its
// X-Forwarded-For, which goes on (with the peer appended) when the peer is
// a trusted proxy. The values set are shared, never to be changed in place.
func (g *gateway) upstreamHeader(h http.Header, in *http.Request, prior []string, st *requestState) {
	g.scrub(h)
	// As httputil.ProxyRequest.SetXForwarded sets them.
	if clientIP, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if len(prior) > 0 && g.viaTrustedProxy(in) {
			clientIP = strings.Join(prior, ", ") + ", " + clientIP
		}
		st.forwarded[0] = clientIP
		h["X-Forwarded-For"] = st.forwarded[0:1:1]
	} else {
		delete(h, "X-Forwarded-For")
	}
	st.forwarded[1] = in.Host
	h["X-Forwarded-Host"] = st.forwarded[1:2:2]
	if in.TLS == nil {
		h["X-Forwarded-Proto"] = protoHTTP
	} else {
		h["X-Forwarded-Proto"] = protoHTTPS
	}
	h[httpx.HeaderRequestID] = st.header[:]
	if id := st.identity; id != nil {
		ih := g.identityHeaders(id)
		h[httpx.HeaderAccountID], h[httpx.HeaderTokenID], h[httpx.HeaderEnvironment] = ih.account, ih.token, ih.environment
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent // or Go's would be sent
	}
}

// Header values the gateway sets, shared by every request: read only.
var (
	protoHTTP   = []string{"http"}
	protoHTTPS  = []string{"https"}
	noUserAgent = []string{""}
	teTrailers  = []string{"trailers"}
)

// identityHeaders are the upstream's identity header values for id.
type identityHeaders struct {
	id                          *middleware.Identity
	account, token, environment []string
}

// identityHeaders returns id's header values, formatted once for each
// identity the Authenticator hands out (it hands out the same one for a
// token it has cached) and kept in a slot of g.idents by token id.
func (g *gateway) identityHeaders(id *middleware.Identity) *identityHeaders {
	slot := &g.idents[uint64(id.TokenID)%uint64(len(g.idents))]
	if ih := slot.Load(); ih != nil && ih.id == id {
		return ih
	}
	ih := &identityHeaders{id: id, account: []string{strconv.FormatInt(id.AccountID, 10)},
		token: []string{strconv.FormatInt(id.TokenID, 10)}, environment: []string{id.Environment}}
	slot.Store(ih)
	return ih
}

// modifyResponse puts the request's ID on an upgrade's answer, which is
// written through the hijacked connection rather than through answer.
func (g *gateway) modifyResponse(res *http.Response) error {
	if res.StatusCode == http.StatusSwitchingProtocols && res.Request != nil {
		res.Header[httpx.HeaderRequestID] = state(res.Request).header[:]
	}
	return nil
}

// viaTrustedProxy reports whether r's peer is one of the trusted proxies.
func (g *gateway) viaTrustedProxy(r *http.Request) bool {
	if len(g.opts.TrustedProxies) == 0 {
		return false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := peer.Addr().Unmap()
	for _, p := range g.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// bufferPool reuses the buffers responses are copied through, which
// ReverseProxy otherwise allocates (32 KiB) for every request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[32 << 10]byte)[:] }

func (bufferPool) Put(b []byte) {
	if len(b) == 32<<10 {
		buffers.Put((*[32 << 10]byte)(b))
	}
}

// proxyFailed is the ReverseProxy's error handler (see failed).
func (g *gateway) proxyFailed(w http.ResponseWriter, r *http.Request, err error) {
	g.failed(w, r, state(r), err)
}

// failed answers a request the upstream did not: 408 when the client's
// body was too slow (see slowBody), else 502.
func (g *gateway) failed(w http.ResponseWriter, r *http.Request, st *requestState, err error) {
	if st.bodyTimedOut.Load() {
		w.Header().Set("Connection", "close") // the rest of the body is not coming in time
		middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusRequestTimeout, Code: "request_timeout",
			Message: fmt.Sprintf("The request body did not arrive in time: it must arrive within %v, plus a second for every %d bytes",
				g.opts.BodyGrace, g.opts.BodyMinRate)})
		return
	}
	g.opts.Logger.Warn("upstream request failed", "request_id", st.id, "method", httpx.MethodLabel(r.Method),
		"route", routeLabel(st.route), "err", err)
	middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusBadGateway, Code: "upstream_unavailable",
		Message: "The upstream service did not answer"})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusNotFound, Code: "not_found", Message: "Not Found"})
}

func routeLabel(p string) string {
	if p == "" {
		return "unmatched"
	}
	return p
}
