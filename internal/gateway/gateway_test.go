package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/gateway"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/middleware"
)

// seen is what the upstream received.
type seen struct {
	Path   string
	Header http.Header
}

type fixture struct {
	t        *testing.T
	tokend   *testutil.TokendServer
	gw       *httptest.Server
	upstream atomic.Int64 // requests the upstream served
}

// setup is what a fixture's gateway is built with beyond its routes.
type setup struct {
	forward  bool
	upstream http.Handler           // default: echoes what it received as a seen
	options  func(*gateway.Options) // adjusts the options before New
	http2    bool                   // serve HTTP/2 over TLS
}

func newFixture(t *testing.T, routes string, forward bool) *fixture {
	t.Helper()
	return newFixtureSetup(t, nil, routes, setup{forward: forward})
}

// newFixtureSetup is a gateway in front of an upstream, with routes (none:
// every request needs a token), and a tokend: f's, or a new one when f is nil.
func newFixtureSetup(t *testing.T, f *fixture, routes string, s setup) *fixture {
	t.Helper()
	g := &fixture{t: t}
	if f != nil {
		g.tokend = f.tokend
	} else {
		g.tokend = testutil.Tokend(t, testutil.TokendOptions{})
	}
	h := s.upstream
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(seen{Path: r.URL.Path, Header: r.Header})
		})
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.upstream.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	c, err := client.New(g.tokend.URL, g.tokend.Token(t, "gateway").Value)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := middleware.New(c, middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { auth.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	opts := gateway.Options{Upstream: mustURL(t, up.URL), Auth: auth, ForwardCredentials: s.forward}
	if routes != "" {
		if opts.Routes, err = gateway.ParseRoutes(strings.NewReader(routes)); err != nil {
			t.Fatal(err)
		}
	}
	if s.options != nil {
		s.options(&opts)
	}
	gh, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	g.gw = httptest.NewUnstartedServer(gh)
	if s.http2 {
		g.gw.EnableHTTP2 = true
		g.gw.StartTLS()
	} else {
		g.gw.Start()
	}
	t.Cleanup(g.gw.Close)
	return g
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) do(method, path string, header http.Header) (int, seen, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.gw.URL+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(res.Body).Decode(&raw)
	var s seen
	var body map[string]any
	json.Unmarshal(raw, &s)
	json.Unmarshal(raw, &body)
	return res.StatusCode, s, body
}

func TestGatewayWithoutRoutesNeedsAValidToken(t *testing.T) {
	f := newFixture(t, "", false)
	tok := f.tokend.Token(t, "user")
	status, s, _ := f.do("GET", "/v1/anything?x=1", http.Header{
		"Authorization":       {"Bearer " + tok.Value},
		"X-Tokend-Account-Id": {"999"}, // spoofed
		"X-Tokend-Token-Id":   {"999"},
	})
	if status != 200 || s.Path != "/v1/anything" {
		t.Fatalf("%d %+v", status, s)
	}
	want := map[string]string{"X-Tokend-Account-Id": fmt.Sprint(f.tokend.AccountID), "X-Tokend-Token-Id": fmt.Sprint(tok.ID), "X-Tokend-Environment": "live"}
	for k, v := range want {
		if got := s.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("upstream got %s %q, want %q", k, got, v)
		}
	}
	if s.Header.Get("Authorization") != "" || s.Header.Get("Api-Token") != "" {
		t.Errorf("the credential reached the upstream: %v", s.Header)
	}
	if s.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", s.Header.Get("X-Forwarded-For"))
	}
	before := f.upstream.Load()
	for _, h := range []http.Header{nil, {"Api-Token": {"tk_live_nope"}}, {"Authorization": {"Bearer " + f.tokend.Token(t, "x").Value + "x"}}} {
		if status, _, body := f.do("GET", "/v1/anything", h); status != 401 || body["code"] == "" {
			t.Errorf("%v: %d %v", h, status, body)
		}
	}
	if f.upstream.Load() != before {
		t.Error("a refused request reached the upstream")
	}
}

