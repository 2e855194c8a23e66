package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/testutil"
)

type verifyJSON struct {
	Valid       bool    `json:"valid"`
	Code        string  `json:"code"`
	TokenID     *int64  `json:"token_id"`
	Name        string  `json:"name"`
	AccountID   int64   `json:"account_id"`
	Environment string  `json:"environment"`
	ExpiresAt   *string `json:"expires_at"`
	Permissions []struct {
		ResourceType string `json:"resource_type"`
		ResourceID   int64  `json:"resource_id"`
		AccessLevel  int    `json:"access_level"`
	} `json:"permissions"`
	RateLimit *struct {
		Limit     int `json:"limit"`
		Remaining int `json:"remaining"`
		Reset     int `json:"reset"`
	} `json:"ratelimit"`
}

func (e *env) verify(caller string, body any) (verifyJSON, *response) {
	e.t.Helper()
	r := e.post("/api/verify", caller, body).want(200)
	var v verifyJSON
	r.decode(&v)
	if v.Valid != (v.Code == "VALID") {
		e.t.Fatalf("valid %v with code %s", v.Valid, v.Code)
	}
	return v, r
}

func TestVerifyOutcomes(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Billing")
	sb := e.createSandbox(e.admin, p, "QA")
	other := e.createProject(e.admin, "Other")
	service := e.createToken(e.admin, "checkout service", perm("account", e.acme, 10)).Token
	worker := e.createToken(e.admin, "worker", perm("project", p, 100))
	viewer := e.createToken(e.admin, "reader", perm("project", p, 10))
	var expiring apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "soon", "expires_at": e.clock.Now().Add(time.Minute),
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&expiring)
	deleted := e.createToken(e.admin, "gone", perm("account", e.acme, 10))
	e.del(e.path("/api/api_tokens/%d", deleted.ID), e.admin).want(204)
	foreign := e.otherAdmin
	e.clock.Advance(2 * time.Minute) // expiring is now expired

	req := func(typ string, id int64, level int) map[string]any {
		return map[string]any{"resource_type": typ, "resource_id": id, "access_level": level}
	}
	cases := []struct {
		name  string
		token string
		perms []any
		code  string
		known bool // the answer describes the token
	}{
		{"valid", worker.Token, nil, "VALID", true},
		{"holds its project", worker.Token, []any{req("project", p, 100)}, "VALID", true},
		{"project admin covers its sandbox", worker.Token, []any{req("sandbox", sb, 100)}, "VALID", true},
		{"inbox is an alias of sandbox", worker.Token, []any{req("inbox", sb, 10)}, "VALID", true},
		{"resource_id as a string of digits", worker.Token, []any{map[string]any{"resource_type": "project", "resource_id": fmt.Sprint(p), "access_level": 100}}, "VALID", true},
		{"another project", worker.Token, []any{req("project", other, 10)}, "INSUFFICIENT_PERMISSIONS", true},
		{"viewer asked for admin", viewer.Token, []any{req("project", p, 100)}, "INSUFFICIENT_PERMISSIONS", true},
		{"every permission must hold", worker.Token, []any{req("project", p, 10), req("account", e.acme, 10)}, "INSUFFICIENT_PERMISSIONS", true},
		{"a resource that does not exist", worker.Token, []any{req("sandbox", 987654, 10)}, "INSUFFICIENT_PERMISSIONS", true},
		{"account admin covers every project", e.admin, []any{req("project", other, 100), req("sandbox", sb, 100)}, "VALID", true},
		{"account admin does not cover another account's project", e.admin, []any{req("account", e.other, 10)}, "INSUFFICIENT_PERMISSIONS", true},
		{"expired", expiring.Token, nil, "EXPIRED", true},
		{"deleted", deleted.Token, nil, "NOT_FOUND", false},
		{"another account's token", foreign, nil, "NOT_FOUND", false},
		{"malformed", "tk_live_nope", nil, "NOT_FOUND", false},
		{"bad checksum", worker.Token[:len(worker.Token)-1] + string(flip(worker.Token[len(worker.Token)-1])), nil, "NOT_FOUND", false},
		{"not a token at all", "hello", nil, "NOT_FOUND", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.with(t)
			body := map[string]any{"token": c.token}
			if c.perms != nil {
				body["permissions"] = c.perms
			}
			v, r := e.verify(service, body)
			if v.Code != c.code {
				t.Fatalf("code %s, want %s: %s", v.Code, c.code, r.Body)
			}
			if (v.TokenID != nil) != c.known {
				t.Fatalf("token fields present %v, want %v: %s", v.TokenID != nil, c.known, r.Body)
			}
			if !c.known {
				if strings.Contains(string(r.Body), "account_id") || strings.Contains(string(r.Body), "ratelimit") {
					t.Fatalf("an unknown token's answer says more than valid and code: %s", r.Body)
				}
				return
			}
			if v.AccountID != e.acme || v.Environment != "live" || v.Name == "" {
				t.Fatalf("token fields: %s", r.Body)
			}
			if (v.RateLimit != nil) != (c.code != "EXPIRED") {
				t.Fatalf("ratelimit present %v for %s: %s", v.RateLimit != nil, c.code, r.Body)
			}
		})
	}

	t.Run("the answer describes the token", func(t *testing.T) {
		e := e.with(t)
		v, r := e.verify(service, map[string]any{"token": worker.Token})
		if *v.TokenID != worker.ID || v.Name != "worker" || v.ExpiresAt != nil || len(v.Permissions) != 1 ||
			v.Permissions[0].ResourceType != "project" || v.Permissions[0].ResourceID != p || v.Permissions[0].AccessLevel != 100 {
			t.Fatalf("answer %s", r.Body)
		}
		if !strings.Contains(string(r.Body), `"expires_at":null`) {
			t.Fatalf("a token that never expires must say expires_at null: %s", r.Body)
		}
		if strings.Contains(string(r.Body), worker.Token) || strings.Contains(string(r.Body), "last_4") {
			t.Fatalf("the answer holds the token: %s", r.Body)
		}
	})
}

