package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/middlewaretest"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/middleware"
)

// fromHeader makes the middleware take the client address from a test
// header, so that one test speaks from many addresses.
var fromHeader = middleware.Options{ClientAddr: func(r *http.Request) string { return r.Header.Get("X-Test-Client") }}

func (f *fixture) guarded(g tokend.GuardsInput) *tokend.IssuedToken {
	f.t.Helper()
	tok, err := f.tokend.Svc.CreateToken(context.Background(), &f.tokend.Admin.Token, tokend.TokenInput{Name: "guarded",
		Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: f.tokend.AccountID, Level: tokend.Viewer}}, Guards: g})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func some[T any](v T) *T { return &v }

func from(token, ip string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "X-Test-Client": {ip}}
}

// The middleware holds a token's guards as tokend does, from memory where
// it can: allowed_ips on its own client address, the token's rate limit,
// and a quota spent in tokend request by request.
func TestMiddlewareEnforcesGuards(t *testing.T) {
	type step struct {
		ip     string
		status int
		code   string
	}
	cases := []struct {
		name   string
		guards tokend.GuardsInput
		steps  []step
	}{
		{"allowed_ips", tokend.GuardsInput{AllowedIPs: &[]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}}, []step{
			{"203.0.113.5", 200, ""}, {"203.0.113.6", 200, ""}, {"2001:db8::1", 200, ""},
			{"198.51.100.1", 403, "ip_not_allowed"}, {"2001:db9::1", 403, "ip_not_allowed"}, {"203.0.113.7", 200, ""},
		}},
		{"rate_limit", tokend.GuardsInput{RateLimit: some(&tokend.Rate{Limit: 2, Per: time.Hour})}, []step{
			{"192.0.2.1", 200, ""}, {"192.0.2.1", 200, ""}, {"192.0.2.1", 429, "token_rate_limited"},
		}},
		{"quota", tokend.GuardsInput{Quota: some(&tokend.Quota{Limit: 3, Period: tokend.QuotaDay, Unit: tokend.QuotaRequests})}, []step{
			{"192.0.2.1", 200, ""}, {"192.0.2.1", 200, ""}, {"192.0.2.1", 200, ""}, {"192.0.2.1", 429, "quota_exceeded"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testutil.TokendOptions{}, fromHeader)
			tok := f.guarded(tc.guards)
			for i, s := range tc.steps {
				if a := f.get("/any", from(tok.Value, s.ip)); a.status != s.status || a.code != s.code {
					t.Fatalf("request %d from %s: %d %q %v, want %d %q", i+1, s.ip, a.status, a.code, a.body, s.status, s.code)
				}
			}
		})
	}
}

// Requests of a token with a quota each spend it in tokend, however many
// arrive at once: exactly the quota passes.
func TestMiddlewareQuotaIsExactUnderConcurrency(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, fromHeader)
	tok := f.guarded(tokend.GuardsInput{Quota: some(&tokend.Quota{Limit: 25, Period: tokend.QuotaMonth, Unit: tokend.QuotaRequests})})
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := f.get("/any", from(tok.Value, "192.0.2.1"))
			mu.Lock()
			statuses[a.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[200] != 25 || statuses[429] != 35 {
		t.Errorf("60 parallel requests of a quota of 25: %v", statuses)
	}
}

