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
	"regexp"
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
	// AllowUpgrades passes protocol upgrades (WebSocket) through. The token
	// is checked when the upgraded connection opens, not while it lasts: a
	// revoked token's open connection stays open. By default the Upgrade
	// header is removed and the request goes on as plain HTTP.
	AllowUpgrades bool
	Transport     http.RoundTripper // default: one tuned for a single upstream
	Logger        *slog.Logger      // the access log; default: discard
}

// isIdentityHeader reports whether a header name could pass for one of the
// X-Tokend-* identity headers upstream, where CGI-style servers read "-" and
// "_" alike: client-sent ones are removed before the verified ones are set.
func isIdentityHeader(k string) bool {
	const prefix = "x-tokend-"
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := k[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

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
	g := &gateway{opts: opts, mux: http.NewServeMux(), classify: http.NewServeMux()}
	g.proxy = &httputil.ReverseProxy{Rewrite: g.rewrite, Transport: opts.Transport, ErrorHandler: g.upstreamFailed,
		BufferPool: bufferPool{}, ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)}
	routes := opts.Routes
	if routes == nil {
		routes = []Route{{Pattern: "/"}}
	}
	for _, rt := range routes {
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
			r = r.WithContext(middleware.WithIdentity(r.Context(), id))
		}
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
// "post" would dodge a "POST" rule), encoded separators and dots, and path
// parameters (";", which servlet containers strip per segment: "/public/..;/admin").
// Unless upgrades are allowed, it also removes a protocol upgrade, whose
// connection would outlive the token's checks.
func (g *gateway) screen(r *http.Request) *middleware.Error {
	for i := 0; i < len(r.Method); i++ {
		if c := r.Method[i]; 'a' <= c && c <= 'z' {
			return &middleware.Error{Status: http.StatusBadRequest, Code: "bad_method", Message: "Methods are upper case"}
		}
	}
	escaped := r.URL.EscapedPath()
	if encodedSeparator(escaped) || strings.Contains(escaped, ";") || strings.Contains(strings.ToLower(escaped), "%3b") {
		return &middleware.Error{Status: http.StatusBadRequest, Code: "bad_path",
			Message: "Encoded slashes, backslashes and dots, and path parameters (;), are not accepted in paths"}
	}
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

// encodedSeparator reports whether an escaped path hides a path separator
// or dot from the routing: %2F, %5C or %2E, in either case.
func encodedSeparator(escaped string) bool {
	for i := 0; i+2 < len(escaped); i++ {
		if escaped[i] != '%' {
			continue
		}
		switch strings.ToUpper(escaped[i+1 : i+3]) {
		case "2F", "5C", "2E":
			return true
		}
	}
	return false
}

// ServeHTTP routes the request and writes one access-log line.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &api.StatusRecorder{ResponseWriter: w}
	var tokenID int64 // set by rewrite once the request authenticated
	if refusal := g.screen(r); refusal != nil {
		middleware.WriteJSONError(rec, r, refusal)
	} else {
		// The upstream gets the path exactly as it was matched.
		r.URL.RawPath = ""
		ctx := context.WithValue(r.Context(), tokenIDKey{}, &tokenID)
		r = r.WithContext(context.WithValue(ctx, needsKey{}, g.variantNeeds(r)))
		g.mux.ServeHTTP(rec, r) // sets r.Pattern
	}
	if !g.opts.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", api.MethodLabel(r.Method)),
		slog.String("route", routeLabel(r.Pattern)),
		slog.Int("status", rec.Code()),
		slog.Duration("duration", time.Since(start)),
	}
	if tokenID != 0 {
		attrs = append(attrs, slog.Int64("token_id", tokenID))
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
	for k := range h {
		if isIdentityHeader(k) {
			delete(h, k)
		}
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
		if p, ok := pr.In.Context().Value(tokenIDKey{}).(*int64); ok {
			*p = id.TokenID
		}
	}
}

type tokenIDKey struct{}

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

func (g *gateway) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	g.opts.Logger.Warn("upstream request failed", "method", api.MethodLabel(r.Method), "route", routeLabel(r.Pattern), "err", err)
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
