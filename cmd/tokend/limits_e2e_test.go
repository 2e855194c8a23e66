package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/middlewaretest"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/middleware"
)

// Three gateways and a Go middleware in front of two tokend instances on
// one PostgreSQL and one Redis admit together what one tokend would of a
// token's plan limit (within 5%), answer the rest as tokend does, and every
// request they admit or refuse is in the token's usage. With tokend gone
// they refuse: the documented policy is to fail closed.
func TestGatewaysShareTheLimitAndUsage(t *testing.T) {
	url := testutil.Postgres(t)
	redis := testutil.Redis(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	// Test keys get the plan's own 100 requests a minute, on a limit of
	// their own that the live admin and service tokens do not spend.
	args := []string{"--db", url, "--secrets-key-file", key, "--redis", redis.URL, "--redis-timeout", "1s",
		"--test-rate-multiplier", "1", "--usage-flush", "100ms", "--auth-failure-limit", "1000000"}
	a := tokend.Serve(t, nil, args...)
	admin := a.WaitToken(t) // the Default account, free plan: 100 requests a minute
	b := tokend.Serve(t, nil, args...)
	_, service := newToken(t, a.URL, admin, fmt.Sprintf(viewerToken, "gateways"))
	userID, user := newToken(t, a.URL, admin,
		`{"name": "user", "environment": "test", "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 10}]}`)
	up, _ := echoUpstream(t)

	var fronts []string
	for i := range 3 {
		tk := []string{a.URL, b.URL}[i%2]
		gw := tokend.Start(t, []string{"TOKEND_TOKEN=" + service}, "proxy", "--addr", "127.0.0.1:0",
			"--upstream", up.URL, "--tokend", tk, "--auth-failure-limit", "1000000")
		fronts = append(fronts, gw.URL+"/v1/x")
	}
	auth := middlewaretest.Start(t, b.URL, service, middleware.Options{AuthFailureLimit: 1000000})
	svc := httptest.NewServer(auth.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	t.Cleanup(svc.Close)
	fronts = append(fronts, svc.URL)

	type answer struct {
		status int
		header http.Header
		body   string
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(url string) answer {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+user)
		res, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return answer{}
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header, string(body)}
	}
	var ok, limited atomic.Int64
	var mu sync.Mutex
	var refusal *answer
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch an := get(fronts[i%4]); an.status {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
				mu.Lock()
				refusal = &an
				mu.Unlock()
			default:
				t.Errorf("%s answered %d %s", fronts[i%4], an.status, an.body)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// GCRA admits the burst of 100 plus one request per 600 ms that passed.
	want := 100 + int64(elapsed/(600*time.Millisecond))
	if n := ok.Load(); n < 95 || n > want+5 {
		t.Errorf("3 gateways and a middleware admitted %d of 300 in %v, want the plan's 100 (within 5%%, up to %d)", n, elapsed, want)
	}
	t.Logf("admitted %d, limited %d, in %v", ok.Load(), limited.Load(), elapsed)

	// A refusal reads as tokend's own: the same code and message, the
	// limit's headers.
	own := get(a.URL + "/api/whoami")
	if own.status != 429 || refusal == nil {
		t.Fatalf("tokend itself, after the run: %d; a refusal: %v", own.status, refusal)
	}
	var mine, theirs struct {
		Error, Code string
		Status      int
	}
	json.Unmarshal([]byte(refusal.body), &mine)
	json.Unmarshal([]byte(own.body), &theirs)
	if mine != theirs || mine.Code != "rate_limited" {
		t.Errorf("refusal %s, tokend's %s", refusal.body, own.body)
	}
	for _, h := range []string{"Retry-After", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} {
		if refusal.header.Get(h) == "" {
			t.Errorf("a refusal lacks %s: %v", h, refusal.header)
		}
	}
	if got := refusal.header.Get("X-Ratelimit-Limit"); got != own.header.Get("X-Ratelimit-Limit") {
		t.Errorf("X-Ratelimit-Limit %s, tokend's %s", got, own.header.Get("X-Ratelimit-Limit"))
	}

	// Every request is in the token's usage, on either instance (asked
	// twice a second: the admin's requests spend the account's live limit),
	// with the one refused by tokend itself above.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		code, out := call(t, "GET", fmt.Sprintf("%s/api/api_tokens/%d/usage", b.URL, userID), admin, "")
		var u struct {
			Days []struct {
				Success     int64 `json:"success"`
				RateLimited int64 `json:"rate_limited"`
			} `json:"days"`
		}
		json.Unmarshal([]byte(out), &u)
		var s, l int64
		for _, d := range u.Days {
			s, l = s+d.Success, l+d.RateLimited
		}
		if code == 200 && s == ok.Load() && l == limited.Load()+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage %d %s, want %d success and %d rate_limited", code, out, ok.Load(), limited.Load()+1)
		}
	}

	// tokend gone: every front refuses with 503 once it has noticed, not
	// passes.
	a.Stop(t)
	b.Stop(t)
	for _, f := range fronts {
		var last answer
		waitFor(t, 15*time.Second, f+" refusing with tokend gone", func() bool {
			last = get(f)
			return last.status == 503
		})
		var body struct{ Code string }
		json.Unmarshal([]byte(last.body), &body)
		if body.Code != "unavailable" || last.header.Get("Retry-After") == "" {
			t.Errorf("%s with tokend gone: %d %s", f, last.status, last.body)
		}
	}
}
