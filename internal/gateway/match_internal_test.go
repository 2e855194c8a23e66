package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// routeSets are routes files whose matching the table must share with
// ServeMux.
var routeSets = []struct{ name, routes string }{
	{"catch-all", "/ token\n"},
	{"the docs' example", "GET /healthz none\nGET /v1/projects/{id}/reports project:{id}:viewer\n" +
		"POST /v1/projects/{id}/reports project:{id}:admin\nPOST /v1/send domain:7:admin\n/ token\n"},
	{"literals before wildcards", "/a/b/z none\n/a/{x}/c token\n/a/ token\n"},
	{"exact and subtree", "/admin account:1:admin\n/admin/ account:1:admin\n/ none\n"},
	{"{$} and multi", "GET /files/{$} none\nGET /files/{path...} token\nGET /{$} none\n"},
	{"methods", "GET /x none\nPOST /x token\n/x account:1:admin\nHEAD /y none\n"},
	{"no catch-all", "GET /only none\n/dir/ token\n"},
	{"wildcard tails", "/u/{id} token\n/u/{id}/{$} token\n/u/{id}/{rest...} none\n"},
	{"CONNECT", "CONNECT /tunnel/ token\n/ token\n"},
	{"escaped literals", "/caf%C3%A9 none\n/a%20b token\n"},
	{"a subtree and a wildcard beside it", "/admin/ account:1:admin\n/{x} none\n"},
	{"subtrees beside a catch-all", "GET /admin/ account:1:admin\nGET /public/ none\n/ token\n"},
	{"a subtree with a wildcard", "GET /p/{id}/ project:{id}:viewer\n/p/{id}/{rest...} none\n"},
}

var methods = []string{"GET", "HEAD", "POST", "DELETE", "CONNECT"}

// pathsFor are clean paths that exercise routes: each pattern with its
// wildcards filled, in other cases, with and without a trailing slash,
// cut short and made longer, and a few of every kind.
func pathsFor(routes []Route) []string {
	set := map[string]bool{"/": true, "/a": true, "/a/": true, "/a/b": true, "/a/b/c": true, "/x/y/z/": true, "/café": true, "/a b": true}
	wild := regexp.MustCompile(`\{[^}]*\}`)
	for _, r := range routes {
		p := r.Pattern[strings.LastIndex(r.Pattern, " ")+1:]
		for _, fill := range []string{"7", "x", "A/b"} {
			q := strings.ReplaceAll(wild.ReplaceAllString(p, fill), "{$}", "")
			q, _ = url.PathUnescape(q)
			for _, v := range []string{q, strings.ToUpper(q), strings.TrimSuffix(q, "/"), q + "/", q + "/more", q + "/more/"} {
				set[cleanPath("/"+strings.TrimPrefix(v, "/"))] = true
			}
			for i := 1; i < len(q); i++ {
				if q[i] == '/' {
					set[q[:i]], set[q[:i+1]] = true, true
				}
			}
		}
	}
	var out []string
	for p := range set {
		if strings.HasPrefix(p, "/") && cleanPath(p) == p && pathProblem(&url.URL{Path: p}) == "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// muxAnswer is what a ServeMux with routes (and the fallback, as New adds
// it) does with method and path: "route <pattern> <values>", "redirect
// <location>", "fallback" or "none".
func muxAnswer(mux *http.ServeMux, method, path string) string {
	r := &http.Request{Method: method, URL: &url.URL{Path: path}, Host: "gw.test", Header: http.Header{}}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, r)
	switch rec.Code {
	case http.StatusTemporaryRedirect, http.StatusMovedPermanently:
		return "redirect " + rec.Header().Get("Location")
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return "none"
	}
	return rec.Body.String()
}

func tableAnswer(t *table, method, path string) string {
	var vals values
	p := []byte(path)
	r, redirect := t.find(method, p, &vals)
	switch {
	case r == nil:
		return "none"
	case redirect:
		return "redirect " + (&url.URL{Path: path + "/"}).String() // as serveRoute writes it
	case r.notFound:
		return "fallback"
	}
	return "route " + r.pattern + valuesString(r.names, func(i int) string {
		return string(p[vals.off[i][0]:vals.off[i][1]])
	})
}

// serveAnswer is what the gateway does with method and path: "route
// <pattern> <values>", "fallback" or "none", never a redirect.
func serveAnswer(t *table, method, path string) string {
	var vals values
	p := make([]byte, len(path), len(path)+1)
	copy(p, path)
	r, at, _ := t.serve(method, p, &vals)
	switch {
	case r == nil:
		return "none"
	case r.notFound:
		return "fallback"
	}
	return "route " + r.pattern + valuesString(r.names, func(i int) string {
		return string(at[vals.off[i][0]:vals.off[i][1]])
	})
}

// gatewayWant is what the gateway must do with method and path, from what
// ServeMux does: the same, except that where ServeMux redirects to the path
// with a trailing slash, the gateway serves the path itself with the route
// (and values) ServeMux serves the slashed path with.
func gatewayWant(mux *http.ServeMux, method, path string) string {
	want := muxAnswer(mux, method, path)
	if strings.HasPrefix(want, "redirect ") {
		return muxAnswer(mux, method, path+"/")
	}
	return want
}

func valuesString(names []string, value func(i int) string) string {
	var b strings.Builder
	for i, n := range names {
		fmt.Fprintf(&b, " %s=%q", n, value(i))
	}
	return b.String()
}

// muxFor registers routes (and the fallback, unless it conflicts) in a
// ServeMux whose handlers write what they matched.
func muxFor(routes []Route) (*http.ServeMux, bool) {
	mux := http.NewServeMux()
	for _, rt := range routes {
		names := compileNames(rt.Pattern)
		if !handle(mux, rt.Pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "route "+r.Pattern+valuesString(names, func(i int) string { return r.PathValue(names[i]) }))
		})) {
			return nil, false
		}
	}
	handle(mux, "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "fallback") }))
	return mux, true
}