func TestGatewayRoutes(t *testing.T) {
	f := newFixture(t, "", false)
	ctx := context.Background()
	p, err := f.tokend.Svc.CreateProject(ctx, &f.tokend.Admin.Token, "Billing")
	if err != nil {
		t.Fatal(err)
	}
	routes := fmt.Sprintf(`
# public
GET /healthz                       none
GET /v1/projects/{id}/reports      project:{id}:viewer   # from the path
POST /v1/projects/%d/reports       project:%d:admin
GET /v1/me                         token
`, p.ID, p.ID)
	f = newFixtureWith(t, f, routes)
	viewer := f.tokend.Token(t, "viewer", tokend.Permission{ResourceType: tokend.ResourceProject, ResourceID: p.ID, Level: tokend.Viewer})
	admin := f.tokend.Admin.Value
	bearer := func(v string) http.Header { return http.Header{"Authorization": {"Bearer " + v}} }
	cases := []struct {
		name, method, path string
		header             http.Header
		status             int
	}{
		{"public without a token", "GET", "/healthz", nil, 200},
		{"public strips spoofed identity", "GET", "/healthz", http.Header{"X-Tokend-Token-Id": {"1"}}, 200},
		{"path permission held", "GET", fmt.Sprintf("/v1/projects/%d/reports", p.ID), bearer(viewer.Value), 200},
		{"path permission on another project", "GET", "/v1/projects/424242/reports", bearer(viewer.Value), 403},
		{"path value not an id", "GET", "/v1/projects/abc/reports", bearer(viewer.Value), 403},
		{"path permission without a token", "GET", fmt.Sprintf("/v1/projects/%d/reports", p.ID), nil, 401},
		{"admin route for a viewer", "POST", fmt.Sprintf("/v1/projects/%d/reports", p.ID), bearer(viewer.Value), 403},
		{"admin route for the account admin", "POST", fmt.Sprintf("/v1/projects/%d/reports", p.ID), bearer(admin), 200},
		{"any token", "GET", "/v1/me", bearer(viewer.Value), 200},
		{"unrouted path", "GET", "/v2/other", bearer(admin), 404},
		{"unrouted method", "DELETE", "/v1/me", bearer(admin), 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, s, body := f.do(c.method, c.path, c.header)
			if status != c.status {
				t.Fatalf("%d %v, want %d", status, body, c.status)
			}
			if status == 200 && c.header == nil && s.Header.Get("X-Tokend-Token-Id") != "" {
				t.Fatalf("a public route passed identity headers: %v", s.Header)
			}
		})
	}
}

// newFixtureWith is a gateway with routes in front of f's tokend.
func newFixtureWith(t *testing.T, f *fixture, routes string) *fixture {
	t.Helper()
	return newFixtureSetup(t, f, routes, setup{})
}

func TestGatewayForwardsCredentialsOnlyWhenAsked(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprint("forward=", forward), func(t *testing.T) {
			f := newFixture(t, "", forward)
			tok := f.tokend.Token(t, "user")
			_, s, _ := f.do("GET", "/", http.Header{"Api-Token": {tok.Value}, "Authorization": {"Basic dXNlcjpwYXNz"}})
			if got := s.Header.Get("Api-Token") != ""; got != forward {
				t.Errorf("Api-Token forwarded: %v", got)
			}
			if s.Header.Get("Authorization") != "Basic dXNlcjpwYXNz" {
				t.Errorf("the upstream's own Authorization was dropped: %v", s.Header)
			}
		})
	}
}

