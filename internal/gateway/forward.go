package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// forward passes r on through the hop and copies the answer back, as
// httputil.ReverseProxy would with a Rewrite (the same headers removed,
// set and copied, the same query cleaning, informational answers, trailers
// and flushes), without copying the request or its headers: r's headers
// become the upstream's in place (the server does not read them again).
// The request's own trailers are not passed on: scrub never sees them.
func (g *gateway) forward(w *answer, r *http.Request, st *requestState) {
	hr := hopRequests.Get().(*hopRequest)
	defer hr.release()
	out := &hr.req
	*out = *r
	hr.url = *r.URL
	out.URL = &hr.url
	out.URL.Scheme, out.URL.Host = g.opts.Upstream.Scheme, g.opts.Upstream.Host
	out.URL.Path, out.URL.RawPath = g.joinPath(r.URL)
	out.URL.RawQuery = g.joinQuery(cleanQueryParams(r.URL.RawQuery))
	out.Host, out.RequestURI, out.Close, out.Trailer = "", "", false, nil
	out.Body = nil // Request.Write sends no body, and the hop may send again
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		hr.body.r = g.boundBody(w, r, st)
		out.Body = &hr.body
	}

	h := r.Header
	te := hasToken(h["Te"], "trailers")
	prior := h["X-Forwarded-For"]
	removeHopByHop(h)
	delete(h, "Forwarded")
	delete(h, "X-Forwarded-For")
	delete(h, "X-Forwarded-Host")
	delete(h, "X-Forwarded-Proto")
	if te {
		h["Te"] = teTrailers // the client takes trailers: the upstream may send them
	}
	g.upstreamHeader(h, r, prior, st)

	res, c, err := g.hop.roundTrip(r.Context(), out, w)
	if err != nil {
		g.failed(w, r, st, err)
		return
	}
	g.respond(w, r, st, res, c)
}

// respond copies the upstream's answer res, read from c, to the client.
func (g *gateway) respond(w *answer, r *http.Request, st *requestState, res *http.Response, c *upConn) {
	if res.StatusCode == http.StatusSwitchingProtocols { // no upgrade was asked on this way
		g.hop.release(c, res, false)
		g.failed(w, r, st, errors.New("the upstream switched protocols, which the request did not ask"))
		return
	}
	removeHopByHop(res.Header)
	h := w.Header()
	for k, vs := range res.Header {
		h[k] = vs
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)

	// A body of unknown length, or events, streams: what arrives goes to
	// the client as soon as the upstream has nothing more ready.
	stream := res.ContentLength == -1 || eventStream(res.Header["Content-Type"])
	rc := http.NewResponseController(w.ResponseWriter)
	if stream && c.br.Buffered() == 0 {
		_ = rc.Flush()
	}
	buf := bufferPool{}.Get()
	var rerr, werr error
	for {
		var nr int
		nr, rerr = res.Body.Read(buf)
		if nr > 0 {
			var nw int
			nw, werr = w.Write(buf[:nr])
			if werr == nil && nw != nr {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				break
			}
			if stream && c.br.Buffered() == 0 {
				_ = rc.Flush()
			}
		}
		if rerr != nil {
			break
		}
	}
	bufferPool{}.Put(buf)
	whole := rerr == io.EOF && werr == nil
	if whole {
		res.Body.Close() // reads the trailers, if any
	}
	g.hop.release(c, res, whole)
	if !whole {
		if werr == nil {
			g.opts.Logger.Warn("upstream answer cut short", "request_id", st.id, "method", r.Method,
				"route", routeLabel(st.route), "err", rerr)
		}
		// The answer has begun: all that is left is to abort it, so that the
		// client sees it cut short (as ReverseProxy does).
		if r.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	if len(res.Trailer) > 0 {
		_ = rc.Flush() // chunked, whatever the length: the trailers follow the body
	}
	if len(res.Trailer) == announced {
		for k, vs := range res.Trailer {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
		return
	}
	for k, vs := range res.Trailer {
		for _, v := range vs {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// eventStream reports whether a Content-Type is text/event-stream, whose
// events must not wait in a buffer.
func eventStream(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	base, _, _ := strings.Cut(ct[0], ";")
	return strings.EqualFold(strings.TrimSpace(base), "text/event-stream")
}

// hopRequest is the upstream's request of forward, reused from request to
// request.
type hopRequest struct {
	req  http.Request
	url  url.URL
	body noClose
}

var hopRequests = sync.Pool{New: func() any { return new(hopRequest) }}

func (hr *hopRequest) release() {
	*hr = hopRequest{}
	hopRequests.Put(hr)
}

// noClose is the request body as the upstream's request carries it:
// Request.Write closes the body it sends, which is the server's to close.
type noClose struct{ r io.ReadCloser }

func (b *noClose) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *noClose) Close() error               { return nil }

// joinPath is the upstream's path for u, the upstream URL's path joined
// with u's, as httputil.ProxyRequest.SetURL joins them.
func (g *gateway) joinPath(u *url.URL) (path, rawPath string) {
	a := g.opts.Upstream
	if a.RawPath == "" && u.RawPath == "" {
		return singleJoiningSlash(a.Path, u.Path), ""
	}
	apath, bpath := a.EscapedPath(), u.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + u.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + u.Path, apath + "/" + bpath
	}
	return a.Path + u.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// joinQuery is the upstream's query: the upstream URL's, then q.
func (g *gateway) joinQuery(q string) string {
	t := g.opts.Upstream.RawQuery
	if t == "" || q == "" {
		return t + q
	}
	return t + "&" + q
}

// cleanQueryParams is the query as httputil.ReverseProxy passes it on: a
// query the upstream could split otherwise than Go (";" separators, bad
// escapes, more than 10,000 parameters) is parsed and encoded again.
func cleanQueryParams(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	if strings.Count(s, "&")+1 > 10000 {
		return reencode(s)
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}