// handle registers h for pattern, unless ServeMux refuses it.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	mux.Handle(pattern, h)
	return true
}

func compileNames(pattern string) []string {
	r, err := compileRoute(Route{Pattern: pattern})
	if err != nil {
		return nil
	}
	return r.names
}

// The compiled table picks what ServeMux picks for the same patterns: the
// route, its path values, the trailing-slash redirect, or nothing; and the
// gateway serves what ServeMux serves, except that where ServeMux
// redirects, it serves the path itself with the redirect target's route.
func TestTableMatchesServeMux(t *testing.T) {
	redirects := 0
	defer func() {
		if redirects == 0 {
			t.Error("no request ServeMux redirects was tried")
		}
	}()
	for _, c := range routeSets {
		t.Run(c.name, func(t *testing.T) {
			routes, err := ParseRoutes(strings.NewReader(c.routes))
			if err != nil {
				t.Fatal(err)
			}
			mux, ok := muxFor(routes)
			if !ok {
				t.Fatal("ServeMux refuses the routes")
			}
			tab := tableFor(t, routes)
			n := 0
			for _, p := range pathsFor(routes) {
				for _, m := range methods {
					want, got := muxAnswer(mux, m, p), tableAnswer(tab, m, p)
					if got != want {
						t.Errorf("%s %s: table %q, ServeMux %q", m, p, got, want)
					}
					if want, got := gatewayWant(mux, m, p), serveAnswer(tab, m, p); got != want {
						t.Errorf("%s %s: the gateway serves %q, want %q (ServeMux: %q)", m, p, got, want, muxAnswer(mux, m, p))
					}
					redirects += strings.Count(want, "redirect ")
					n++
				}
			}
			if n < 50 {
				t.Fatalf("only %d requests tried", n)
			}
		})
	}
}

func tableFor(t testing.TB, routes []Route) *table {
	mux := http.NewServeMux()
	for _, rt := range routes {
		if err := register(mux, rt); err != nil {
			t.Fatal(err)
		}
	}
	tab, err := compile(routes, register(mux, Route{Pattern: "/"}) == nil)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// FuzzTable: for any routes file ServeMux and New accept, and any clean
// path the gateway lets through, the table answers as ServeMux does.
func FuzzTable(f *testing.F) {
	for _, c := range routeSets {
		f.Add(c.routes, "GET", "/a/b")
		f.Add(c.routes, "HEAD", "/admin")
	}
	f.Add("/a/{x}/{y...} token\n/a/b/ none\n", "POST", "/a/b/c/d")
	f.Fuzz(func(t *testing.T, file, method, path string) {
		routes, err := ParseRoutes(strings.NewReader(file))
		if err != nil || !slices.Contains(methods, method) {
			return
		}
		for _, r := range routes {
			if _, err := compileRoute(r); err != nil {
				return // New refuses it
			}
		}
		mux, ok := muxFor(routes)
		if !ok {
			return
		}
		tab := tableFor(t, routes)
		for _, p := range append(pathsFor(routes), path) {
			if !strings.HasPrefix(p, "/") || cleanPath(p) != p || pathProblem(&url.URL{Path: p}) != "" {
				continue
			}
			if want, got := muxAnswer(mux, method, p), tableAnswer(tab, method, p); got != want {
				t.Fatalf("%s %s with routes %q: table %q, ServeMux %q", method, p, file, got, want)
			}
			if want, got := gatewayWant(mux, method, p), serveAnswer(tab, method, p); got != want {
				t.Fatalf("%s %s with routes %q: the gateway serves %q, want %q", method, p, file, got, want)
			}
		}
	})
}

// Routing a request allocates nothing: not the path's match, not its
// variants', not what the route asks (without path values).
func TestTableDoesNotAllocate(t *testing.T) {
	routes, err := ParseRoutes(strings.NewReader(routeSets[1].routes))
	if err != nil {
		t.Fatal(err)
	}
	tab := tableFor(t, routes)
	for _, p := range []string{"/v1/send", "/Healthz/", "/V1/Other/", "/something/else"} {
		allocs := testing.AllocsPerRun(100, func() {
			var buf [256]byte
			path := append(buf[:0], p...)
			var vals values
			_, _, n := tab.serve("POST", path, &vals)
			tab.variantNeeds("POST", path, &n)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations", p, allocs)
		}
	}
}
