package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tokend/tokend/client"
)

// table is the routes compiled at start: a tree that picks, for a method
// and a cleaned path, the route net/http.ServeMux would pick for the same
// patterns, with the same precedence (a literal segment before a wildcard,
// a wildcard before a trailing multi wildcard; the method's own patterns,
// then GET's for HEAD, then those without a method) and the same
// trailing-slash redirect (which the gateway turns into serving the path
// itself under the stricter rule, see serve), but without a request copy, a context or an
// allocation. It is the tree of ServeMux's routing_tree.go, over paths
// already decoded (screen refuses every encoded separator, so a decoded
// path splits into the segments ServeMux would unescape one by one). New
// registers the same patterns in a ServeMux first, so that their syntax and
// conflicts are refused as ServeMux refuses them; TestTableMatchesServeMux
// and FuzzTable hold the two to the same answers.
type table struct {
	methods map[string]*node // by method; "" holds the patterns without one
	// uniform: every route asks the same of every request (one rule, no
	// permission taken from the path), so a path's variants cannot ask more
	// than its own route (see variantNeeds).
	uniform bool
}

// node is a node of the tree: a leaf holds a route, an interior node
// branches on the next path segment.
type node struct {
	route    *route
	children map[string]*node // literal segments; "/" is a trailing slash ({$})
	wild     *node            // a single wildcard
	multi    *node            // a trailing multi wildcard, named or not (a pattern's trailing slash)
}

// segment is a piece of a pattern's path, as ServeMux represents it: a
// literal, a trailing slash ("/", from {$}), a wildcard matching one
// segment, or a multi wildcard matching the rest of the path (anonymous
// for a pattern's trailing slash).
type segment struct {
	s     string // the literal, "/", or the wildcard's name
	wild  bool
	multi bool
}

// maxWildcards bounds the wildcards of a pattern, so that a match records
// its values in a fixed array.
const maxWildcards = 16

// values are the path values of a match: offsets into the path matched,
// in the order of the pattern's named wildcards.
type values struct {
	n   int
	off [maxWildcards][2]int
}

func (v *values) push(from, to int) {
	v.off[v.n] = [2]int{from, to}
	v.n++
}

// route is a compiled route: its pattern and what its rule asks.
type route struct {
	pattern  string
	method   string
	segs     []segment
	names    []string // the named wildcards, in order
	notFound bool     // the fallback that answers 404
	public   bool
	// perms are the rule's permissions, those taken from the path left
	// zero; templates say how to fill those in. Never appended to in place
	// (its capacity is its length).
	perms     []client.Permission
	templates []template
}

// template is a permission of a route whose resource id is a path value.
type template struct {
	at       int // in route.perms
	wildcard int // in route.names
	PermissionTemplate
}

// compile builds the table of routes (already registered, so valid and
// without conflicts), with notFound, when not nil, as the fallback route
// "/" for paths no route takes.
func compile(routes []Route, fallback bool) (*table, error) {
	t := &table{methods: map[string]*node{}, uniform: true}
	var first *Rule
	for i, rt := range routes {
		r, err := compileRoute(rt)
		if err != nil {
			return nil, err
		}
		t.add(r)
		if first == nil {
			first = &routes[i].Rule
		} else if !sameRule(*first, rt.Rule) {
			t.uniform = false
		}
		if len(r.templates) > 0 {
			t.uniform = false
		}
	}
	if fallback {
		t.add(&route{pattern: "/", segs: []segment{{wild: true, multi: true}}, notFound: true})
	}
	return t, nil
}

func sameRule(a, b Rule) bool {
	return a.Public == b.Public && slices.Equal(a.Permissions, b.Permissions)
}

