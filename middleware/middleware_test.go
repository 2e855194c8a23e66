package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/middlewaretest"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/middleware"
)

// fixture is a tokend, a service behind the middleware, and counters of
// what the middleware asked tokend.
type fixture struct {
	t        *testing.T
	tokend   *testutil.TokendServer
	auth     *middleware.Authenticator
	service  *httptest.Server
	verifies atomic.Int64
	// streamGate, when closed... see blockStreams.
	mu      sync.Mutex
	blocked bool
	cancel  []context.CancelFunc
}

func newFixture(t *testing.T, opts testutil.TokendOptions, mopts middleware.Options) *fixture {
	t.Helper()
	f := &fixture{t: t}
	opts.Wrap = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/verify" {
				f.verifies.Add(1)
			}
			if r.URL.Path == "/api/auth_changes" {
				f.mu.Lock()
				if f.blocked {
					f.mu.Unlock()
					http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
					return
				}
				ctx, cancel := context.WithCancel(r.Context())
				f.cancel = append(f.cancel, cancel)
				f.mu.Unlock()
				r = r.WithContext(ctx)
			}
			h.ServeHTTP(w, r)
		})
	}
	f.tokend = testutil.Tokend(t, opts)
	svcToken := f.tokend.Token(t, "gateway")
	c, err := client.New(f.tokend.URL, svcToken.Value)
	if err != nil {
		t.Fatal(err)
	}
	f.auth, err = middleware.New(c, mopts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.auth.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	f.waitLive(true)

	mux := http.NewServeMux()
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := middleware.FromContext(r.Context())
		if !ok {
			t.Error("handler without identity")
		}
		json.NewEncoder(w).Encode(map[string]any{"token_id": id.TokenID, "account_id": id.AccountID, "environment": id.Environment})
	})
	mux.Handle("GET /any", f.auth.Require()(hello))
	mux.Handle("GET /projects/{id}", f.auth.RequireFunc(func(r *http.Request) ([]client.Permission, error) {
		p, err := client.ParsePermission("project:" + r.PathValue("id") + ":viewer")
		return []client.Permission{p}, err
	})(hello))
	f.service = httptest.NewServer(mux)
	t.Cleanup(f.service.Close)
	return f
}

func newBenchFixture(b *testing.B) *benchFixture {
	tk := testutil.Tokend(b, testutil.TokendOptions{RateLimit: 1 << 30})
	auth := middlewaretest.Start(b, tk.URL, tk.Token(b, "gateway").Value, middleware.Options{})
	return &benchFixture{tokend: tk, auth: auth}
}

// blockStreams drops the open change streams and refuses new ones until unblock.
func (f *fixture) blockStreams() {
	f.mu.Lock()
	f.blocked = true
	for _, c := range f.cancel {
		c()
	}
	f.cancel = nil
	f.mu.Unlock()
	f.waitLive(false)
}

func (f *fixture) unblockStreams() {
	f.mu.Lock()
	f.blocked = false
	f.mu.Unlock()
	f.waitLive(true)
}