func TestVerifyCallers(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Billing")
	worker := e.createToken(e.admin, "worker", perm("project", p, 100))
	for _, c := range []struct {
		name   string
		caller string
		status int
	}{
		{"account viewer", e.createToken(e.admin, "svc", perm("account", e.acme, 10)).Token, 200},
		{"project admin without the account", worker.Token, 403},
		{"domain token", func() string { _, d := e.createDomain(e.admin, "mail.example.com"); return d.Token }(), 403},
		{"no token", "", 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.with(t).post("/api/verify", c.caller, map[string]any{"token": worker.Token}).want(c.status)
		})
	}
}

func TestVerifyBadRequests(t *testing.T) {
	e := newEnv(t)
	many := make([]any, tokend.MaxRequiredPermissions+1)
	for i := range many {
		many[i] = map[string]any{"resource_type": "account", "resource_id": e.acme, "access_level": 10}
	}
	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"no body", nil, "base"},
		{"no token", map[string]any{}, "token"},
		{"empty token", map[string]any{"token": ""}, "token"},
		{"token not a string", map[string]any{"token": 5}, "token"},
		{"unknown resource type", map[string]any{"token": e.admin, "permissions": []any{map[string]any{"resource_type": "planet", "resource_id": 1, "access_level": 10}}}, "permissions"},
		{"missing resource id", map[string]any{"token": e.admin, "permissions": []any{map[string]any{"resource_type": "project", "access_level": 10}}}, "permissions"},
		{"resource id not digits", map[string]any{"token": e.admin, "permissions": []any{map[string]any{"resource_type": "project", "resource_id": "3x", "access_level": 10}}}, "permissions"},
		{"fractional resource id", map[string]any{"token": e.admin, "permissions": []any{map[string]any{"resource_type": "project", "resource_id": 1.5, "access_level": 10}}}, "permissions"},
		{"bad level", map[string]any{"token": e.admin, "permissions": []any{map[string]any{"resource_type": "project", "resource_id": 1, "access_level": 50}}}, "permissions"},
		{"too many permissions", map[string]any{"token": e.admin, "permissions": many}, "permissions"},
		{"permissions not a list", map[string]any{"token": e.admin, "permissions": "all"}, "permissions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out struct {
				Errors map[string][]string `json:"errors"`
			}
			e.with(t).post("/api/verify", e.admin, c.body).want(422).decode(&out)
			if len(out.Errors[c.field]) == 0 {
				t.Fatalf("errors %v, want one on %s", out.Errors, c.field)
			}
		})
	}
}