// compileRoute parses a pattern ServeMux has accepted into its segments,
// as ServeMux's parsePattern does, and resolves the rule's fixed
// permissions. Hosts are refused (clients send any case, and the gateway
// does not match them), as are paths that are not clean, which ServeMux
// accepts without a method but no cleaned path can match.
func compileRoute(rt Route) (*route, error) {
	r := &route{pattern: rt.Pattern, public: rt.Rule.Public}
	p := rt.Pattern
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		r.method, p = p[:i], strings.TrimLeft(p[i+1:], " \t")
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("routes line %d: %q: patterns are paths (starting with /); hosts are not matched", rt.Line, rt.Pattern)
	}
	if p != cleanPath(p) {
		return nil, fmt.Errorf("routes line %d: %q: the path is not clean (dot segments or doubled slashes): no request could match it", rt.Line, rt.Pattern)
	}
	for rest := p; rest != ""; {
		rest = rest[1:]
		if rest == "" {
			r.segs = append(r.segs, segment{wild: true, multi: true}) // a trailing slash
			break
		}
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			i = len(rest)
		}
		seg := rest[:i]
		rest = rest[i:]
		if !strings.HasPrefix(seg, "{") {
			r.segs = append(r.segs, segment{s: pathUnescape(seg)})
			continue
		}
		if len(seg) < 3 || !strings.HasSuffix(seg, "}") {
			return nil, fmt.Errorf("routes line %d: %q: a wildcard is a whole segment, {name}", rt.Line, rt.Pattern)
		}
		name := seg[1 : len(seg)-1]
		if name == "$" {
			r.segs = append(r.segs, segment{s: "/"})
			break
		}
		name, multi := strings.CutSuffix(name, "...")
		r.segs = append(r.segs, segment{s: name, wild: true, multi: multi})
		r.names = append(r.names, name)
	}
	if len(r.names) > maxWildcards {
		return nil, fmt.Errorf("routes line %d: %q: at most %d wildcards", rt.Line, rt.Pattern, maxWildcards)
	}
	for _, pt := range rt.Rule.Permissions {
		perm := client.Permission{ResourceType: pt.ResourceType, ResourceID: pt.ResourceID, AccessLevel: pt.AccessLevel}
		if pt.IDFrom != "" {
			w := slices.Index(r.names, pt.IDFrom)
			if w < 0 {
				return nil, fmt.Errorf("routes line %d: the pattern has no wildcard {%s}", rt.Line, pt.IDFrom)
			}
			r.templates = append(r.templates, template{at: len(r.perms), wildcard: w, PermissionTemplate: pt})
			perm.ResourceID = 0
		}
		r.perms = append(r.perms, perm)
	}
	r.perms = slices.Clip(r.perms)
	return r, nil
}

func pathUnescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// add puts r in the tree, as ServeMux's addPattern does.
func (t *table) add(r *route) {
	n := t.methods[r.method]
	if n == nil {
		n = &node{}
		t.methods[r.method] = n
	}
	for _, s := range r.segs {
		switch {
		case s.multi:
			n.multi = &node{}
			n = n.multi
		case s.wild:
			if n.wild == nil {
				n.wild = &node{}
			}
			n = n.wild
		default:
			c := n.children[s.s]
			if c == nil {
				c = &node{}
				if n.children == nil {
					n.children = map[string]*node{}
				}
				n.children[s.s] = c
			}
			n = c
		}
	}
	n.route = r
}

// segmentAt is the path segment that begins at path[i] (a "/"): the
// segment without its slash and the index of the next slash (or the
// path's end), or, when path[i:] is the trailing slash alone, "/".
func segmentAt(path []byte, i int) (seg []byte, next int) {
	if i+1 == len(path) {
		return path[i:], len(path) // "/"
	}
	j := bytes.IndexByte(path[i+1:], '/')
	if j < 0 {
		return path[i+1:], len(path)
	}
	return path[i+1 : i+1+j], i + 1 + j
}

// match is the route of the tree under n matching path[i:], with its path
// values appended to vals, as ServeMux's matchPath finds it.
func (n *node) match(path []byte, i int, vals *values) *route {
	if n == nil {
		return nil
	}
	if i == len(path) {
		return n.route
	}
	seg, next := segmentAt(path, i)
	if c := n.children[string(seg)]; c != nil {
		if r := c.match(path, next, vals); r != nil {
			return r
		}
	}
	if n.wild != nil && i+1 < len(path) { // a wildcard does not match a trailing slash
		mark := vals.n
		vals.push(i+1, next)
		if r := n.wild.match(path, next, vals); r != nil {
			return r
		}
		vals.n = mark
	}
	if c := n.multi; c != nil {
		if c.route.segs[len(c.route.segs)-1].s != "" { // named
			vals.push(i+1, len(path))
		}
		return c.route
	}
	return nil
}