func (f *fixture) waitLive(want bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.auth.Live() != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("the middleware's stream is not live=%v after 10 s", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type answer struct {
	status int
	code   string
	header http.Header
	body   map[string]any
}

func (f *fixture) get(path string, header http.Header) answer {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.service.URL+path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	json.NewDecoder(res.Body).Decode(&a.body)
	a.code, _ = a.body["code"].(string)
	return a
}

func bearer(v string) http.Header { return http.Header{"Authorization": {"Bearer " + v}} }

func TestMiddlewareAnswersFromMemoryAfterTheFirstRequest(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{})
	tok := f.tokend.Token(t, "user")
	for i := range 50 {
		a := f.get("/any", bearer(tok.Value))
		if a.status != 200 || a.body["token_id"] != float64(tok.ID) || a.body["account_id"] != float64(f.tokend.AccountID) ||
			a.body["environment"] != "live" {
			t.Fatalf("request %d: %d %v", i, a.status, a.body)
		}
	}
	if n := f.verifies.Load(); n != 1 {
		t.Fatalf("50 requests of one token asked tokend %d times, want 1", n)
	}
	if f.get("/any", http.Header{"Api-Token": {tok.Value}}).status != 200 {
		t.Fatal("Api-Token header refused")
	}
}

func TestMiddlewareRefusals(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{Now: clock.Now})
	tok := f.tokend.Token(t, "user")
	other := testutil.Tokend(t, testutil.TokendOptions{}) // another tokend's token is unknown here
	expiring, err := f.tokend.Svc.CreateToken(context.Background(), &f.tokend.Admin.Token, tokend.TokenInput{Name: "soon",
		Expiry:      tokend.Expiry{Set: true, At: ptr(time.Now().Add(time.Hour))},
		Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: f.tokend.AccountID, Level: tokend.Viewer}}})
	if err != nil {
		t.Fatal(err)
	}
	if a := f.get("/any", bearer(expiring.Value)); a.status != 200 {
		t.Fatalf("expiring token before its time: %d", a.status)
	}
	clock.Advance(2 * time.Hour) // the middleware's clock: tokend still has it valid
	cases := []struct {
		name   string
		header http.Header
		status int
		code   string
	}{
		{"no credential", nil, 401, "missing_api_key"},
		{"not bearer", http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}, 401, "invalid_api_key"},
		{"two tokens", http.Header{"Api-Token": {tok.Value}, "Authorization": {"Bearer " + f.tokend.Admin.Value}}, 401, "invalid_api_key"},
		{"malformed", bearer("tk_live_short"), 401, "invalid_api_key"},
		{"unknown", bearer(other.Admin.Value), 401, "invalid_api_key"},
		{"expired, from memory", bearer(expiring.Value), 401, "expired_api_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := f.get("/any", c.header)
			if a.status != c.status || a.code != c.code || a.body["status"] != float64(c.status) || a.body["error"] == "" {
				t.Fatalf("%d %v, want %d %s", a.status, a.body, c.status, c.code)
			}
		})
	}
	before := f.verifies.Load()
	f.get("/any", bearer("tk_live_short"))
	f.get("/any", bearer(other.Admin.Value))
	if n := f.verifies.Load() - before; n != 0 {
		t.Fatalf("a malformed token and a known-unknown one asked tokend %d times", n)
	}
}

func TestMiddlewarePermissions(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{})
	ctx := context.Background()
	p, err := f.tokend.Svc.CreateProject(ctx, &f.tokend.Admin.Token, "Billing")
	if err != nil {
		t.Fatal(err)
	}
	q, err := f.tokend.Svc.CreateProject(ctx, &f.tokend.Admin.Token, "Other")
	if err != nil {
		t.Fatal(err)
	}
	tok := f.tokend.Token(t, "billing", tokend.Permission{ResourceType: tokend.ResourceProject, ResourceID: p.ID, Level: tokend.Viewer})
	if a := f.get(fmt.Sprintf("/projects/%d", p.ID), bearer(tok.Value)); a.status != 200 {
		t.Fatalf("own project: %d %v", a.status, a.body)
	}
	for range 3 {
		if a := f.get(fmt.Sprintf("/projects/%d", q.ID), bearer(tok.Value)); a.status != 403 || a.code != "insufficient_permissions" {
			t.Fatalf("another project: %d %v", a.status, a.body)
		}
	}
	// Granting the permission takes effect at once: the edit is an event.
	if _, err := f.tokend.Svc.UpdateToken(ctx, &f.tokend.Admin.Token, tok.ID, tokend.TokenPatch{Permissions: &[]tokend.Permission{
		{ResourceType: tokend.ResourceProject, ResourceID: q.ID, Level: tokend.Viewer}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.get(fmt.Sprintf("/projects/%d", q.ID), bearer(tok.Value)).status == 200 })
	if a := f.get(fmt.Sprintf("/projects/%d", p.ID), bearer(tok.Value)); a.status != 403 {
		t.Fatalf("a permission taken away still passes: %d", a.status)
	}
}

func TestMiddlewareRefusesARevokedTokenOnceTheEventArrives(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{AuthFailureLimit: 1000})
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		revoke func(tok *tokend.IssuedToken) error
	}{
		{"deleted", func(tok *tokend.IssuedToken) error {
			return f.tokend.Svc.DeleteToken(ctx, &f.tokend.Admin.Token, tok.ID)
		}},
		{"revoked by an operator", func(tok *tokend.IssuedToken) error {
			_, err := f.tokend.Svc.RevokeToken(ctx, tok.ID, "ops", false)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := f.tokend.Token(t, "doomed")
			if a := f.get("/any", bearer(tok.Value)); a.status != 200 {
				t.Fatal(a.status)
			}
			if err := c.revoke(tok); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return f.get("/any", bearer(tok.Value)).status == 401 })
			for range 20 {
				if a := f.get("/any", bearer(tok.Value)); a.status != 401 {
					t.Fatalf("a revoked token passed again: %d", a.status)
				}
			}
		})
	}
}

