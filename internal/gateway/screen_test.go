package gateway_test

import (
	"encoding/base64"
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

// normalized is a header name as CGI-style servers read it: any case,
// "_" for "-".
func normalized(k string) string { return strings.ReplaceAll(strings.ToLower(k), "_", "-") }

// The upstream gets no header tokend does not set that it could read as a
// credential of tokend's or as the client's address; the upstream's own
// credentials pass.
func TestGatewayDropsCredentialAndAddressLookalikes(t *testing.T) {
	base := newFixture(t, "", false)
	tok := base.tokend.Token(t, "user").Value
	other := base.tokend.Token(t, "other").Value
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	cases := []struct {
		name, header string
		kept         bool
	}{
		{"Api-Token with an underscore", "Api_Token: " + other, false},
		{"Api-Token in capitals with an underscore", "API_TOKEN: " + other, false},
		{"Authorization of another scheme with a token", "Authorization: Token " + other, false},
		{"Authorization Basic with a token as password", "Authorization: " + basic("x", other), false},
		{"Proxy-Authorization with an underscore", "Proxy_Authorization: Bearer " + other, false},
		{"another header carrying a token", "X-Api-Key: " + other, false},
		{"a cookie carrying a token", "Cookie: session=" + other, false},
		{"X-Real-IP", "X-Real-IP: 6.6.6.6", false},
		{"True-Client-IP", "True-Client-IP: 6.6.6.6", false},
		{"X-Client-IP", "X-Client-IP: 6.6.6.6", false},
		{"CF-Connecting-IP", "CF-Connecting-IP: 6.6.6.6", false},
		{"Fastly-Client-IP", "Fastly-Client-IP: 6.6.6.6", false},
		{"X-Cluster-Client-IP", "X-Cluster-Client-IP: 6.6.6.6", false},
		{"X-Remote-Addr", "X-Remote-Addr: 6.6.6.6", false},
		{"X-Original-Forwarded-For", "X-Original-Forwarded-For: 6.6.6.6", false},
		{"X-Forwarded-For with underscores", "X_Forwarded_For: 6.6.6.6", false},
		{"Forwarded with an underscore name", "X_Forwarded: for=6.6.6.6", false},
		{"X-Forwarded-Port", "X-Forwarded-Port: 6666", false},
		{"X-Request-Id with underscores", "X_Request_Id: forged", false},
		{"identity header with underscores", "X_Tokend_Account_Id: 999", false},
		{"X-Original-URL", "X-Original-URL: /admin", false},
		{"X-Rewrite-URL with underscores", "X_Rewrite_URL: /admin", false},
		{"the upstream's Basic", "Authorization: Basic dXNlcjpwYXNz", true},
		{"the upstream's own scheme", "Authorization: Token upstream-secret", true},
		{"the upstream's own key", "X-Api-Key: upstream-key", true},
		{"an ordinary header", "X-Custom: 6.6.6.6", true},
	}
	for _, forward := range []bool{false, true} {
		f := newFixtureSetup(t, base, "GET /public none\n/ token\n", setup{forward: forward})
		for _, route := range []struct{ path, auth string }{{"/public", ""}, {"/private", "Api-Token: " + tok}} {
			for _, c := range cases {
				t.Run(fmt.Sprintf("forward=%v%s/%s", forward, route.path, c.name), func(t *testing.T) {
					name, value, _ := strings.Cut(c.header, ": ")
					h := []string{c.header}
					if route.auth != "" {
						h = append(h, route.auth)
					}
					status, _, body, s := f.raw(rawRequest("GET", route.path, h...))
					if status != 200 {
						t.Fatalf("%d %v", status, body)
					}
					got := false
					for k, vs := range s.Header {
						for _, v := range vs {
							if normalized(k) == normalized(name) && v == value {
								got = true
							}
							if strings.Contains(v, other) {
								t.Errorf("the upstream got the unverified token in %s", k)
							}
							if v == "6.6.6.6" && normalized(k) != "x-custom" || strings.Contains(v, "6.6.6.6") && normalized(k) == "x-forwarded-for" {
								t.Errorf("the upstream got the client's address claim in %s: %q", k, v)
							}
						}
					}
					if got != c.kept {
						t.Errorf("%s reached the upstream: %v, want %v (upstream headers %v)", name, got, c.kept, s.Header)
					}
				})
			}
		}
	}
}

// A method override is refused: frameworks run the method it names, not
// the one the routes matched.
func TestGatewayRefusesMethodOverrides(t *testing.T) {
	base := newFixture(t, "", false)
	f := newFixtureWith(t, base, fmt.Sprintf("DELETE /items/{id} account:%d:admin\n/ token\n", base.tokend.AccountID))
	viewer := "Api-Token: " + f.tokend.Token(t, "viewer").Value
	for _, c := range []struct {
		name, override string
		status         int
	}{
		{"X-HTTP-Method-Override", "X-HTTP-Method-Override: DELETE", 400},
		{"X-HTTP-Method", "X-HTTP-Method: DELETE", 400},
		{"X-Method-Override with underscores", "X_Method_Override: DELETE", 400},
		{"none", "X-Other: DELETE", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, body, _ := f.raw(rawRequest("POST", "/items/1", viewer, "Content-Length: 0", c.override))
			if status != c.status || status == 400 && body["code"] != "bad_method" {
				t.Fatalf("%d %v, want %d", status, body, c.status)
			}
		})
	}
}