// A verification spends one request: of the verified token's plan limit
// when it authenticates, of the caller's allowance of verifications that
// find no valid token otherwise, so made-up tokens never spend the real limit.
func TestVerifyChargesTheAccountOnce(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 5))
	tok := e.createToken(e.admin, "end user", perm("account", e.acme, 10))
	e.clock.Advance(time.Hour) // whole again
	_, r := e.verify(e.admin, map[string]any{"token": tok.Token})
	if got := r.Header.Get("X-Ratelimit-Remaining"); got != "4" {
		t.Fatalf("after one verification X-RateLimit-Remaining is %q, want 4", got)
	}
	for i := range 5 { // five made-up tokens spend the allowance of misses
		v, r := e.verify(e.admin, map[string]any{"token": "tk_live_nothing"})
		if v.Code != "NOT_FOUND" || r.Header.Get("X-Ratelimit-Remaining") != fmt.Sprint(4-i) {
			t.Fatalf("miss %d: %s, remaining %s", i, v.Code, r.Header.Get("X-Ratelimit-Remaining"))
		}
	}
	r = e.post("/api/verify", e.admin, map[string]any{"token": "tk_live_nothing"}).want(429)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// ...and the token's own limit is untouched by them.
	v, r := e.verify(e.admin, map[string]any{"token": tok.Token})
	if v.Code != "VALID" || v.RateLimit == nil || v.RateLimit.Limit != 5 || v.RateLimit.Remaining != 3 {
		t.Fatalf("after the misses the token's limit is %+v (%s), want 3 of 5 left", v.RateLimit, r.Body)
	}
	e.verify(e.admin, map[string]any{"token": tok.Token})
	e.verify(e.admin, map[string]any{"token": tok.Token})
	e.verify(e.admin, map[string]any{"token": tok.Token})
	v, r = e.verify(e.admin, map[string]any{"token": tok.Token})
	if v.Code != "RATE_LIMITED" || v.Valid || v.RateLimit == nil || v.RateLimit.Remaining != 0 || v.RateLimit.Reset <= 0 {
		t.Fatalf("the sixth verification of the token: %s", r.Body)
	}
	// Usage: the verified token made 6 requests, 5 passed and 1 was limited.
	var u usageJSON
	e.clock.Advance(time.Hour)
	e.get(e.path("/api/api_tokens/%d/usage", tok.ID), e.admin).want(200).decode(&u)
	if len(u.Days) != 1 || u.Days[0].Success != 5 || u.Days[0].RateLimited != 1 {
		t.Fatalf("usage of the verified token: %+v", u.Days)
	}
}

func TestVerifyForwardedRequest(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Billing")
	worker := e.createToken(e.admin, "worker", perm("project", p, 100))
	var testKey apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "tests", "environment": "test",
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&testKey)
	cases := []struct {
		name   string
		query  string
		header http.Header
		status int
	}{
		{"Api-Token", "", http.Header{"Api-Token": {worker.Token}}, 204},
		{"Bearer", "", http.Header{"Authorization": {"Bearer " + worker.Token}}, 204},
		{"no credential", "", nil, 401},
		{"unknown token", "", http.Header{"Api-Token": {"tk_live_unknown"}}, 401},
		{"two different tokens", "", http.Header{"Api-Token": {worker.Token}, "Authorization": {"Bearer " + e.admin}}, 401},
		{"its account", fmt.Sprintf("?account_id=%d", e.acme), http.Header{"Api-Token": {worker.Token}}, 204},
		{"another account", fmt.Sprintf("?account_id=%d", e.other), http.Header{"Api-Token": {worker.Token}}, 401},
		{"a permission it holds", fmt.Sprintf("?require=project:%d:admin", p), http.Header{"Api-Token": {worker.Token}}, 204},
		{"numeric level", fmt.Sprintf("?require=project:%d:100", p), http.Header{"Api-Token": {worker.Token}}, 204},
		{"a permission it lacks", fmt.Sprintf("?require=project:%d:viewer&require=account:%d:viewer", p, e.acme), http.Header{"Api-Token": {worker.Token}}, 403},
		{"malformed requirement", "?require=project:x:viewer", http.Header{"Api-Token": {worker.Token}}, 422},
		{"malformed account", "?account_id=-1", http.Header{"Api-Token": {worker.Token}}, 422},
		{"empty account", "?account_id=", http.Header{"Api-Token": {worker.Token}}, 422},
		{"account twice", fmt.Sprintf("?account_id=%d&account_id=%d", e.acme, e.other), http.Header{"Api-Token": {worker.Token}}, 422},
		{"empty requirement", "?require=", http.Header{"Api-Token": {worker.Token}}, 422},
		{"a misspelt parameter", fmt.Sprintf("?accountid=%d", e.other), http.Header{"Api-Token": {worker.Token}}, 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.with(t)
			r := e.send(request{method: "GET", path: "/api/verify" + c.query, header: c.header}).want(c.status)
			if c.status != 204 {
				if r.Header.Get("X-Tokend-Token-Id") != "" {
					t.Fatal("a refusal carries identity headers")
				}
				return
			}
			if r.Header.Get("X-Tokend-Account-Id") != fmt.Sprint(e.acme) || r.Header.Get("X-Tokend-Token-Id") != fmt.Sprint(worker.ID) ||
				r.Header.Get("X-Tokend-Environment") != "live" || r.Header.Get("X-Ratelimit-Limit") == "" || len(r.Body) != 0 {
				t.Fatalf("headers %v body %q", r.Header, r.Body)
			}
		})
	}
	t.Run("test key", func(t *testing.T) {
		r := e.with(t).send(request{method: "GET", path: "/api/verify", token: testKey.Token}).want(204)
		if r.Header.Get("X-Tokend-Environment") != "test" {
			t.Fatalf("environment %q", r.Header.Get("X-Tokend-Environment"))
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		e.with(t).send(request{method: "HEAD", path: "/api/verify", token: worker.Token}).want(204)
	})
}

