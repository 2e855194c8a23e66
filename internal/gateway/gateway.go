// Package gateway is "tokend proxy": an authenticating reverse proxy that
// puts tokend's tokens in front of any HTTP API.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/tokend/tokend/client"
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
	Transport   http.RoundTripper // default: one tuned for a single upstream
	Logger      *slog.Logger      // the access log; default: discard
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
	if opts.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1024, 1024, 90*time.Second
		opts.Transport = t
	}
	g := &gateway{opts: opts, mux: http.NewServeMux(), classify: http.NewServeMux(), ids: httpx.NewRequestIDs(),
		tokenMarks: [2]string{opts.TokenPrefix + "_live_", opts.TokenPrefix + "_test_"}}
	g.proxy = &httputil.ReverseProxy{Rewrite: g.rewrite, Transport: opts.Transport, ErrorHandler: g.upstreamFailed,
		ModifyResponse: g.modifyResponse, BufferPool: bufferPool{},
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)}
	routes := opts.Routes
	if routes == nil {
		routes = []Route{{Pattern: "/"}}
	}
	for _, rt := range routes {
		if method, _, ok := strings.Cut(rt.Pattern, " "); ok && method == http.MethodConnect {
			g.connect = true
		}
		if err := register(g.mux, rt, g.guard(rt.Rule)); err != nil {
			return nil, err
		}
		only := http.NewServeMux() // the route's pattern alone, to ask whether it matches a path
		register(only, rt, http.NotFoundHandler())
		register(g.classify, rt, classifier(rt.Rule, only)) // the same patterns: cannot fail now
	}
	// Anything no route matches is 404, unless a route ("/", "/{path...}")
	// already takes every path: then the fallback conflicts and is not needed.
	_ = register(g.mux, Route{Pattern: "/"}, http.HandlerFunc(notFound))
	return g, nil
}

// register adds a route, turning ServeMux's panic on a bad or conflicting
// pattern into an error that names the line.
func register(mux *http.ServeMux, rt Route, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			// ServeMux says where in this package each pattern was registered:
			// nothing the routes file's author needs.
			msg := registeredAt.ReplaceAllString(fmt.Sprint(v), "")
			err = fmt.Errorf("routes line %d: %s", rt.Line, msg)
		}
	}()
	mux.Handle(rt.Pattern, h)
	return nil
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

type gateway struct {
	opts  Options
	mux   *http.ServeMux // the routes, each guarding the proxy with its rule
	proxy *httputil.ReverseProxy
	// classify has the same patterns, each only saying what its rule needs
	// (see variantNeeds).
	classify *http.ServeMux
	ids      *httpx.RequestIDs
	connect  bool // a route names the CONNECT method
	// tokenMarks begin every live and test token value: a header value
	// holding one carries a token.
	tokenMarks [2]string
}

// requestState is what the gateway learns about a request as it serves it,
// for the access log and the answer.
type requestState struct {
	id      string
	start   time.Time
	tokenID int64 // once the request authenticated
	// bodyTimedOut is set when the body did not arrive in time (see
	// slowBody), by whichever goroutine reads it.
	bodyTimedOut atomic.Bool
	// header backs the X-Request-Id header value: one allocation for the
	// upstream's request and the client's answer.
	header [1]string
}

type stateKey struct{}

// state is the requestState of r, which ServeHTTP puts in every request's
// context.
func state(r *http.Request) *requestState {
	st, _ := r.Context().Value(stateKey{}).(*requestState)
	if st == nil {
		st = &requestState{start: time.Now()} // not through ServeHTTP: nothing to record into
	}
	return st
}

// needs is what a request must present: a token (auth), holding perms.
type needs struct {
	auth  bool
	perms []client.Permission
	err   error // a permission's id could not be read from the path

	orig *http.Request // while classifying variants: the request itself
}

func (n *needs) add(o needs) {
	n.auth = n.auth || o.auth
	n.perms = append(n.perms, o.perms...)
	if n.err == nil {
		n.err = o.err
	}
}

// of is what rule needs of r (its path values resolve the templates).
func of(rule Rule, r *http.Request) needs {
	if rule.Public {
		return needs{}
	}
	n := needs{auth: true}
	for _, p := range rule.Permissions {
		perm, err := p.resolve(r)
		if err != nil {
			n.err = err
			return n
		}
		n.perms = append(n.perms, perm)
	}
	return n
}

type needsKey struct{}