// Without the change stream, memory is not trusted: every request asks
// tokend, so a revocation still applies at once.
func TestMiddlewareWithoutTheStreamAsksTokend(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{})
	tok := f.tokend.Token(t, "user")
	f.get("/any", bearer(tok.Value))
	f.blockStreams()
	if f.auth.CachedTokens() != 0 {
		t.Fatal("the cache survived the stream's loss")
	}
	before := f.verifies.Load()
	for range 5 {
		if a := f.get("/any", bearer(tok.Value)); a.status != 200 {
			t.Fatal(a.status)
		}
	}
	if n := f.verifies.Load() - before; n != 5 {
		t.Fatalf("5 requests without the stream asked tokend %d times, want 5", n)
	}
	if err := f.tokend.Svc.DeleteToken(context.Background(), &f.tokend.Admin.Token, tok.ID); err != nil {
		t.Fatal(err)
	}
	if a := f.get("/any", bearer(tok.Value)); a.status != 401 {
		t.Fatalf("deleted while the stream was down: %d", a.status)
	}
	f.unblockStreams()
	other := f.tokend.Token(t, "other")
	f.get("/any", bearer(other.Value))
	before = f.verifies.Load()
	f.get("/any", bearer(other.Value))
	if f.verifies.Load() != before {
		t.Fatal("the cache is not used once the stream is back")
	}
}

func TestMiddlewareWhenTokendIsDown(t *testing.T) {
	for _, c := range []struct {
		name     string
		url      string
		requests int
	}{
		{"nothing listens", "http://127.0.0.1:1", 30}, // more than the failure budget
		{"never answers", "http://" + testutil.Silent(t, "127.0.0.1:0"), 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, _ := client.New(c.url, "tk_live_whatever", client.WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond}))
			auth, _ := middleware.New(cl, middleware.Options{})
			h := auth.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("passed") }))
			for range c.requests { // never throttled: the failure is tokend's, not the client's
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				h.ServeHTTP(rec, req)
				if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
					t.Fatalf("tokend unreachable: %d %v %s", rec.Code, rec.Header(), rec.Body)
				}
			}
		})
	}
}

// The plan limit is the account's in tokend, not this process's: the
// middleware's change stream spent one of its 5 requests a minute (the
// middleware's own token is the account's), so 4 pass, and the refusal
// says so as tokend's own would.
func TestMiddlewarePlanLimit(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{RateLimit: 5}, middleware.Options{})
	tok := f.tokend.Token(t, "user")
	for i := range 4 {
		if a := f.get("/any", bearer(tok.Value)); a.status != 200 {
			t.Fatalf("request %d: %d %v", i+1, a.status, a.body)
		}
	}
	a := f.get("/any", bearer(tok.Value))
	if a.status != 429 || a.code != "rate_limited" || a.header.Get("Retry-After") == "" ||
		a.header.Get("X-Ratelimit-Limit") != "5" || a.header.Get("X-Ratelimit-Remaining") != "0" || a.header.Get("X-Ratelimit-Reset") == "" {
		t.Fatalf("request 5: %d %v %v", a.status, a.body, a.header)
	}
	// tokend refuses the account's next request too: the limit is spent there.
	req, _ := http.NewRequest("GET", f.tokend.URL+"/api/whoami", nil)
	req.Header.Set("Api-Token", f.tokend.Admin.Value)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 {
		t.Fatalf("tokend's own API after the middleware spent the limit: %d", res.StatusCode)
	}
}