func TestGatewayUpstreamDown(t *testing.T) {
	tk := testutil.Tokend(t, testutil.TokendOptions{})
	c, _ := client.New(tk.URL, tk.Token(t, "gateway").Value)
	auth, _ := middleware.New(c, middleware.Options{})
	h, err := gateway.New(gateway.Options{Upstream: mustURL(t, "http://127.0.0.1:1"), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Api-Token", tk.Admin.Value)
	h.ServeHTTP(rec, req)
	if rec.Code != 502 || !strings.Contains(rec.Body.String(), "upstream_unavailable") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestParseRoutesErrors(t *testing.T) {
	for _, c := range []struct {
		name, routes, want string
	}{
		{"empty", "# nothing\n\n", "no routes"},
		{"no rule", "GET /x\n", "line 1"},
		{"bad permission", "GET /x  project:abc:viewer\n", "line 1"},
		{"bad level", "\nGET /x  project:3:owner\n", "line 2"},
		{"unknown wildcard", "GET /p/{id}  project:{pid}:viewer\n", "no wildcard {pid}"},
		{"none with permissions", "GET /x  none project:3:viewer\n", "cannot be combined"},
		{"lower-case method", "get /x  token\n", "upper case"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gateway.ParseRoutes(strings.NewReader(c.routes))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
	t.Run("conflicting patterns", func(t *testing.T) {
		rs, err := gateway.ParseRoutes(strings.NewReader("GET /x token\nGET /x none\n"))
		if err != nil {
			t.Fatal(err)
		}
		tk := testutil.Tokend(t, testutil.TokendOptions{})
		c, _ := client.New(tk.URL, tk.Admin.Value)
		auth, _ := middleware.New(c, middleware.Options{})
		if _, err := gateway.New(gateway.Options{Upstream: mustURL(t, "http://127.0.0.1:1"), Auth: auth, Routes: rs}); err == nil ||
			!strings.Contains(err.Error(), "line 2") {
			t.Fatalf("error %v, want one naming line 2", err)
		}
	})
}

// The API behind may route a path differently than Go's patterns: in any
// case, with or without its trailing slash, with encoded separators decoded.
// None of that may reach a route with a weaker rule than its own.
func TestGatewayPathsCannotDodgeTheirRule(t *testing.T) {
	base := newFixture(t, "", false)
	ctx := context.Background()
	p, err := base.tokend.Svc.CreateProject(ctx, &base.tokend.Admin.Token, "Secret")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, base, fmt.Sprintf(`
GET /v1/projects/{id}/reports   project:{id}:admin
GET /admin                      account:%d:admin
/                               none
`, base.tokend.AccountID))
	viewer := f.tokend.Token(t, "viewer") // account viewer: not admin anywhere
	bearer := http.Header{"Authorization": {"Bearer " + viewer.Value}}
	for _, c := range []struct {
		name, path string
		status     int
	}{
		{"the route itself", fmt.Sprintf("/v1/projects/%d/reports", p.ID), 403},
		{"upper case", fmt.Sprintf("/V1/Projects/%d/REPORTS", p.ID), 403},
		{"trailing slash", fmt.Sprintf("/v1/projects/%d/reports/", p.ID), 403},
		{"exact route with a slash", "/admin/", 403},
		{"exact route in upper case", "/ADMIN", 403},
		{"encoded slash", fmt.Sprintf("/v1/projects%%2F%d/reports", p.ID), 400},
		{"encoded slash, lower case", fmt.Sprintf("/v1/projects%%2f%d/reports", p.ID), 400},
		{"encoded dot", "/v1/%2e%2e/admin", 400},
		{"encoded backslash", "/v1%5Cadmin", 400},
		{"public", "/about", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, _, body := f.do("GET", c.path, bearer); status != c.status {
				t.Fatalf("GET %s: %d %v, want %d", c.path, status, body, c.status)
			}
		})
	}
	// What is not special passes, and the upstream sees the path as matched.
	status, s, _ := f.do("GET", "/v1/%61bout", nil)
	if status != 200 || s.Path != "/v1/about" {
		t.Fatalf("%d %+v", status, s)
	}
}

func TestGatewayDropsLookalikeIdentityHeaders(t *testing.T) {
	f := newFixture(t, "GET /public none\n/ token\n", false)
	tok := f.tokend.Token(t, "user")
	spoof := http.Header{"X-Tokend_account-Id": {"999"}, "X-TOKEND-TOKEN-ID": {"999"}, "X_Tokend_Environment": {"live"}}
	for _, c := range []struct {
		path   string
		header http.Header
	}{{"/public", spoof}, {"/private", func() http.Header {
		h := spoof.Clone()
		h.Set("Api-Token", tok.Value)
		return h
	}()}} {
		status, s, _ := f.do("GET", c.path, c.header)
		if status != 200 {
			t.Fatalf("%s: %d", c.path, status)
		}
		for k, v := range s.Header {
			if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(k), "_", "-"), "x-tokend-") && slicesContain(v, "999") {
				t.Errorf("%s: the upstream got the client's %s: %v", c.path, k, v)
			}
		}
	}
}

func slicesContain(vs []string, want string) bool {
	for _, v := range vs {
		if v == want {
			return true
		}
	}
	return false
}

// Requests the API behind could read differently than the routes are refused.
func TestGatewayRefusesAmbiguousRequests(t *testing.T) {
	f := newFixture(t, "POST /v1/reports account:1:admin\n/public/ none\n/ token\n", false)
	viewer := http.Header{"Api-Token": {f.tokend.Token(t, "viewer").Value}}
	for _, c := range []struct {
		name, method, path string
		status             int
	}{
		{"lower-case method", "post", "/v1/reports", 400},
		{"mixed-case method", "Post", "/v1/reports", 400},
		{"the route itself", "POST", "/v1/reports", 403},
		{"path parameter", "GET", "/public/..;/v1/reports", 400},
		{"path parameter on a segment", "POST", "/v1/reports;x", 400},
		{"encoded semicolon", "POST", "/v1/reports%3Bx", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, _, body := f.do(c.method, c.path, viewer); status != c.status {
				t.Fatalf("%s %s: %d %v, want %d", c.method, c.path, status, body, c.status)
			}
		})
	}
}

