package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/app"
)

func assertRateLimited(t *testing.T, r *response) {
	t.Helper()
	r.want(429)
	body := r.object()
	if body["error"] != "Rate limit exceeded" || body["status"] != float64(429) || body["code"] != "rate_limited" {
		t.Errorf("429 body = %s", r.Body)
	}
	assertRetryAfter(t, r)
}

// assertThrottled checks the failed-authentication throttle's own answer,
// which must not be mistaken for a spent plan limit.
func assertThrottled(t *testing.T, r *response) {
	t.Helper()
	r.want(429)
	body := r.object()
	if body["code"] != "auth_throttled" || body["status"] != float64(429) || !strings.Contains(fmt.Sprint(body["error"]), "failed authentications") {
		t.Errorf("throttle 429 body = %s", r.Body)
	}
	assertRetryAfter(t, r)
}

func assertRetryAfter(t *testing.T, r *response) {
	t.Helper()
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After = %q, want whole seconds ≥ 1", r.Header.Get("Retry-After"))
	}
}

// A burst of N+k concurrent requests on a free account admits exactly N.
func TestConcurrentBurstAdmitsExactlyTheLimit(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanFree, 0))
	const limit, extra = 100, 25
	results := make([]*response, limit+extra)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.get("/api/accounts", e.admin)
		}()
	}
	wg.Wait()
	ok, limited := 0, 0
	remaining := map[string]bool{}
	for _, r := range results {
		if r.Header.Get("X-RateLimit-Limit") != "100" || r.Header.Get("X-RateLimit-Reset") == "" || r.Header.Get("X-RateLimit-Remaining") == "" {
			t.Fatalf("rate-limit headers missing: %v", r.Header)
		}
		switch r.Status {
		case 200:
			ok++
			remaining[r.Header.Get("X-RateLimit-Remaining")] = true
		case 429:
			limited++
			assertRateLimited(t, r)
		default:
			t.Fatalf("status %d", r.Status)
		}
	}
	if ok != limit || limited != extra {
		t.Fatalf("admitted %d and refused %d, want %d and %d", ok, limited, limit, extra)
	}
	if len(remaining) != limit || !remaining["0"] || !remaining["99"] {
		t.Errorf("X-RateLimit-Remaining took %d distinct values, want 0..99 once each", len(remaining))
	}
	// The limit frees one request per 600 ms (100 per minute).
	e.clock.Advance(599 * time.Millisecond)
	assertRateLimited(t, e.get("/api/accounts", e.admin))
	e.clock.Advance(time.Millisecond)
	r := e.get("/api/accounts", e.admin).want(200)
	if r.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("remaining after one refill = %q", r.Header.Get("X-RateLimit-Remaining"))
	}
	// The other account is unaffected.
	e.get("/api/accounts", e.otherAdmin).want(200)
}

func TestPlanLimits(t *testing.T) {
	tests := []struct {
		name  string
		plan  tokend.Plan
		limit int
		want  int
	}{
		{"free", tokend.PlanFree, 0, 100},
		{"pro", tokend.PlanPro, 0, 1000},
		{"enterprise custom", tokend.PlanEnterprise, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withPlan(tt.plan, tt.limit))
			for i := 0; i < tt.want; i++ {
				r := e.get("/api/accounts", e.admin)
				if r.Status != 200 {
					t.Fatalf("request %d of %d: status %d", i+1, tt.want, r.Status)
				}
				if got := r.Header.Get("X-RateLimit-Limit"); got != strconv.Itoa(tt.want) {
					t.Fatalf("X-RateLimit-Limit = %s, want %d", got, tt.want)
				}
			}
			assertRateLimited(t, e.get("/api/accounts", e.admin))
		})
	}
}

// Test keys have their own limit, five times the plan's by default.
func TestTestKeysHaveTheirOwnHigherLimit(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 10))
	var testKey apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "sandbox", "environment": "test",
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&testKey)
	e.secrets.add(testKey.Token)
	for i := 0; i < 50; i++ {
		r := e.get("/api/accounts", testKey.Token).want(200)
		if r.Header.Get("X-RateLimit-Limit") != "50" {
			t.Fatalf("test key limit = %s, want 50", r.Header.Get("X-RateLimit-Limit"))
		}
	}
	assertRateLimited(t, e.get("/api/accounts", testKey.Token))
	// The live bucket spent only the one create request.
	r := e.get("/api/accounts", e.admin).want(200)
	if r.Header.Get("X-RateLimit-Remaining") != "8" {
		t.Errorf("live remaining = %s, want 8", r.Header.Get("X-RateLimit-Remaining"))
	}
}

