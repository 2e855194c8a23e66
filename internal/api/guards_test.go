package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/app"
)

// guardedEnv trusts 127.0.0.1 as a proxy, so that a test chooses a
// request's client address with X-Forwarded-For, and has a verified
// sending domain.
func guardedEnv(t *testing.T, failureLimit int) *env {
	var proxies api.Prefixes
	if err := proxies.Set("127.0.0.1/32"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withConfig(func(c *app.Config) {
		c.TrustedProxies = proxies
		c.AuthFailureLimit = failureLimit
	}))
	e.domainRecord(e.admin, "example.com")
	return e
}

// guarded creates an account admin token with the guards given (the API's
// fields: allowed_ips, rate_limit, quota).
func (e *env) guarded(guards map[string]any) apiToken {
	e.t.Helper()
	body := map[string]any{"name": "guarded", "resources": []any{perm("account", e.acme, 100)}}
	for k, v := range guards {
		body[k] = v
	}
	var t apiToken
	e.post("/api/api_tokens", e.admin, body).want(200).decode(&t)
	e.secrets.add(t.Token)
	return t
}

// outcome is how a way in answered, reduced to what every one of them
// says: an HTTP status and the reason's code ("" for a pass).
type outcome struct {
	status int
	code   string
}

var passed = outcome{status: 200}

// wayIn uses token from the client address ip, n times, and returns how
// the last one was answered.
type wayIn func(e *env, token, ip string) outcome

func fromProxy(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

func answered(r *response) outcome {
	if r.Status < 300 {
		return passed
	}
	code, _ := r.object()["code"].(string)
	return outcome{r.Status, code}
}

var waysIn = map[string]wayIn{
	"api": func(e *env, token, ip string) outcome {
		return answered(e.send(request{method: "GET", path: "/api/whoami", token: token, header: fromProxy(ip)}))
	},
	"send": func(e *env, token, ip string) outcome {
		return answered(e.send(request{method: "POST", path: "/api/send", token: token, header: fromProxy(ip),
			body: email("app@example.com", "ann@example.org")}))
	},
	"verify POST": func(e *env, token, ip string) outcome {
		var v struct {
			Code, Reason string
		}
		e.post("/api/verify", e.admin, map[string]any{"token": token, "ip": ip}).want(200).decode(&v)
		switch v.Code {
		case "VALID":
			return passed
		case "IP_NOT_ALLOWED":
			return outcome{403, v.Reason}
		case "RATE_LIMITED", "USAGE_EXCEEDED":
			return outcome{429, v.Reason}
		}
		return outcome{0, v.Code}
	},
	"verify GET": func(e *env, token, ip string) outcome {
		return answered(e.send(request{method: "GET", path: "/api/verify", token: token, header: fromProxy(ip)}))
	},
	"change stream": func(e *env, token, ip string) outcome {
		return answered(e.send(request{method: "GET", path: "/api/auth_changes", token: token, header: fromProxy(ip)}))
	},
}

// Every guard holds on every way in: the table is way in x guard.
func TestGuardsHoldOnEveryWayIn(t *testing.T) {
	type step struct {
		ip   string
		want outcome
	}
	refusedIP := outcome{403, "ip_not_allowed"}
	cases := []struct {
		name   string
		guards map[string]any
		steps  []step
	}{
		{"allowed_ips", map[string]any{"allowed_ips": []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"}}, []step{
			{"203.0.113.9", passed}, {"198.51.100.7", passed}, {"2001:db8::5", passed},
			{"198.51.100.8", refusedIP}, {"2001:db9::1", refusedIP}, {"192.0.2.1", refusedIP},
		}},
		{"rate_limit", map[string]any{"rate_limit": map[string]any{"limit": 2, "period_seconds": 3600}}, []step{
			{"192.0.2.1", passed}, {"192.0.2.2", passed}, {"192.0.2.3", outcome{429, "token_rate_limited"}},
		}},
		{"quota of requests", map[string]any{"quota": map[string]any{"limit": 3, "period": "day", "unit": "requests"}}, []step{
			{"192.0.2.1", passed}, {"192.0.2.1", passed}, {"192.0.2.1", passed}, {"192.0.2.1", outcome{429, "quota_exceeded"}},
		}},
	}
	e := guardedEnv(t, 1000) // one server: each case has a token of its own
	for way, use := range waysIn {
		for _, tc := range cases {
			t.Run(way+"/"+tc.name, func(t *testing.T) {
				e := e.with(t)
				tok := e.guarded(tc.guards)
				for i, s := range tc.steps {
					if got := use(e, tok.Token, s.ip); got != s.want {
						t.Fatalf("use %d from %s: %+v, want %+v", i+1, s.ip, got, s.want)
					}
				}
			})
		}
	}
}

// A quota of emails counts recipients of sends, all or none, and nothing
// else; it refills at the start of the next period (UTC).
func TestQuotaOfEmailsCountsRecipients(t *testing.T) {
	e := guardedEnv(t, 1000)
	tok := e.guarded(map[string]any{"quota": map[string]any{"limit": 3, "period": "day", "unit": "emails"}})
	for range 5 {
		e.get("/api/whoami", tok.Token).want(200)
	}
	e.post("/api/send", tok.Token, email("app@example.com", "a@example.org", "b@example.org")).want(200)
	r := e.post("/api/send", tok.Token, email("app@example.com", "c@example.org", "d@example.org"))
	r.want(429)
	if body := r.object(); body["code"] != "quota_exceeded" || !strings.Contains(fmt.Sprint(body["errors"]), "3 emails a day") {
		t.Errorf("over the quota: %s", r.Body)
	}
	assertRetryAfter(t, r)
	e.post("/api/send", tok.Token, email("app@example.com", "c@example.org")).want(200)
	var got struct {
		Quota struct {
			Limit     int64     `json:"limit"`
			Remaining int64     `json:"remaining"`
			ResetsAt  time.Time `json:"resets_at"`
		} `json:"quota"`
	}
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200).decode(&got)
	next := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if got.Quota.Limit != 3 || got.Quota.Remaining != 0 || !got.Quota.ResetsAt.Equal(next) {
		t.Errorf("the token's quota: %+v, want 0 of 3 left until %v", got.Quota, next)
	}
	e.clock.Advance(12 * time.Hour)
	e.post("/api/send", tok.Token, email("app@example.com", "a@example.org", "b@example.org", "c@example.org")).want(200)
}