// classifier records what rule needs of a variant of a request into its
// context, unless the rule's pattern (alone in only) matches the request's
// own path too: then the routes file chose a rule for that path on purpose
// (a public /healthz beside a catch-all "/ token" stays public).
func classifier(rule Rule, only *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := r.Context().Value(needsKey{}).(*needs)
		if !ok {
			return
		}
		if n.orig != nil {
			if _, pattern := only.Handler(n.orig); pattern != "" {
				return
			}
		}
		n.add(of(rule, r))
	})
}

// guard serves a request of a route with rule: it authenticates what the
// rule and the path's variants need, then proxies.
func (g *gateway) guard(rule Rule) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := of(rule, r)
		if extra, ok := r.Context().Value(needsKey{}).(*needs); ok {
			n.add(*extra)
		}
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
			state(r).tokenID = id.TokenID
			r = r.WithContext(middleware.WithIdentity(r.Context(), id))
		}
		g.boundBody(w, r)
		g.proxy.ServeHTTP(w, r)
	})
}

// variantNeeds is what the rules of r's path variants need: in lower case
// and with its trailing slash toggled. The API behind may route those the
// same as the path itself (case-insensitive routers, routers that ignore a
// trailing slash), so a request must meet the strictest of the rules any
// of them matches, or a weaker catch-all would let it through. A rule whose
// pattern matches r's own path as well does not count (see classifier).
func (g *gateway) variantNeeds(r *http.Request) *needs {
	n := needs{orig: r}
	defer func() { n.orig = nil }()
	p := r.URL.Path
	lower := strings.ToLower(p)
	toggle := func(s string) string {
		if strings.HasSuffix(s, "/") {
			return strings.TrimSuffix(s, "/")
		}
		return s + "/"
	}
	seen := map[string]bool{p: true}
	for _, v := range []string{lower, toggle(p), toggle(lower)} {
		if v == "" || seen[v] {
			continue
		}
		seen[v] = true
		u := *r.URL
		u.Path, u.RawPath = v, ""
		vr := r.WithContext(context.WithValue(r.Context(), needsKey{}, &n)) // a shallow copy
		vr.URL = &u
		g.classify.ServeHTTP(discard{}, vr)
	}
	return &n
}

// discard is a ResponseWriter for the classifier, which writes nothing
// (but may redirect, which counts as no match).
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

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
	rec := &answer{ResponseWriter: w, id: st.header[:]}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	if refusal := g.screen(r); refusal != nil {
		middleware.WriteJSONError(rec, r, refusal)
	} else {
		r = r.WithContext(context.WithValue(r.Context(), needsKey{}, g.variantNeeds(r)))
		g.mux.ServeHTTP(rec, r) // sets r.Pattern
	}
	if !g.opts.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", st.id),
		slog.String("method", httpx.MethodLabel(r.Method)),
		slog.String("route", routeLabel(r.Pattern)),
		slog.Int("status", rec.Code()),
		slog.Duration("duration", time.Since(st.start)),
	}
	if st.tokenID != 0 {
		attrs = append(attrs, slog.Int64("token_id", st.tokenID))
	}
	g.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
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

// rewrite builds the upstream request: the headers the upstream could take
// for a credential or a client address are scrubbed, and the request's ID,
// the forwarding headers and the verified identity are added.
func (g *gateway) rewrite(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	g.scrub(h)
	if g.viaTrustedProxy(pr.In) {
		h["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetURL(g.opts.Upstream)
	pr.SetXForwarded()
	h[httpx.HeaderRequestID] = state(pr.In).header[:]
	if id, ok := middleware.FromContext(pr.In.Context()); ok {
		h[httpx.HeaderAccountID] = []string{strconv.FormatInt(id.AccountID, 10)}
		h[httpx.HeaderTokenID] = []string{strconv.FormatInt(id.TokenID, 10)}
		h[httpx.HeaderEnvironment] = []string{id.Environment}
	}
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

// upstreamFailed answers a request the upstream did not: 408 when the
// client's body was too slow (see slowBody), else 502.
func (g *gateway) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	st := state(r)
	if st.bodyTimedOut.Load() {
		w.Header().Set("Connection", "close") // the rest of the body is not coming in time
		middleware.WriteJSONError(w, r, &middleware.Error{Status: http.StatusRequestTimeout, Code: "request_timeout",
			Message: fmt.Sprintf("The request body did not arrive in time: it must arrive within %v, plus a second for every %d bytes",
				g.opts.BodyGrace, g.opts.BodyMinRate)})
		return
	}
	g.opts.Logger.Warn("upstream request failed", "request_id", st.id, "method", httpx.MethodLabel(r.Method),
		"route", routeLabel(r.Pattern), "err", err)
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