func TestVerifyForwardedRateLimit(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 2))
	e.clock.Advance(time.Hour)
	e.send(request{method: "GET", path: "/api/verify", token: e.admin}).want(204)
	e.send(request{method: "GET", path: "/api/verify", token: e.admin}).want(204)
	r := e.send(request{method: "GET", path: "/api/verify", token: e.admin}).want(429)
	if r.Header.Get("Retry-After") == "" || r.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("headers %v", r.Header)
	}
}

// stream is an open GET /api/auth_changes.
type stream struct {
	t      *testing.T
	res    *http.Response
	events chan [2]string // event, data
}

func (e *env) openStream(token string) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	hr, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/auth_changes", nil)
	hr.Header.Set("Api-Token", token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &stream{t: e.t, res: res, events: make(chan [2]string, 100)}
	go func() {
		defer close(s.events)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != "" {
					s.events <- [2]string{ev, data}
				}
				ev, data = "", ""
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// next returns the next event, failing after a few seconds without one.
func (s *stream) next() (string, string) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			return "", ""
		}
		return ev[0], ev[1]
	case <-time.After(5 * time.Second):
		s.t.Fatal("no event within 5 s")
		return "", ""
	}
}

func (s *stream) want(event, data string) {
	s.t.Helper()
	if ev, d := s.next(); ev != event || d != data {
		s.t.Fatalf("event %q %s, want %q %s", ev, d, event, data)
	}
}