// The tighter of the token's limit and the plan's is the one the rate-limit
// headers report.
func TestTighterLimitInTheHeaders(t *testing.T) {
	e := guardedEnv(t, 1000)
	tok := e.guarded(map[string]any{"rate_limit": map[string]any{"limit": 5, "period_seconds": 10}})
	r := e.get("/api/whoami", tok.Token).want(200)
	if r.Header.Get("X-Ratelimit-Limit") != "5" || r.Header.Get("X-Ratelimit-Remaining") != "4" {
		t.Errorf("headers of a token limited to 5 per 10 s: limit %s, remaining %s", r.Header.Get("X-Ratelimit-Limit"), r.Header.Get("X-Ratelimit-Remaining"))
	}
	plain := e.guarded(nil)
	r = e.get("/api/whoami", plain.Token).want(200)
	if r.Header.Get("X-Ratelimit-Limit") != "1000000" {
		t.Errorf("headers of a token without a limit: %s", r.Header.Get("X-Ratelimit-Limit"))
	}
	for range 4 {
		e.get("/api/whoami", tok.Token).want(200)
	}
	r = e.get("/api/whoami", tok.Token).want(429)
	if r.object()["code"] != "token_rate_limited" || r.Header.Get("Retry-After") != "2" {
		t.Errorf("6th request in 10 s: %s, Retry-After %s", r.Body, r.Header.Get("Retry-After"))
	}
	e.clock.Advance(2 * time.Second)
	e.get("/api/whoami", tok.Token).want(200)
}

