package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokend/tokend"
)

// Every response, answered by any route or none, carries a request ID and
// nosniff; a client's own short, printable X-Request-Id is echoed and logged.
func TestEveryResponseCarriesRequestIDAndNoSniff(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", 129)
	tests := []struct {
		name   string
		req    request
		sent   string
		echoed bool
	}{
		{"authenticated", request{method: "GET", path: "/api/whoami", token: e.admin}, "", false},
		{"unauthenticated 401", request{method: "GET", path: "/api/whoami"}, "", false},
		{"unknown route", request{method: "GET", path: "/nowhere"}, "", false},
		{"health", request{method: "GET", path: "/healthz"}, "", false},
		{"client id echoed", request{method: "GET", path: "/api/whoami", token: e.admin}, "req-42.abc:7", true},
		{"too long replaced", request{method: "GET", path: "/api/whoami", token: e.admin}, long, false},
		{"unprintable replaced", request{method: "GET", path: "/api/whoami", token: e.admin}, "a b", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			req := tt.req
			if tt.sent != "" {
				req.header = http.Header{"X-Request-Id": {tt.sent}}
			}
			r := e.send(req)
			id := r.Header.Get("X-Request-Id")
			switch {
			case id == "":
				t.Fatal("no X-Request-Id")
			case tt.echoed && id != tt.sent:
				t.Errorf("X-Request-Id = %q, want the client's %q", id, tt.sent)
			case !tt.echoed && (id == tt.sent || seen[id] || len(id) > 128):
				t.Errorf("X-Request-Id = %q, want a fresh one", id)
			}
			seen[id] = true
			if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if !strings.Contains(e.logs.String(), `"request_id":"`+id+`"`) {
				t.Errorf("the access log has no line with request_id %q", id)
			}
		})
	}
}

// Responses that contain a token value must never be stored by a cache.
func TestTokenValuesAreNeverCached(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "c", perm("account", e.acme, 10))
	tests := []struct {
		name string
		r    func() *response
	}{
		{"create", func() *response {
			return e.post("/api/api_tokens", e.admin, map[string]any{"name": "n", "resources": []any{perm("account", e.acme, 10)}}).want(200)
		}},
		{"reset", func() *response { return e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, nil).want(200) }},
		{"domain create", func() *response {
			return e.post(e.path("/api/accounts/%d/sending_domains", e.acme), e.admin,
				map[string]any{"sending_domain": map[string]any{"domain_name": "cache.example.com"}}).want(200)
		}},
		{"list", func() *response { return e.get("/api/api_tokens", e.admin).want(200) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r()
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if !strings.Contains(string(r.Body), `"token":"tk_`) && tt.name != "list" {
				t.Errorf("the response holds no token value: %s", r.Body)
			}
		})
	}
}

// Under TLS every response carries HSTS; over plain HTTP none does (a browser
// would ignore it, and it would be wrong on a loopback development server).
func TestHSTSOnlyUnderTLS(t *testing.T) {
	e := newEnv(t)
	if got := e.get("/healthz", "").Header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("plain HTTP answered with HSTS %q", got)
	}
	srv := httptest.NewTLSServer(e.app.Handler)
	defer srv.Close()
	for _, path := range []string{"/healthz", "/api/whoami", "/nowhere"} {
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
			t.Errorf("%s over TLS: Strict-Transport-Security = %q", path, got)
		}
	}
}

// Methods and paths are client input: metric labels and log fields must come
// from a fixed set, or a stream of unique methods grows memory without bound.
func TestMetricLabelsAndLogsAreBounded(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 50; i++ {
		method := fmt.Sprintf("X%dY%s", i, strings.Repeat("M", 2000))
		req, err := http.NewRequest(method, e.srv.URL+"/api/whoami/"+strings.Repeat("p", 3000), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Api-Token", e.admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 404 && res.StatusCode != 405 {
			t.Fatalf("odd method answered %d", res.StatusCode)
		}
	}
	metrics := string(e.get("/metrics", "").want(200).Body)
	if strings.Contains(metrics, "MMMM") || strings.Contains(metrics, "pppp") {
		t.Error("a client's method or path became a metric label")
	}
	if !strings.Contains(metrics, `tokend_http_requests_total{method="other",route="unmatched",status="404"} 50`) {
		t.Errorf("unknown methods are not counted in one bucket:\n%s", grep(metrics, "tokend_http_requests_total"))
	}
	if len(metrics) > 64<<10 {
		t.Errorf("/metrics is %d bytes after 50 odd requests", len(metrics))
	}
	logs := e.logs.String()
	if strings.Contains(logs, "MMMM") || strings.Contains(logs, strings.Repeat("p", 300)) {
		t.Error("the log copies a client's method or path unbounded")
	}
}

// An error the client is not told about is logged with the request's ID, so
// support can find it from the X-Request-Id the client saw.
func TestLoggedErrorsCarryTheRequestID(t *testing.T) {
	broken := &brokenReads{}
	e := newEnv(t, withStore(func(s tokend.Store) tokend.Store { broken.Store = s; return broken }))
	broken.failing.Store(true) // once started: a store that fails at start stops tokend starting
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/api_tokens", nil)
	req.Header.Set("Api-Token", e.admin)
	req.Header.Set("X-Request-Id", "support-case-17")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 500 || res.Header.Get("X-Request-Id") != "support-case-17" {
		t.Fatalf("status %d, X-Request-Id %q", res.StatusCode, res.Header.Get("X-Request-Id"))
	}
	found := false
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request failed"`) && strings.Contains(line, `"request_id":"support-case-17"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no error log line with the request ID:\n%s", e.logs.String())
	}
}

// brokenReads is a store whose read transactions fail once failing is set,
// as a lost disk would.
type brokenReads struct {
	tokend.Store
	failing atomic.Bool
}

func (b *brokenReads) Read(ctx context.Context, fn func(tokend.Tx) error) error {
	if b.failing.Load() {
		return errors.New("disk I/O error")
	}
	return b.Store.Read(ctx, fn)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
