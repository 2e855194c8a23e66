package gateway_test

import (
	"fmt"
	"strings"
	"testing"
)

// CONNECT is refused unless a route names it: ServeMux neither cleans a
// CONNECT path nor redirects it, so "/public/../admin/x" would match a
// public rule and reach the upstream as written.
func TestGatewayRefusesConnectUnlessARouteNamesIt(t *testing.T) {
	t.Run("no CONNECT route", func(t *testing.T) {
		f := newFixture(t, "/public/ none\n/ token\n", false)
		for _, target := range []string{"/public/../admin/x", "/public/x", "example.com:443"} {
			status, _, body, _ := f.raw(rawRequest("CONNECT", target))
			if status != 400 || body["code"] != "bad_method" || !strings.Contains(fmt.Sprint(body["error"]), "CONNECT") {
				t.Errorf("CONNECT %s: %d %v, want 400 bad_method naming CONNECT", target, status, body)
			}
		}
		if n := f.upstream.Load(); n != 0 {
			t.Errorf("the upstream got %d CONNECT requests", n)
		}
	})
	t.Run("a CONNECT route", func(t *testing.T) {
		f := newFixture(t, "CONNECT /public/ none\nCONNECT /tunnel/ token\n/ token\n", false)
		for _, c := range []struct {
			target string
			status int
			code   string
		}{
			{"/tunnel/x", 401, "missing_api_key"},
			{"/public/../tunnel/x", 401, "missing_api_key"}, // matched as /tunnel/x
			{"example.com:443", 400, "bad_path"},            // not a path: no route can name it
		} {
			status, _, body, _ := f.raw(rawRequest("CONNECT", c.target))
			if status != c.status || body["code"] != c.code {
				t.Errorf("CONNECT %s: %d %v, want %d %s", c.target, status, body, c.status, c.code)
			}
		}
		if n := f.upstream.Load(); n != 0 {
			t.Errorf("the upstream got %d requests", n)
		}
	})
}

// Rules are matched on the cleaned path for every method, and the upstream
// receives that path: dot segments and doubled slashes cannot reach a path
// under another path's rule.
func TestGatewayMatchesTheCleanedPath(t *testing.T) {
	base := newFixture(t, "", false)
	f := newFixtureWith(t, base, fmt.Sprintf("/admin/ account:%d:admin\n/ none\n", base.tokend.AccountID))
	viewer := "Api-Token: " + f.tokend.Token(t, "viewer").Value
	admin := "Api-Token: " + f.tokend.Admin.Value
	for _, c := range []struct {
		name, method, target, header string
		status                       int
		path                         string // the upstream's, when it answers
	}{
		{"dot-dot into the admin tree", "GET", "/public/../admin/x", viewer, 403, ""},
		{"dot-dot, POST", "POST", "/public/../admin/x", viewer, 403, ""},
		{"dot-dot, DELETE", "DELETE", "/public/../admin/x", viewer, 403, ""},
		{"dot segment", "GET", "/admin/./x", viewer, 403, ""},
		{"doubled slash", "GET", "//admin/x", viewer, 403, ""},
		{"dot-dot by the admin", "GET", "/public/../admin/x", admin, 200, "/admin/x"},
		{"dot-dot out of the admin tree", "GET", "/admin/../public/x", "", 200, "/public/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h []string
			if c.header != "" {
				h = append(h, c.header)
			}
			if c.method != "GET" {
				h = append(h, "Content-Length: 0")
			}
			status, _, body, s := f.raw(rawRequest(c.method, c.target, h...))
			if status != c.status || s.Path != c.path {
				t.Fatalf("%s %s: %d %v (upstream path %q), want %d (%q)", c.method, c.target, status, body, s.Path, c.status, c.path)
			}
		})
	}
}

// A path the API behind could decode or trim into another path than the
// one matched is refused with 400 bad_path; what is merely unusual passes.
func TestGatewayRefusesPathsWithAmbiguousDecoding(t *testing.T) {
	base := newFixture(t, "", false)
	f := newFixtureWith(t, base, fmt.Sprintf("/admin/ account:%d:admin\nGET /admin account:%d:admin\n/ none\n", base.tokend.AccountID, base.tokend.AccountID))
	for _, c := range []struct {
		name, target string
		status       int
		path         string // the upstream's, when it answers
	}{
		{"double-encoded dots", "/%252e%252e/admin/x", 400, ""},
		{"double-encoded dots, lower case", "/x/%252E%252E/admin", 400, ""},
		{"double-encoded slash", "/admin%252fx", 400, ""},
		{"trailing dot on a segment", "/admin./x", 400, ""},
		{"trailing dots on a segment", "/admin../x", 400, ""},
		{"trailing dot on the last segment", "/admin.", 400, ""},
		{"trailing space on a segment", "/admin%20/x", 400, ""},
		{"trailing space on the last segment", "/admin%20", 400, ""},
		{"NUL", "/admin%00/x", 400, ""},
		{"control character", "/admin%09/x", 400, ""},
		{"raw backslash", `/public\..\admin\x`, 400, ""},
		{"encoded question mark", "/admin%3F/x", 400, ""},
		{"encoded hash", "/admin%23/x", 400, ""},
		{"overlong UTF-8 dots", "/%C0%AE%C0%AE/admin", 400, ""},
		{"invalid UTF-8", "/x%FF", 400, ""},
		{"an encoded percent", "/files/100%25", 200, "/files/100%"},
		{"an inner space", "/my%20file", 200, "/my file"},
		{"a dot inside a segment", "/v1/report.json", 200, "/v1/report.json"},
		{"UTF-8", "/caf%C3%A9", 200, "/café"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, body, s := f.raw(rawRequest("GET", c.target))
			if status != c.status || s.Path != c.path {
				t.Fatalf("GET %s: %d %v (upstream path %q), want %d (%q)", c.target, status, body, s.Path, c.status, c.path)
			}
			if status == 400 && body["code"] != "bad_path" {
				t.Fatalf("GET %s: %v, want code bad_path", c.target, body)
			}
		})
	}
}