// A request from outside a token's allowed_ips is a failed authentication:
// enough of them throttle the address, and an address that is not a proxy
// is judged by its own peer address, whatever it forwards.
func TestRefusedAddressIsAFailedAuthentication(t *testing.T) {
	e := guardedEnv(t, 3)
	tok := e.guarded(map[string]any{"allowed_ips": []string{"127.0.0.2"}})
	e.send(request{method: "GET", path: "/api/whoami", token: tok.Token, from: "127.0.0.2"}).want(200)
	// 127.0.0.3 is not a trusted proxy: what it forwards is not believed.
	r := e.send(request{method: "GET", path: "/api/whoami", token: tok.Token, from: "127.0.0.3", header: fromProxy("127.0.0.2")})
	if got := answered(r); got != (outcome{403, "ip_not_allowed"}) {
		t.Fatalf("from 127.0.0.3 forwarding 127.0.0.2: %+v %s", got, r.Body)
	}
	for range 2 {
		e.send(request{method: "GET", path: "/api/whoami", token: tok.Token, from: "127.0.0.3"}).want(403)
	}
	assertThrottled(t, e.send(request{method: "GET", path: "/api/whoami", token: tok.Token, from: "127.0.0.3"}))
	e.send(request{method: "GET", path: "/api/whoami", token: tok.Token, from: "127.0.0.2"}).want(200)
}

// POST /api/verify answers IP_NOT_ALLOWED for a token with allowed_ips
// when the service does not say where it was presented from, and refuses
// an ip that is not an address.
func TestVerifyNeedsTheAddressOfAGuardedToken(t *testing.T) {
	e := guardedEnv(t, 1000)
	tok := e.guarded(map[string]any{"allowed_ips": []string{"203.0.113.0/24"}})
	var v struct {
		Code       string   `json:"code"`
		Reason     string   `json:"reason"`
		AllowedIPs []string `json:"allowed_ips"`
	}
	e.post("/api/verify", e.admin, map[string]any{"token": tok.Token}).want(200).decode(&v)
	if v.Code != "IP_NOT_ALLOWED" || v.Reason != "ip_not_allowed" || len(v.AllowedIPs) != 1 || v.AllowedIPs[0] != "203.0.113.0/24" {
		t.Errorf("without ip: %+v", v)
	}
	e.post("/api/verify", e.admin, map[string]any{"token": tok.Token, "ip": "::ffff:203.0.113.4"}).want(200).decode(&v)
	if v.Code != "VALID" {
		t.Errorf("an IPv4-mapped address inside the list: %+v", v)
	}
	r := e.post("/api/verify", e.admin, map[string]any{"token": tok.Token, "ip": "203.0.113.0/24"}).want(422)
	if !strings.Contains(string(r.Body), `"ip"`) {
		t.Errorf("a network as ip: %s", r.Body)
	}
	plain := e.guarded(nil)
	e.post("/api/verify", e.admin, map[string]any{"token": plain.Token}).want(200).decode(&v)
	if v.Code != "VALID" {
		t.Errorf("a token without allowed_ips, no ip given: %+v", v)
	}
}