// lookup is the route for method and path (clean, beginning with "/"), as
// ServeMux's tree picks it, or nil.
func (t *table) lookup(method string, path []byte, vals *values) *route {
	if n := t.methods[method]; n != nil && method != "" {
		if r := n.match(path, 0, vals); r != nil {
			return r
		}
		vals.n = 0
	}
	if method == http.MethodHead {
		if r := t.methods[http.MethodGet].match(path, 0, vals); r != nil {
			return r
		}
		vals.n = 0
	}
	return t.methods[""].match(path, 0, vals)
}

// exact reports whether r matches path exactly: without a multi wildcard
// taking a non-empty rest (ServeMux's exactMatch).
func exact(r *route, path []byte) bool {
	if r == nil {
		return false
	}
	if !r.segs[len(r.segs)-1].multi {
		return true
	}
	if len(path) > 0 && path[len(path)-1] != '/' {
		return false
	}
	return len(r.segs) == bytes.Count(path, []byte{'/'})
}

// redirect is where ServeMux would send a request for method and path
// (clean), which r matches (lookup's pick): when r does not match path
// exactly and the path with a trailing slash has a route that matches it
// exactly, that route (to), with its values in vals, and the slashed path
// (path with the slash appended in its spare capacity); otherwise nil.
// path needs one byte of spare capacity for the slash, or this allocates.
func (t *table) redirect(method string, path []byte, r *route, vals *values) (to *route, slashed []byte) {
	if exact(r, path) || len(path) == 0 || path[len(path)-1] == '/' {
		return nil, nil
	}
	slashed = append(path, '/')
	if to = t.lookup(method, slashed, vals); exact(to, slashed) {
		return to, slashed
	}
	return nil, nil
}

// find is what ServeMux would do with a request for method and path
// (clean): serve route r with vals, or, when redirect, send the client to
// the path with a trailing slash, which r matches exactly. The gateway
// itself redirects nothing (see serve); find is what serve is checked
// against. path needs one byte of spare capacity for the slash, or the
// check allocates.
func (t *table) find(method string, path []byte, vals *values) (r *route, redirect bool) {
	r = t.lookup(method, path, vals)
	var v2 values
	if to, _ := t.redirect(method, path, r, &v2); to != nil {
		return to, true
	}
	return r, false
}

// serve is the route that serves a request for method and path (clean),
// with its values in vals (offsets into at), and what it asks, before the
// path's variants (see variantNeeds). It is the route ServeMux picks,
// except that the gateway never redirects: where ServeMux would send the
// client to the path with a trailing slash, the path itself is served (and
// passed on as it is) by the route the client would have reached, the
// slashed path's (at is then path with the slash appended in its spare
// capacity), and it asks what that route asks and, unless it is the
// fallback, what the route the path itself matches asks too: the stricter
// of the two. r is nil or the fallback when no route takes the path.
// path needs one byte of spare capacity for the slash, or this allocates.
func (t *table) serve(method string, path []byte, vals *values) (r *route, at []byte, n needs) {
	r = t.lookup(method, path, vals)
	own := r != nil && !r.notFound
	if own {
		n = r.needsOf(path, vals)
	}
	var v2 values
	to, slashed := t.redirect(method, path, r, &v2)
	if to == nil {
		return r, path, n
	}
	if tn := to.needsOf(slashed, &v2); own {
		n.add(tn)
	} else {
		n = tn
	}
	*vals = v2
	return to, slashed, n
}

// matches reports whether r's pattern alone matches method and path.
func (r *route) matches(method string, path []byte) bool {
	if r.method != "" && r.method != method && (method != http.MethodHead || r.method != http.MethodGet) {
		return false
	}
	i := 0
	for _, s := range r.segs {
		if i == len(path) {
			return false
		}
		seg, next := segmentAt(path, i)
		slash := i+1 == len(path) // seg is the trailing slash
		switch {
		case s.multi:
			return true
		case s.wild:
			if slash {
				return false
			}
		case s.s == "/":
			if !slash {
				return false
			}
		case string(seg) != s.s || slash:
			return false
		}
		i = next
	}
	return i == len(path)
}

