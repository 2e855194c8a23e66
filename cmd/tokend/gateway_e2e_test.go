package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// echoUpstream is an API that answers with the path and headers it got.
func echoUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "header": r.Header})
	}))
	t.Cleanup(up.Close)
	return up, &n
}

type echoed struct {
	Method string
	Path   string
	Header http.Header
}

// through sends a request with token (as Bearer, when set) and returns the
// status and what the upstream echoed.
func through(t *testing.T, method, url, token string, header http.Header) (int, echoed, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(`{"x":1}`))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e echoed
	b, _ := io.ReadAll(res.Body)
	json.Unmarshal(b, &e)
	return res.StatusCode, e, res.Header
}

// newToken creates a token over the API and returns its id and value.
func newToken(t *testing.T, base, admin, body string) (int64, string) {
	t.Helper()
	code, out := call(t, "POST", base+"/api/api_tokens", admin, body)
	if code != 200 {
		t.Fatalf("create token: %d %s", code, out)
	}
	var tok struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	json.Unmarshal([]byte(out), &tok)
	return tok.ID, tok.Token
}

const viewerToken = `{"name": "%s", "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 10}]}`

func TestProxyInFrontOfAnAPI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db, "--auth-failure-limit", "1000000")
	admin := s.WaitToken(t)
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "1000000", "--db", db); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	_, service := newToken(t, s.URL, admin, fmt.Sprintf(viewerToken, "gateway"))
	code, out := call(t, "POST", s.URL+"/api/accounts/1/projects", admin, `{"project": {"name": "Billing"}}`)
	if code != 200 {
		t.Fatalf("project: %d %s", code, out)
	}
	var project struct{ ID int64 }
	json.Unmarshal([]byte(out), &project)
	routes := filepath.Join(t.TempDir(), "routes")
	os.WriteFile(routes, []byte(fmt.Sprintf(`
GET /healthz                          none
GET /projects/{project_id}/reports    project:{project_id}:viewer
/                                     token
`)), 0o600)
	up, served := echoUpstream(t)
	gw := tokend.Start(t, []string{"TOKEND_TOKEN=" + service}, "proxy", "--addr", "127.0.0.1:0",
		"--upstream", up.URL, "--tokend", s.URL, "--routes", routes, "--auth-failure-limit", "1000000")

	userID, user := newToken(t, s.URL, admin, fmt.Sprintf(viewerToken, "user"))
	status, e, _ := through(t, "POST", gw.URL+"/v1/things", user, http.Header{"X-Tokend-Account-Id": {"7"}})
	if status != 200 || e.Method != "POST" || e.Path != "/v1/things" {
		t.Fatalf("a valid token: %d %+v", status, e)
	}
	if e.Header.Get("X-Tokend-Account-Id") != "1" || e.Header.Get("X-Tokend-Token-Id") != fmt.Sprint(userID) ||
		e.Header.Get("X-Tokend-Environment") != "live" || e.Header.Get("Authorization") != "" {
		t.Fatalf("the upstream got %v", e.Header)
	}
	if status, _, _ := through(t, "GET", gw.URL+"/healthz", "", nil); status != 200 {
		t.Fatalf("public route: %d", status)
	}
	before := served.Load()
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/v1/things", "", 401},
		{"/v1/things", "tk_live_nope", 401},
		{fmt.Sprintf("/projects/%d/reports", project.ID), user, 200}, // account viewer covers the project
		{"/projects/999/reports", user, 403},
	} {
		if status, _, _ := through(t, "GET", gw.URL+c.path, c.token, nil); status != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, status, c.status)
		}
	}
	if served.Load()-before != 1 {
		t.Errorf("the upstream served %d of the refused and allowed requests, want 1", served.Load()-before)
	}

	// Revocation: a token the gateway has verified is refused once it is
	// deleted on tokend, within 100 ms at p99 over 200 revocations.
	gatewayRevocation(t, "gateway revocation", s.URL, admin, gw.URL, 200)

	gw.Stop(t)
	if logs := gw.Stderr.String(); strings.Contains(logs, user) || strings.Contains(logs, service) {
		t.Error("a token value is in the gateway's logs")
	}
}