func TestAuthChangeStream(t *testing.T) {
	e := newEnv(t, withStreams())
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10))
	s := e.openStream(service.Token)
	s.want("ready", fmt.Sprintf(`{"account_id":%d}`, e.acme))

	user := e.createToken(e.admin, "user", perm("account", e.acme, 10))
	e.patch(e.path("/api/api_tokens/%d", user.ID), e.admin, map[string]any{"name": "renamed"}).want(200)
	s.want("token", fmt.Sprintf(`{"token_id":%d,"account_id":%d}`, user.ID, e.acme))
	e.post(e.path("/api/api_tokens/%d/reset", user.ID), e.admin, nil).want(200)
	s.want("token", fmt.Sprintf(`{"token_id":%d,"account_id":%d}`, user.ID, e.acme))
	e.del(e.path("/api/api_tokens/%d", user.ID), e.admin).want(204)
	s.want("token", fmt.Sprintf(`{"token_id":%d,"account_id":%d}`, user.ID, e.acme))

	// Another account's changes are not this stream's business.
	var theirs apiToken
	e.post("/api/api_tokens", e.otherAdmin, map[string]any{"name": "x", "resources": []any{perm("account", e.other, 10)}}).want(200).decode(&theirs)
	e.del(e.path("/api/api_tokens/%d", theirs.ID), e.otherAdmin).want(204)

	p := e.createProject(e.admin, "Doomed")
	e.del(e.path("/api/accounts/%d/projects/%d", e.acme, p), e.admin).want(204)
	s.want("account", fmt.Sprintf(`{"account_id":%d}`, e.acme))
	if _, err := e.svc.SetPlan(context.Background(), e.acme, tokend.PlanPro, 0, 0, "ops"); err != nil {
		t.Fatal(err)
	}
	s.want("account", fmt.Sprintf(`{"account_id":%d}`, e.acme))
	e.svc.FlushAuthCache()
	s.want("flush", "{}")

	// The stream is the caller's: it ends when the caller's token goes, or
	// expires.
	var expiring apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "brief", "expires_at": e.clock.Now().Add(200 * time.Millisecond),
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&expiring)
	brief := e.openStream(expiring.Token)
	brief.want("ready", fmt.Sprintf(`{"account_id":%d}`, e.acme))
	if ev, _ := brief.next(); ev != "" {
		t.Fatalf("the stream of an expired token went on: %q", ev)
	}

	e.del(e.path("/api/api_tokens/%d", service.ID), e.admin).want(204)
	s.want("token", fmt.Sprintf(`{"token_id":%d,"account_id":%d}`, service.ID, e.acme))
	if ev, _ := s.next(); ev != "" {
		t.Fatalf("the stream went on after its token was deleted: %q", ev)
	}
}

// Changes other processes make (the CLI, other instances) reach the stream
// through the change feed.
func TestAuthChangeStreamCarriesOtherProcessesChanges(t *testing.T) {
	e := newEnv(t, withStreams())
	user := e.createToken(e.admin, "user", perm("account", e.acme, 10))
	s := e.openStream(e.admin)
	s.want("ready", fmt.Sprintf(`{"account_id":%d}`, e.acme))
	if err := e.svc.SyncAuthCache(context.Background()); err != nil { // the feed starts where the log ends
		t.Fatal(err)
	}
	other := tokend.NewService(e.store, tokend.Options{Now: e.clock.Now})
	if _, err := other.RevokeToken(context.Background(), user.ID, "ops", false); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SyncAuthCache(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.want("token", fmt.Sprintf(`{"token_id":%d,"account_id":%d}`, user.ID, e.acme))
}

// A reverse proxy asks GET /api/verify for every request it forwards: the
// passes are logged at debug level only, the refusals at info.
func TestVerifyForwardedLogsPassesAtDebug(t *testing.T) {
	e := newEnv(t)
	pass := e.send(request{method: "GET", path: "/api/verify", token: e.admin}).want(204).Header.Get("X-Request-Id")
	refused := e.send(request{method: "GET", path: "/api/verify", token: "tk_live_nope"}).want(401).Header.Get("X-Request-Id")
	levels := map[string]string{}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var l struct {
			Level, Msg string
			RequestID  string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "request" {
			levels[l.RequestID] = l.Level
		}
	}
	if levels[pass] != "DEBUG" || levels[refused] != "INFO" {
		t.Fatalf("pass logged at %q, refusal at %q; want DEBUG and INFO", levels[pass], levels[refused])
	}
}

// Over HTTP/2 a write deadline left armed resets the stream when it passes,
// even with nothing to write: the stream outlives several write waits.
func TestAuthChangeStreamOverHTTP2(t *testing.T) {
	defer api.SetStreamTimings(300*time.Millisecond, 100*time.Millisecond)()
	tk := testutil.Tokend(t, testutil.TokendOptions{HTTP2: true})
	hc := tk.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tk.URL+"/api/auth_changes", nil)
	req.Header.Set("Api-Token", tk.Admin.Value)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 {
		t.Fatalf("%s %d", res.Proto, res.StatusCode)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	time.Sleep(time.Second) // three heartbeats, ten write waits
	doomed := tk.Token(t, "doomed")
	if err := tk.Svc.DeleteToken(ctx, &tk.Admin.Token, doomed.ID); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`data: {"token_id":%d,"account_id":%d}`, doomed.ID, tk.AccountID)
	for deadline := time.After(5 * time.Second); ; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended")
			}
			if l == want {
				return
			}
		case <-deadline:
			t.Fatal("no event within 5 s")
		}
	}
}
