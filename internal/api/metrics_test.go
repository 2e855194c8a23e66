package api_test

import (
	"strings"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 3), withConfig(func(c *app.Config) { c.AuthFailureLimit = 2 }))
	e.get("/api/api_tokens", e.admin).want(200)
	e.get("/api/api_tokens/424242", e.admin).want(404)
	e.get("/api/api_tokens", e.admin).want(200)
	e.get("/api/api_tokens", e.admin).want(429)
	e.send(request{method: "GET", path: "/api/api_tokens", token: "tk_live_nonsense", from: "127.0.0.5"}).want(401)
	e.send(request{method: "GET", path: "/api/api_tokens", token: "tk_live_nonsense", from: "127.0.0.5"}).want(401)
	e.send(request{method: "GET", path: "/api/api_tokens", token: "tk_live_nonsense", from: "127.0.0.5"}).want(429)
	e.get("/api/api_tokens", "").want(401)

	r := e.get("/metrics", "").want(200)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	body := string(r.Body)
	for _, want := range []string{
		`tokend_http_requests_total{method="GET",route="GET /api/api_tokens",status="200"} 2`,
		`tokend_http_requests_total{method="GET",route="GET /api/api_tokens/{id}",status="404"} 1`,
		`tokend_http_requests_total{method="GET",route="GET /api/api_tokens",status="429"} 2`,
		`tokend_auth_attempts_total{outcome="ok"} 4`,
		`tokend_auth_attempts_total{outcome="invalid"} 2`,
		`tokend_auth_attempts_total{outcome="throttled"} 1`,
		`tokend_auth_attempts_total{outcome="missing"} 1`,
		`tokend_rate_limited_total{scope="account"} 1`,
		`tokend_rate_limited_total{scope="address"} 1`,
		`tokend_http_request_duration_seconds_bucket{route="GET /api/api_tokens",le="+Inf"} 7`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, e.admin[8:]) {
		t.Error("metrics hold a token value")
	}
}

// Every request gets one JSON access-log line with the route pattern and the
// token's id, never the token.
func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "logged", perm("account", e.acme, 10))
	e.get(e.path("/api/api_tokens/%d", tok.ID), tok.Token).want(200)
	logs := e.logs.String()
	want := `"method":"GET","route":"GET /api/api_tokens/{id}","status":200`
	if !strings.Contains(logs, want) || !strings.Contains(logs, `"token_id":`) || !strings.Contains(logs, `"remote":"127.0.0.1"`) {
		t.Fatalf("access log lacks %s with token_id and remote:\n%s", want, logs)
	}
}