func TestProxyRefusesABadServiceToken(t *testing.T) {
	s := tokend.Serve(t, nil, "--db", filepath.Join(t.TempDir(), "tokend.db"))
	admin := s.WaitToken(t)
	code, out := call(t, "POST", s.URL+"/api/accounts/1/projects", admin, `{"project": {"name": "P"}}`)
	if code != 200 {
		t.Fatal(out)
	}
	var p struct{ ID int64 }
	json.Unmarshal([]byte(out), &p)
	_, projectOnly := newToken(t, s.URL, admin, fmt.Sprintf(`{"name": "p", "resources": [{"resource_type": "project", "resource_id": %d, "access_level": 100}]}`, p.ID))
	_, testKey := newToken(t, s.URL, admin, `{"name": "staging", "environment": "test", "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 100}]}`)
	for _, c := range []struct {
		name, token, want string
	}{
		{"no token", "", "TOKEND_TOKEN"},
		{"unknown token", "tk_live_nope", "401"},
		{"not viewer on the account", projectOnly, "403"},
		{"a test key", testKey, "403 environment_not_allowed: A test key is never a service token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := tokend.Run(t, []string{"TOKEND_TOKEN=" + c.token}, "proxy", "--addr", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--tokend", s.URL)
			if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want a failure mentioning %q", r.Code, r.Stderr, c.want)
			}
		})
	}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNginx runs Debian's nginx with site (server and upstream blocks) in
// its http block, on loopback, until the test ends.
func startNginx(t *testing.T, site string, listen string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx is not installed (./scripts/test installs Debian's nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o600)
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir)
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600)
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %s %s", listen, stderr.String(), b)
		}
	}
}

// documentedNginx runs nginx with the documented configuration
// (deploy/nginx-auth-request.conf) in front of the API at upstream, asking
// the tokend at tokendURL, and returns its base URL.
func documentedNginx(t *testing.T, tokendURL, upstream string) string {
	t.Helper()
	listen := freeAddr(t)
	doc, err := os.ReadFile("../../deploy/nginx-auth-request.conf")
	if err != nil {
		t.Fatal(err)
	}
	site := strings.NewReplacer("127.0.0.1:8080", strings.TrimPrefix(tokendURL, "http://"),
		"127.0.0.1:9000", strings.TrimPrefix(upstream, "http://"), "127.0.0.1:8000", listen).Replace(string(doc))
	startNginx(t, site, listen)
	return "http://" + listen
}