func TestGatewayRemovesUpgradesUnlessAllowed(t *testing.T) {
	f := newFixture(t, "", false)
	tok := f.tokend.Token(t, "user")
	status, s, _ := f.do("GET", "/ws", http.Header{"Api-Token": {tok.Value}, "Connection": {"Upgrade, X-Hop"},
		"Upgrade": {"websocket"}, "X-Hop": {"1"}})
	if status != 200 || s.Header.Get("Upgrade") != "" || s.Header.Get("X-Hop") != "" {
		t.Fatalf("%d: the upstream got %v", status, s.Header)
	}
}

func TestParseRoutesRefusesHosts(t *testing.T) {
	if _, err := gateway.ParseRoutes(strings.NewReader("GET api.example/admin token\n")); err == nil || !strings.Contains(err.Error(), "hosts are not matched") {
		t.Fatalf("error %v", err)
	}
}

// With AllowUpgrades, an authenticated upgrade reaches the upstream and
// the connection carries both ways.
func TestGatewayPassesUpgradesWhenAllowed(t *testing.T) {
	tk := testutil.Tokend(t, testutil.TokendOptions{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("X-Tokend-Account-Id") == "" {
			http.Error(w, "not an authenticated upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	}))
	t.Cleanup(up.Close)
	c, _ := client.New(tk.URL, tk.Token(t, "gateway").Value)
	auth, _ := middleware.New(c, middleware.Options{})
	h, err := gateway.New(gateway.Options{Upstream: mustURL(t, up.URL), Auth: auth, AllowUpgrades: true})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(h)
	t.Cleanup(gw.Close)
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nApi-Token: %s\r\n\r\n", tk.Token(t, "user").Value)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	fmt.Fprintf(conn, "hello\n")
	if got, _ := br.ReadString('\n'); got != "echo hello\n" {
		t.Fatalf("through the upgraded connection: %q", got)
	}
}

// The upstream learns the client's address from X-Forwarded-For: the
// client's own is replaced by its address, unless it comes through a
// trusted proxy, whose chain goes on with the proxy appended.
func TestGatewayForwardedFor(t *testing.T) {
	base := newFixture(t, "", false)
	for _, c := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"a client", nil, "127.0.0.1"},
		{"a client through a trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "6.6.6.6, 127.0.0.1"},
		{"an untrusted proxy", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureSetup(t, base, "/ none\n", setup{options: func(o *gateway.Options) { o.TrustedProxies = c.trusted }})
			status, s, _ := f.do("GET", "/x", http.Header{"X-Forwarded-For": {"6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"}})
			if status != 200 || s.Header.Get("X-Forwarded-For") != c.want || s.Header.Get("X-Real-Ip") != "" {
				t.Fatalf("%d, the upstream got %v, want X-Forwarded-For %q", status, s.Header, c.want)
			}
		})
	}
}