// needs is what a request must present: a token (auth) holding perms.
type needs struct {
	auth  bool
	perms []client.Permission // shared with the route's: copy before appending
	err   error               // a permission's id could not be read from the path
}

// needsOf is what r asks of a request whose path matched it with vals.
func (r *route) needsOf(path []byte, vals *values) needs {
	if r.public {
		return needs{}
	}
	n := needs{auth: true, perms: r.perms}
	if len(r.templates) == 0 {
		return n
	}
	n.perms = slices.Clone(r.perms)
	for _, t := range r.templates {
		off := vals.off[t.wildcard]
		v := path[off[0]:off[1]]
		id, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || id <= 0 {
			n.err = fmt.Errorf("%s %q in the path is not a %s id", t.IDFrom, string(v), t.ResourceType)
			n.perms = n.perms[:t.at]
			return n
		}
		n.perms[t.at].ResourceID = id
	}
	return n
}

// add makes n ask what o asks too.
func (n *needs) add(o needs) {
	n.auth = n.auth || o.auth
	for _, p := range o.perms {
		if !slices.Contains(n.perms, p) {
			n.perms = append(slices.Clip(n.perms), p)
		}
	}
	if n.err == nil {
		n.err = o.err
	}
}

// variantNeeds adds to n what the routes of path's variants ask: the path
// in lower case and with its trailing slash toggled. The API behind may
// route those the same as the path itself (case-insensitive routers,
// routers that ignore a trailing slash), so a request must meet the
// strictest of the rules any of them matches, or a weaker catch-all would
// let it through. A variant's route counts unless its pattern matches the
// path itself too: then the routes file chose the path's own route for it
// on purpose (a public /healthz beside a catch-all "/ token" stays public).
// A variant counts with every route serve would make it ask for (a
// variant that only the fallback takes counts for nothing). With a uniform
// table there is nothing to add.
func (t *table) variantNeeds(method string, path []byte, n *needs) {
	if t.uniform {
		return
	}
	var buf [512]byte
	lower, hasUpper := appendLower(buf[:0], path)
	slash := len(path) > 1 && path[len(path)-1] == '/'
	for k := range 3 {
		var v []byte
		switch k {
		case 0: // lower case
			if !hasUpper {
				continue
			}
			v = lower
		case 1: // trailing slash toggled
			v = toggleSlash(lower[len(lower):], path, slash)
		case 2: // both
			if !hasUpper {
				continue
			}
			v = toggleSlash(lower[len(lower):], lower, slash)
		}
		if len(v) == 0 {
			continue
		}
		var vals values
		r := t.lookup(method, v, &vals)
		if r != nil && !r.notFound && !r.matches(method, path) {
			n.add(r.needsOf(v, &vals))
		}
		// Where ServeMux would redirect the variant, the route of the
		// slashed variant counts too, as it does for the path itself (see
		// serve).
		var v2 values
		if to, slashed := t.redirect(method, v, r, &v2); to != nil && !to.matches(method, path) {
			n.add(to.needsOf(slashed, &v2))
		}
	}
}

// appendLower appends path in lower case (as strings.ToLower has it) to
// dst, and reports whether that changed anything.
func appendLower(dst, path []byte) ([]byte, bool) {
	for _, c := range path {
		if c >= utf8.RuneSelf {
			l := bytes.ToLower(path) // rare: not ASCII
			return append(dst, l...), !bytes.Equal(l, path)
		}
	}
	changed := false
	for _, c := range path {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
			changed = true
		}
		dst = append(dst, c)
	}
	return dst, changed
}

// toggleSlash appends p with its trailing slash removed (when slash) or
// added to dst, keeping a byte of spare capacity when it can (see find).
func toggleSlash(dst, p []byte, slash bool) []byte {
	if slash {
		return append(dst, p[:len(p)-1]...)
	}
	if len(p) == 1 { // "/": toggled, it is empty
		return nil
	}
	return append(append(dst, p...), '/')
}