// The nginx configuration the README documents (deploy/nginx-auth-request.conf)
// lets valid tokens through with their identity, refuses the rest with
// tokend's status, and keeps the credential from the API behind.
func TestNginxAuthRequestWithTheDocumentedConfig(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db, "--trusted-proxies", "127.0.0.1")
	admin := s.WaitToken(t)
	up, served := echoUpstream(t)
	base := documentedNginx(t, s.URL, up.URL)

	id, user := newToken(t, s.URL, admin, fmt.Sprintf(viewerToken, "user"))
	for _, method := range []string{"GET", "POST", "DELETE"} {
		status, e, _ := through(t, method, base+"/v1/things", user, http.Header{"X-Tokend-Token-Id": {"999"}})
		if status != 200 || e.Method != method || e.Header.Get("X-Tokend-Token-Id") != fmt.Sprint(id) ||
			e.Header.Get("X-Tokend-Account-Id") != "1" || e.Header.Get("X-Tokend-Environment") != "live" ||
			e.Header.Get("Authorization") != "" {
			t.Fatalf("%s with a valid token: %d %+v", method, status, e)
		}
	}
	if status, e, _ := through(t, "GET", base+"/v1/things", "", http.Header{"Api-Token": {user}}); status != 200 || e.Header.Get("Api-Token") != "" {
		t.Fatalf("Api-Token: %d %+v", status, e)
	}
	r := tokend.Run(t, nil, "account", "create", "--name", "Other", "--db", db, "--json")
	var other struct {
		APIToken struct{ Token string } `json:"api_token"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &other); err != nil || other.APIToken.Token == "" {
		t.Fatalf("account create: %+v", r)
	}
	before := served.Load()
	for _, c := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", 401},
		{"unknown token", "tk_live_unknown", 401},
		{"another account's token", other.APIToken.Token, 401}, // as an unknown one
	} {
		if status, _, _ := through(t, "GET", base+"/v1/things", c.token, nil); status != c.status {
			t.Errorf("%s: %d, want %d", c.name, status, c.status)
		}
	}
	if served.Load() != before {
		t.Error("a refused request reached the API")
	}
	// The plan limit: tokend's 429 reaches the client as 429 with Retry-After.
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "free", "--db", db); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	var last int
	var header http.Header
	for range 150 {
		if last, _, header = through(t, "GET", base+"/v1/things", user, nil); last == 429 {
			break
		}
	}
	if last != 429 || header.Get("Retry-After") == "" {
		t.Fatalf("after 150 requests on the free plan: %d %v", last, header)
	}
}

// With several instances on PostgreSQL, a token deleted through instance A
// is refused by a gateway that follows instance B within 100 ms at p99: B's
// change feed brings the deletion, its change stream tells the gateway.
func TestProxyRevocationAcrossInstances(t *testing.T) {
	url := testutil.Postgres(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	args := []string{"--db", url, "--secrets-key-file", key, "--auth-failure-limit", "1000000"}
	a := tokend.Serve(t, nil, args...)
	admin := a.WaitToken(t)
	b := tokend.Serve(t, nil, args...)
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "1000000", "--db", url); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	_, service := newToken(t, a.URL, admin, fmt.Sprintf(viewerToken, "gateway"))
	up, _ := echoUpstream(t)
	gw := tokend.Start(t, []string{"TOKEND_TOKEN=" + service}, "proxy", "--addr", "127.0.0.1:0",
		"--upstream", up.URL, "--tokend", b.URL, "--auth-failure-limit", "1000000")
	gatewayRevocation(t, "gateway on instance B, deletions on A", a.URL, admin, gw.URL, 200)
}

// gatewayRevocation times how long the gateway at gwURL keeps passing a
// token deleted through the tokend at tokendURL: each of rounds tokens is
// created, seen to pass (the gateway learns of it on first sight), deleted,
// and polled every millisecond until it is refused. It fails when p99 is
// over 100 ms.
func gatewayRevocation(t *testing.T, what, tokendURL, admin, gwURL string, rounds int) {
	t.Helper()
	var lat []time.Duration
	until := func(tok string, status int, failure string) time.Duration {
		start := time.Now()
		for {
			if got, _, _ := through(t, "GET", gwURL+"/v1/x", tok, nil); got == status {
				return time.Since(start)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatal(failure)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range rounds {
		id, tok := newToken(t, tokendURL, admin, fmt.Sprintf(viewerToken, "doomed"))
		until(tok, 200, "the gateway does not pass a new token within 5 s")
		if code, _ := call(t, "DELETE", fmt.Sprintf("%s/api/api_tokens/%d", tokendURL, id), admin, ""); code != 204 {
			t.Fatalf("delete: %d", code)
		}
		lat = append(lat, until(tok, 401, "the gateway still lets a deleted token through after 5 s"))
	}
	slices.Sort(lat)
	p50, p99 := lat[rounds/2], lat[rounds*99/100]
	t.Logf("%s, %d deletions: p50 %v, p99 %v, max %v", what, rounds, p50, p99, lat[rounds-1])
	if p99 > 100*time.Millisecond {
		t.Errorf("p99 %v, want under 100 ms", p99)
	}
}