func TestTestKeyMultiplierIsConfigurable(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 10), withConfig(func(c *app.Config) { c.TestRateMultiplier = 2 }))
	var testKey apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "sandbox", "environment": "test"}).want(200).decode(&testKey)
	e.secrets.add(testKey.Token)
	if got := e.get("/api/accounts", testKey.Token).want(200).Header.Get("X-RateLimit-Limit"); got != "20" {
		t.Fatalf("test key limit = %s, want 20", got)
	}
}

// A plan change made while the server runs applies to the next request.
func TestPlanChangeAppliesAtOnce(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanFree, 0))
	e.get("/api/accounts", e.admin).want(200)
	if _, err := e.svc.SetPlan(t.Context(), e.acme, tokend.PlanPro, 0, 0, "ops"); err != nil {
		t.Fatal(err)
	}
	if got := e.get("/api/accounts", e.admin).want(200).Header.Get("X-RateLimit-Limit"); got != "1000" {
		t.Fatalf("limit after upgrade = %s, want 1000", got)
	}
}

// Failed authentication is throttled per client address; valid tokens from
// other addresses are never locked out, and a token this instance has already
// verified passes even from a throttled address.
func TestFailedAuthenticationThrottlePerAddress(t *testing.T) {
	e := newEnv(t, withConfig(func(c *app.Config) { c.AuthFailureLimit = 20 }))
	guess := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	e.send(request{method: "GET", path: "/api/api_tokens", token: e.admin, from: "127.0.0.3"}).want(200) // verified: now in memory
	fresh := e.createToken(e.admin, "never used", perm("account", e.acme, 10))
	for i := 0; i < 20; i++ {
		e.send(request{method: "GET", path: "/api/api_tokens", token: guess, from: "127.0.0.2"}).want(401)
	}
	// The 21st guess, and a valid token not yet verified here, from that
	// address: 429 with the throttle's own code, without a lookup.
	assertThrottled(t, e.send(request{method: "GET", path: "/api/api_tokens", token: guess, from: "127.0.0.2"}))
	assertThrottled(t, e.send(request{method: "GET", path: "/api/api_tokens", token: fresh.Token, from: "127.0.0.2"}))
	// A token already verified costs nothing to check, so it passes.
	e.send(request{method: "GET", path: "/api/api_tokens", token: e.admin, from: "127.0.0.2"}).want(200)
	// Another client is unaffected, valid or not.
	e.send(request{method: "GET", path: "/api/api_tokens", token: fresh.Token, from: "127.0.0.3"}).want(200)
	e.send(request{method: "GET", path: "/api/api_tokens", token: guess, from: "127.0.0.3"}).want(401)
	// Requests without any token are not guesses and are not throttled.
	e.send(request{method: "GET", path: "/api/api_tokens", from: "127.0.0.2"}).want(401)
	// The address recovers at 20 per minute: one more lookup after 3 s.
	e.clock.Advance(3 * time.Second)
	other := e.createToken(e.admin, "also never used", perm("account", e.acme, 10))
	e.send(request{method: "GET", path: "/api/api_tokens", token: other.Token, from: "127.0.0.2"}).want(200)
	// A successful lookup gave its reservation back: the budget is not spent by valid tokens.
	e.send(request{method: "GET", path: "/api/api_tokens", token: guess, from: "127.0.0.2"}).want(401)
}

