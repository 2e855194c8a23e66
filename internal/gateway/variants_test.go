package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
)

// A path that a subtree pattern takes only once a slash is added (ServeMux
// would redirect the path itself there) still needs that pattern's rule
// when another route takes the path: the API behind may serve /admin as it
// serves /admin/.
func TestGatewayVariantsOfASubtree(t *testing.T) {
	base := newFixture(t, "", false)
	f := newFixtureWith(t, base, fmt.Sprintf("/admin/ account:%d:admin\n/{page} none\n", base.tokend.AccountID))
	viewer := http.Header{"Api-Token": {f.tokend.Token(t, "viewer").Value}}
	admin := http.Header{"Api-Token": {f.tokend.Admin.Value}}
	for _, c := range []struct {
		name, path string
		header     http.Header
		status     int
	}{
		{"the subtree's rule, without a token", "/admin", nil, 401},
		{"the subtree's rule, for a viewer", "/admin", viewer, 403},
		{"the subtree's rule, for the admin", "/admin", admin, 200},
		{"in another case", "/Admin", viewer, 403},
		{"inside the subtree", "/admin/users", viewer, 403},
		{"another page", "/about", nil, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, _, body := f.do("GET", c.path, c.header); status != c.status {
				t.Fatalf("GET %s: %d %v, want %d", c.path, status, body, c.status)
			}
		})
	}
}

// The gateway never redirects: where ServeMux would send /admin to /admin/,
// the gateway authenticates /admin under the stricter of its own route's
// rule and the /admin/ line's, and passes /admin on as it is.
func TestGatewayDoesNotRedirectToTheSubtree(t *testing.T) {
	base := newFixture(t, "", false)
	account := base.tokend.AccountID
	f := newFixtureWith(t, base, fmt.Sprintf("GET /admin/ account:%d:admin\nGET /public/ none\n/ token\n", account))
	bare := newFixtureWith(t, base, fmt.Sprintf("GET /admin/ account:%d:admin\nGET /public/ none\n", account))
	viewer := "Api-Token: " + f.tokend.Token(t, "viewer").Value
	admin := "Api-Token: " + f.tokend.Admin.Value
	for _, c := range []struct {
		name   string
		f      *fixture
		target string
		header string
		status int
		path   string // the upstream's, when it answers
	}{
		{"the subtree's rule, without a token", f, "/admin", "", 401, ""},
		{"the subtree's rule, for a viewer", f, "/admin", viewer, 403, ""},
		{"the subtree's rule, for the admin", f, "/admin", admin, 200, "/admin"},
		{"with a query", f, "/admin?x=1", admin, 200, "/admin"},
		{"a dot segment", f, "/admin/.", viewer, 403, ""},
		{"a dot segment, for the admin", f, "/admin/.", admin, 200, "/admin"},
		{"dot-dot", f, "/public/../admin", viewer, 403, ""},
		{"dot-dot, without a token", f, "/public/../admin", "", 401, ""},
		{"a public subtree beside the catch-all: the catch-all's rule", f, "/public", "", 401, ""},
		{"a public subtree beside the catch-all, with a token", f, "/public", viewer, 200, "/public"},
		{"inside the public subtree", f, "/public/x", "", 200, "/public/x"},
		{"no catch-all: the subtree's rule, without a token", bare, "/admin", "", 401, ""},
		{"no catch-all: the subtree's rule, for a viewer", bare, "/admin", viewer, 403, ""},
		{"no catch-all: the subtree's rule, for the admin", bare, "/admin", admin, 200, "/admin"},
		{"no catch-all: the public subtree", bare, "/public", "", 200, "/public"},
		{"no catch-all: dot-dot", bare, "/public/../admin", viewer, 403, ""},
		{"no catch-all: no route", bare, "/other", admin, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h []string
			if c.header != "" {
				h = append(h, c.header)
			}
			status, header, body, s := c.f.raw(rawRequest("GET", c.target, h...))
			if status != c.status || s.Path != c.path || header.Get("Location") != "" {
				t.Fatalf("GET %s: %d %v (Location %q, upstream path %q), want %d (%q)",
					c.target, status, body, header.Get("Location"), s.Path, c.status, c.path)
			}
		})
	}
}