// A change to a token's guards reaches the middleware through the change
// stream: an address allowed a moment ago is refused at once after.
func TestMiddlewareFollowsGuardChanges(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, fromHeader)
	tok := f.guarded(tokend.GuardsInput{})
	if a := f.get("/any", from(tok.Value, "198.51.100.1")); a.status != 200 {
		t.Fatalf("before: %d %v", a.status, a.body)
	}
	only := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	if _, err := f.tokend.Svc.UpdateToken(context.Background(), &f.tokend.Admin.Token, tok.ID, tokend.TokenPatch{Guards: tokend.GuardsInput{AllowedIPs: &only}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := f.get("/any", from(tok.Value, "198.51.100.1"))
		if a.status == 403 && a.code == "ip_not_allowed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the change: %d %v", a.status, a.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := f.get("/any", from(tok.Value, "203.0.113.9")); a.status != 200 {
		t.Errorf("from inside the new list: %d %v", a.status, a.body)
	}
}

// A refusal the middleware holds in memory ends with the change that lifts
// it: a token whose quota is used up passes again once the quota is raised.
func TestMiddlewareLiftsARefusalOnChange(t *testing.T) {
	f := newFixture(t, testutil.TokendOptions{}, fromHeader)
	tok := f.guarded(tokend.GuardsInput{Quota: some(&tokend.Quota{Limit: 1, Period: tokend.QuotaMonth, Unit: tokend.QuotaRequests})})
	for i, want := range []int{200, 429, 429} {
		if a := f.get("/any", from(tok.Value, "192.0.2.1")); a.status != want {
			t.Fatalf("request %d: %d %v, want %d", i+1, a.status, a.body, want)
		}
	}
	raised := &tokend.Quota{Limit: 10, Period: tokend.QuotaMonth, Unit: tokend.QuotaRequests}
	if _, err := f.tokend.Svc.UpdateToken(context.Background(), &f.tokend.Admin.Token, tok.ID, tokend.TokenPatch{Guards: tokend.GuardsInput{Quota: &raised}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := f.get("/any", from(tok.Value, "192.0.2.1"))
		if a.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the quota was raised: %d %v", a.status, a.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And from memory, once answers of the changed token are cached again
	// (2 s after a change).
	time.Sleep(2100 * time.Millisecond)
	for i, want := range []int{200, 200, 200} {
		if a := f.get("/any", from(tok.Value, "192.0.2.1")); a.status != want {
			t.Fatalf("after the change, request %d: %d %v, want %d", i+1, a.status, a.body, want)
		}
	}
}

// A request over its token's quota is refused as tokend refuses it (GET
// /api/whoami): the same status, code, message (the quota and when it
// refills) and Retry-After, whether the middleware learnt of it from a usage
// report (a token it admitted before) or from a verification (a token it
// had not seen).
func TestMiddlewareQuotaRefusalIsTokends(t *testing.T) {
	for _, limit := range []int64{1, 2} {
		t.Run(strconv.FormatInt(limit, 10), func(t *testing.T) {
			f := newFixture(t, testutil.TokendOptions{}, fromHeader)
			tok := f.guarded(tokend.GuardsInput{Quota: some(&tokend.Quota{Limit: limit, Period: tokend.QuotaDay, Unit: tokend.QuotaRequests})})
			for i := range limit {
				if a := f.get("/any", from(tok.Value, "192.0.2.1")); a.status != 200 {
					t.Fatalf("request %d: %d %v", i+1, a.status, a.body)
				}
			}
			fromReport := f.get("/any", from(tok.Value, "192.0.2.1"))

			other := middlewaretest.Start(t, f.tokend.URL, f.tokend.Token(t, "other").Value, fromHeader)
			srv := httptest.NewServer(other.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
			t.Cleanup(srv.Close)
			fromVerify := (&fixture{t: t, service: srv}).get("/any", from(tok.Value, "192.0.2.1"))

			req, _ := http.NewRequest("GET", f.tokend.URL+"/api/whoami", nil)
			req.Header.Set("Api-Token", tok.Value)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			want := answer{status: res.StatusCode, header: res.Header}
			json.NewDecoder(res.Body).Decode(&want.body)
			if want.status != 429 || want.body["code"] != "quota_exceeded" || !strings.Contains(fmt.Sprint(want.body["error"]), "refills at") {
				t.Fatalf("tokend: %d %v", want.status, want.body)
			}
			wantRetry, _ := strconv.Atoi(want.header.Get("Retry-After"))
			for name, a := range map[string]answer{"from a usage report": fromReport, "from a verification": fromVerify} {
				if a.status != want.status || !reflect.DeepEqual(a.body, want.body) {
					t.Errorf("%s: %d %v, tokend %d %v", name, a.status, a.body, want.status, want.body)
				}
				if retry, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || retry < wantRetry || retry > wantRetry+2 {
					t.Errorf("%s: Retry-After %q, tokend %q", name, a.header.Get("Retry-After"), want.header.Get("Retry-After"))
				}
			}
		})
	}
}