// Only an account admin sets a token's guards, and never on itself; bad
// values are 422 on their field.
func TestWhoMaySetGuards(t *testing.T) {
	e := guardedEnv(t, 1000)
	p := e.createProject(e.admin, "Web")
	projectAdmin := e.createToken(e.admin, "project admin", perm("project", p, 100))
	r := e.post("/api/api_tokens", projectAdmin.Token, map[string]any{"name": "x", "resources": []any{perm("project", p, 10)},
		"rate_limit": map[string]any{"limit": 5, "period_seconds": 60}}).want(403)
	if !strings.Contains(string(r.Body), "account admin") {
		t.Errorf("a project admin setting a rate limit: %s", r.Body)
	}
	mine := e.createToken(e.admin, "mine", perm("project", p, 10))
	e.patch(e.path("/api/api_tokens/%d", mine.ID), projectAdmin.Token, map[string]any{"allowed_ips": []string{}}).want(403)

	limited := e.guarded(map[string]any{"allowed_ips": []string{"127.0.0.0/8"}, "quota": map[string]any{"limit": 100, "period": "month"}})
	r = e.patch(e.path("/api/api_tokens/%d", limited.ID), limited.Token, map[string]any{"allowed_ips": nil}).want(403)
	if !strings.Contains(string(r.Body), "its own") {
		t.Errorf("a token lifting its own allowed_ips: %s", r.Body)
	}
	var got struct {
		AllowedIPs []string `json:"allowed_ips"`
		Quota      *struct {
			Limit int64  `json:"limit"`
			Unit  string `json:"unit"`
		} `json:"quota"`
		RateLimit *struct{} `json:"rate_limit"`
	}
	e.get(e.path("/api/api_tokens/%d", limited.ID), e.admin).want(200).decode(&got)
	if len(got.AllowedIPs) != 1 || got.Quota == nil || got.Quota.Unit != "requests" || got.RateLimit != nil {
		t.Fatalf("the guards as set: %+v", got)
	}
	// Another account admin relaxes them; null removes one, absent keeps it.
	e.patch(e.path("/api/api_tokens/%d", limited.ID), e.admin, map[string]any{"allowed_ips": []string{}, "quota": nil}).want(200).decode(&got)
	if len(got.AllowedIPs) != 0 || got.Quota != nil {
		t.Errorf("after removing: %s", e.get(e.path("/api/api_tokens/%d", limited.ID), e.admin).Body)
	}

	bad := []struct {
		field string
		value any
		says  string
	}{
		{"allowed_ips", []string{"10.0.0.1/8"}, "host bits"},
		{"allowed_ips", []string{"example.com"}, "not an IP address"},
		{"allowed_ips", "10.0.0.1", "must be a list"},
		{"rate_limit", map[string]any{"limit": 0, "period_seconds": 60}, "limit must be"},
		{"rate_limit", map[string]any{"limit": 5, "period_seconds": 86401}, "period_seconds must be"},
		{"rate_limit", map[string]any{"limit": 5}, "period_seconds"},
		{"quota", map[string]any{"limit": 5, "period": "week"}, "period must be day or month"},
		{"quota", map[string]any{"limit": 5, "period": "day", "unit": "bytes"}, "unit must be"},
		{"quota", map[string]any{"limit": -1, "period": "day"}, "limit must be"},
	}
	for _, b := range bad {
		r := e.post("/api/api_tokens", e.admin, map[string]any{"name": "x", "resources": []any{}, b.field: b.value}).want(422)
		var body struct {
			Errors map[string][]string `json:"errors"`
		}
		r.decode(&body)
		if msgs := body.Errors[b.field]; len(msgs) == 0 || !strings.Contains(strings.Join(msgs, " "), b.says) {
			t.Errorf("%s = %v: %s, want a message on %s saying %q", b.field, b.value, r.Body, b.field, b.says)
		}
	}
}

// A reset keeps the guards, and the quota as spent: resetting does not
// refill it.
func TestResetKeepsGuardsAndQuotaSpent(t *testing.T) {
	e := guardedEnv(t, 1000)
	tok := e.guarded(map[string]any{"allowed_ips": []string{"127.0.0.1"}, "quota": map[string]any{"limit": 2, "period": "month"}})
	e.get("/api/whoami", tok.Token).want(200)
	e.get("/api/whoami", tok.Token).want(200)
	var next apiToken
	e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, map[string]any{}).want(200).decode(&next)
	e.secrets.add(next.Token)
	r := e.get("/api/whoami", next.Token).want(429)
	if r.object()["code"] != "quota_exceeded" {
		t.Errorf("the reset token's first request: %s", r.Body)
	}
	e.send(request{method: "GET", path: "/api/whoami", token: next.Token, from: "127.0.0.2"}).want(403)
}

// A change stream lasts as long as its token could open it again: once the
// token's allowed_ips no longer hold the stream's address, it ends.
func TestChangeStreamEndsWhenItsAddressIsNoLongerAllowed(t *testing.T) {
	e := newEnv(t, withStreams())
	service := e.guarded(map[string]any{"allowed_ips": []string{"127.0.0.0/8"}})
	s := e.openStream(service.Token)
	s.want("ready", fmt.Sprintf(`{"account_id":%d}`, e.acme))
	e.patch(e.path("/api/api_tokens/%d", service.ID), e.admin, map[string]any{"allowed_ips": []string{"203.0.113.0/24"}}).want(200)
	s.want("token", fmt.Sprintf(`{"token_id":%d,"account_id":%d}`, service.ID, e.acme))
	if ev, _ := s.next(); ev != "" {
		t.Fatalf("the stream went on from an address its token no longer allows: %q", ev)
	}
}