// Several processes in front of one tokend admit together what tokend
// alone would, and every request they admit or refuse is in the token's
// usage.
func TestMiddlewareLimitsAcrossProcesses(t *testing.T) {
	const limit, procs, each = 60, 3, 40
	tk := testutil.Tokend(t, testutil.TokendOptions{RateLimit: limit})
	var auths []*middleware.Authenticator
	for i := range procs {
		auths = append(auths, middlewaretest.Start(t, tk.URL, tk.Token(t, fmt.Sprint("gateway ", i)).Value, middleware.Options{}))
	}
	// Each stream spent one request of the account's limit.
	tok := tk.Token(t, "user")
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for _, auth := range auths {
		h := auth.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		for range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("Authorization", "Bearer "+tok.Value)
				h.ServeHTTP(rec, req)
				switch rec.Code {
				case 200:
					admitted.Add(1)
				case 429:
					refused.Add(1)
				default:
					t.Errorf("%d %s", rec.Code, rec.Body)
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("admitted %d, refused %d", admitted.Load(), refused.Load())
	// The limit refills one request a second: a slow run may admit a few more.
	if n := admitted.Load(); n < limit-procs || n > limit-procs+3 {
		t.Errorf("%d processes admitted %d of %d requests; tokend alone would admit %d (the streams spent %d)", procs, n, procs*each, limit-procs, procs)
	}
	// Every request, admitted or refused, reaches the token's usage.
	want := map[tokend.Outcome]int64{tokend.OutcomeSuccess: admitted.Load(), tokend.OutcomeRateLimited: refused.Load()}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := usageOf(t, tk, tok.ID)
		if got[tokend.OutcomeSuccess] == want[tokend.OutcomeSuccess] && got[tokend.OutcomeRateLimited] == want[tokend.OutcomeRateLimited] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage %v, want %v", got, want)
		}
	}
}

// usageOf is token id's usage today by outcome, as tokend reports it.
func usageOf(t *testing.T, tk *testutil.TokendServer, id int64) map[tokend.Outcome]int64 {
	t.Helper()
	u, err := tk.Svc.Usage(context.Background(), &tk.Admin.Token, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[tokend.Outcome]int64{}
	for _, c := range u.Counts {
		out[c.Outcome] += c.Count
	}
	return out
}

func TestMiddlewareThrottlesGuessing(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{AuthFailureLimit: 5})
	other := testutil.Tokend(t, testutil.TokendOptions{})
	guesses := make([]string, 8)
	for i := range guesses {
		guesses[i] = other.Token(t, fmt.Sprint("guess ", i)).Value // well-formed, unknown here
	}
	ok := f.tokend.Token(t, "ok").Value
	f.get("/any", bearer(ok)) // verified before the guessing starts
	var statuses []int
	for _, g := range guesses {
		statuses = append(statuses, f.get("/any", bearer(g)).status)
	}
	want := []int{401, 401, 401, 401, 401, 429, 429, 429}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	// A token this middleware verified already still passes from the
	// address; a new one waits, like any other guess.
	if a := f.get("/any", bearer(ok)); a.status != 200 {
		t.Fatalf("valid token after guesses: %d %v", a.status, a.body)
	}
	if a := f.get("/any", bearer(f.tokend.Token(t, "new").Value)); a.status != 429 || a.code != "auth_throttled" {
		t.Fatalf("new token from a throttled address: %d %v", a.status, a.body)
	}
}

// testToken is a well-formed token value no tokend knows.
var testToken = func() string {
	f, _ := apikey.NewFormat("tk")
	v, _ := f.Generate("live")
	return v
}()

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("not within 5 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// A burst of one valid token from one address, with nothing cached, shares
// verifications and reservations: none of it is throttled.
func TestMiddlewareBurstOfAValidTokenIsNeverThrottled(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{AuthFailureLimit: 5})
	tok := f.tokend.Token(t, "user")
	f.blockStreams() // every request asks tokend
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", f.service.URL+"/any", nil)
			req.Header.Set("Authorization", "Bearer "+tok.Value)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d of the burst: %d", i, s)
		}
	}
}

// Past its TTL a token is asked about again, once: the fresh answer is
// what memory then answers from.
func TestMiddlewareRefreshesATokenPastItsTTL(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f := newFixture(t, testutil.TokendOptions{}, middleware.Options{Now: clock.Now, TTL: time.Minute})
	tok := f.tokend.Token(t, "user")
	asks := func() int64 { return f.verifies.Load() }
	f.get("/any", bearer(tok.Value))
	before := asks()
	clock.Advance(2 * time.Minute)
	for range 5 {
		if a := f.get("/any", bearer(tok.Value)); a.status != 200 {
			t.Fatal(a.status)
		}
	}
	if n := asks() - before; n != 1 {
		t.Fatalf("5 requests past the TTL asked tokend %d times, want 1", n)
	}
}