// Parallel well-formed guesses from one address never get more 401s than the
// budget: the throttle reserves before the lookup.
func TestThrottleHoldsUnderParallelGuesses(t *testing.T) {
	const limit, guesses = 20, 300
	// Lookups take a while, as on a loaded database: the window in which a
	// check-then-charge throttle lets parallel guesses through.
	e := newEnv(t, withConfig(func(c *app.Config) { c.AuthFailureLimit = limit }),
		withStore(func(s tokend.Store) tokend.Store { return slowLookups{s} }))
	format, _ := apikey.NewFormat("tk")
	values := make([]string, guesses)
	for i := range values {
		v, err := format.Generate("live")
		if err != nil {
			t.Fatal(err)
		}
		values[i] = v
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for _, v := range values {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.send(request{method: "GET", path: "/api/whoami", token: v, from: "127.0.0.9"})
			mu.Lock()
			counts[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[401] != limit || counts[429] != guesses-limit {
		t.Fatalf("%d parallel guesses got %v; want exactly %d 401s and the rest 429", guesses, counts, limit)
	}
}

// slowLookups is a store whose authentication lookups take 20 ms.
type slowLookups struct{ tokend.Store }

func (s slowLookups) TokenByHash(ctx context.Context, hash []byte) (*tokend.Token, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Store.TokenByHash(ctx, hash)
}

// A burst of one valid token that is not in the cache yet (new, or just
// evicted by a change) shares one lookup: it spends none of the address's
// failure budget, however many requests come at once.
func TestBurstOfAnUncachedTokenIsNotThrottled(t *testing.T) {
	e := newEnv(t, withConfig(func(c *app.Config) { c.AuthFailureLimit = 5 }),
		withStore(func(s tokend.Store) tokend.Store { return slowLookups{s} }))
	tok := e.createToken(e.admin, "fresh", perm("account", e.acme, 10))
	var wg sync.WaitGroup
	var limited atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.srv.URL+"/api/whoami", nil)
			req.Header.Set("Api-Token", tok.Token)
			res, err := clientFrom("").Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				limited.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := limited.Load(); n != 0 {
		t.Errorf("%d of 64 concurrent first uses of a valid token were refused", n)
	}
}

// Every sending route answers a spent plan limit and a throttled address
// with 429, Retry-After and tokend's code, in its own error shape: Mailtrap's
// {"success": false, "errors": [...], "code"}, MailSage's {"error", "status",
// "code"}.
func TestSendingRoutesRateLimitedCarryCode(t *testing.T) {
	e := newEnv(t, withConfig(func(c *app.Config) { c.AuthFailureLimit = 1 }))
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	if _, err := e.svc.SetPlan(t.Context(), e.acme, tokend.PlanEnterprise, 1, 0, "ops"); err != nil {
		t.Fatal(err)
	}
	routes := []struct {
		name, path string
		mailSage   bool
	}{
		{"send", "/api/send", false},
		{"send to sandbox", e.path("/api/send/%d", sb), false},
		{"batch", "/api/batch", false},
		{"batch to sandbox", e.path("/api/batch/%d", sb), false},
		{"mailsage send", "/api/v1/emails/send", true},
	}
	format, _ := apikey.NewFormat("tk")
	for i, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			e := e.with(t)
			assertCode := func(r *response, code string) {
				t.Helper()
				r.want(429)
				assertRetryAfter(t, r)
				body := r.object()
				if rt.mailSage {
					if body["code"] != code || body["status"] != float64(429) || body["error"] == "" {
						t.Errorf("body %s, want MailSage's shape with code %q", r.Body, code)
					}
					return
				}
				if errs, _ := body["errors"].([]any); body["success"] != false || len(errs) != 1 || errs[0] == "" || body["code"] != code {
					t.Errorf("body %s, want the sending API's shape with code %q", r.Body, code)
				}
			}
			// The plan limit, one request a minute: whatever the first
			// request's answer, the second is refused.
			e.clock.Advance(time.Minute)
			e.post(rt.path, e.admin, map[string]any{})
			assertCode(e.post(rt.path, e.admin, map[string]any{}), "rate_limited")
			// The failed-authentication throttle, one failure a minute.
			guess, err := format.Generate("live")
			if err != nil {
				t.Fatal(err)
			}
			from := fmt.Sprintf("127.0.0.%d", 40+i)
			e.send(request{method: "POST", path: rt.path, token: guess, body: map[string]any{}, from: from}).want(401)
			assertCode(e.send(request{method: "POST", path: rt.path, token: guess, body: map[string]any{}, from: from}), "auth_throttled")
		})
	}
}

// Change streams are shared out so that no token can take them all: a
// service token (a live token with viewer on the account) holds at most 16,
// and the account 64. Past a bound the answer is 429 too_many_streams,
// saying which, with Retry-After. (Test keys are never service tokens: 403,
// TestTestKeyIsNotAServiceToken.)
func TestAuthChangeStreamLimits(t *testing.T) {
	e := newEnv(t, withStreams())
	ready := fmt.Sprintf(`{"account_id":%d}`, e.acme)
	refused := func(token, says string) {
		t.Helper()
		r := e.send(request{method: "GET", path: "/api/auth_changes", token: token}).want(429)
		body := r.object()
		if body["code"] != "too_many_streams" || body["status"] != float64(429) || !strings.Contains(fmt.Sprint(body["error"]), says) {
			t.Errorf("429 body %s, want code too_many_streams and an error saying %q", r.Body, says)
		}
		assertRetryAfter(t, r)
	}
	// A service token gets its streams, up to 16.
	gateway := e.createToken(e.admin, "gateway", perm("account", e.acme, 10))
	for range tokend.MaxServiceTokenStreams {
		e.openStream(gateway.Token).want("ready", ready)
	}
	refused(gateway.Token, "This token already holds 16 change streams")
	// Other service tokens take the rest of the account's 64.
	for open := tokend.MaxServiceTokenStreams; open < tokend.MaxAuthSubscriptions; {
		other := e.createToken(e.admin, fmt.Sprintf("gateway %d", open), perm("account", e.acme, 10))
		for range min(tokend.MaxServiceTokenStreams, tokend.MaxAuthSubscriptions-open) {
			e.openStream(other.Token).want("ready", ready)
			open++
		}
	}
	refused(e.admin, "This account already holds 64 change streams")
	// Another account has its own allowance.
	e.openStream(e.otherAdmin).want("ready", fmt.Sprintf(`{"account_id":%d}`, e.other))
}
