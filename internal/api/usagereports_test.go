package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/client"
)

type leaseJSON struct {
	TokenID      int64  `json:"token_id"`
	Code         string `json:"code"`
	Reason       string `json:"reason"`
	Granted      int    `json:"granted"`
	RetryAfterMS int64  `json:"retry_after_ms"`
	RateLimit    *struct {
		Limit     int `json:"limit"`
		Remaining int `json:"remaining"`
	} `json:"ratelimit"`
	Quota *struct {
		Remaining *int64 `json:"remaining"`
	} `json:"quota"`
}

// report sends one usage report of the caller's and returns its leases.
func (e *env) reportUsage(caller string, reports ...map[string]any) []leaseJSON {
	e.t.Helper()
	var out struct {
		Leases []leaseJSON `json:"leases"`
	}
	e.post("/api/usage_reports", caller, map[string]any{"reports": reports}).want(200).decode(&out)
	if len(out.Leases) != len(reports) {
		e.t.Fatalf("%d leases for %d reports", len(out.Leases), len(reports))
	}
	return out.Leases
}

// want asks for a lease of n requests of token (a value).
func want(token string, n int) map[string]any {
	return map[string]any{"token_sha256": client.TokenSHA256(token), "want": n}
}

// A lease is spent in the token's limits when it is granted: as much as the
// tightest of its own rate limit, its quota of requests and its account's
// plan limit allows, then nothing, with the limit that refused and how long
// until one more request would be granted.
func TestUsageReportLeases(t *testing.T) {
	cases := []struct {
		name   string
		guards map[string]any
		asks   []int // successive wants
		want   []leaseJSON
	}{
		{"plan limit", nil, []int{6, 6, 1}, []leaseJSON{
			{Code: "VALID", Granted: 6}, {Code: "VALID", Granted: 4}, {Code: "RATE_LIMITED", Reason: "rate_limited", RetryAfterMS: 6000}}},
		{"own rate limit", map[string]any{"rate_limit": map[string]any{"limit": 3, "period_seconds": 3600}}, []int{5, 1}, []leaseJSON{
			{Code: "VALID", Granted: 3}, {Code: "RATE_LIMITED", Reason: "token_rate_limited", RetryAfterMS: 1_200_000}}},
		{"quota of requests", map[string]any{"quota": map[string]any{"limit": 4, "period": "day"}}, []int{3, 3, 1}, []leaseJSON{
			{Code: "VALID", Granted: 3}, {Code: "VALID", Granted: 1}, {Code: "USAGE_EXCEEDED", Reason: "quota_exceeded", RetryAfterMS: 11 * 3_600_000}}}, // at 13:00, the day ends in 11 hours
		{"nothing asked", nil, []int{0}, []leaseJSON{{Code: "VALID"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withPlan(tokend.PlanEnterprise, 10))
			tok := e.guarded(tc.guards)
			service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10)).Token
			e.clock.Advance(time.Hour) // the plan limit is whole again
			for i, n := range tc.asks {
				got := e.reportUsage(service, want(tok.Token, n))[0]
				w := tc.want[i]
				if got.TokenID != tok.ID || got.Code != w.Code || got.Reason != w.Reason || got.Granted != w.Granted || got.RetryAfterMS != w.RetryAfterMS {
					t.Fatalf("ask %d for %d: %+v, want %+v", i+1, n, got, w)
				}
			}
		})
	}
}

// A lease spends the account's plan limit, which tokend's own API shares.
func TestUsageReportLeaseSpendsThePlanLimit(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 10))
	tok := e.createToken(e.admin, "user", perm("account", e.acme, 10))
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10)).Token
	e.clock.Advance(time.Hour)
	l := e.reportUsage(service, want(tok.Token, 9))[0]
	if l.Granted != 9 || l.RateLimit == nil || l.RateLimit.Limit != 10 || l.RateLimit.Remaining != 1 {
		t.Fatalf("lease: %+v %+v", l, l.RateLimit)
	}
	e.get("/api/accounts", tok.Token).want(200)
	r := e.get("/api/accounts", tok.Token).want(429)
	if r.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Errorf("headers after the lease: %v", r.Header)
	}
}

// Reported requests go to the token's usage, by outcome; a token of another
// account is NOT_FOUND and its counts go nowhere; an expired one is EXPIRED
// (its counts kept: the requests were made before).
func TestUsageReportCounts(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "user", perm("account", e.acme, 10))
	var soon apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "soon", "expires_at": e.clock.Now().Add(time.Minute),
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&soon)
	theirs := e.createToken(e.otherAdmin, "theirs", perm("account", e.other, 10))
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10)).Token
	e.clock.Advance(2 * time.Minute)
	counts := map[string]int64{"success": 7, "rate_limited": 2, "client_error": 1}
	leases := e.reportUsage(service,
		map[string]any{"token_sha256": client.TokenSHA256(tok.Token), "requests": counts, "want": 1},
		map[string]any{"token_sha256": client.TokenSHA256(theirs.Token), "requests": counts, "want": 1},
		map[string]any{"token_sha256": client.TokenSHA256(soon.Token), "requests": map[string]int64{"success": 2}, "want": 1},
		want("tk_live_nosuchtoken", 1))
	for i, w := range []leaseJSON{{TokenID: tok.ID, Code: "VALID", Granted: 1}, {Code: "NOT_FOUND"},
		{TokenID: soon.ID, Code: "EXPIRED"}, {Code: "NOT_FOUND"}} {
		if l := leases[i]; l.TokenID != w.TokenID || l.Code != w.Code || l.Granted != w.Granted || l.RateLimit != nil && w.Code != "VALID" {
			t.Errorf("lease %d: %+v, want %+v", i, l, w)
		}
	}
	for _, c := range []struct {
		name                         string
		caller                       string
		id                           int64
		success, limited, clientErrs int64
	}{
		{"the account's token", e.admin, tok.ID, 7, 2, 1},
		{"the expired token", e.admin, soon.ID, 2, 0, 0},
		{"another account's token", e.otherAdmin, theirs.ID, 0, 0, 0},
	} {
		var u usageJSON
		e.get(e.path("/api/api_tokens/%d/usage", c.id), c.caller).want(200).decode(&u)
		var got [3]int64
		for _, d := range u.Days {
			got[0], got[1], got[2] = got[0]+d.Success, got[1]+d.RateLimited, got[2]+d.ClientError
		}
		if got != [3]int64{c.success, c.limited, c.clientErrs} {
			t.Errorf("%s: usage %v, want %v", c.name, got, [3]int64{c.success, c.limited, c.clientErrs})
		}
	}
}

// Tokens a report names that are not the account's spend the caller's
// allowance of verifications that find no valid token, one as each is
// found: a report that allowance cannot pay for is 429, and nothing of it
// counts.
func TestUsageReportMissesSpendTheCallersAllowance(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 5))
	tok := e.createToken(e.admin, "user", perm("account", e.acme, 10))
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10)).Token
	e.clock.Advance(time.Hour)
	var reports []map[string]any
	for i := range 6 {
		reports = append(reports, want(fmt.Sprint("tk_live_guess", i), 1))
	}
	reports = append(reports, map[string]any{"token_sha256": client.TokenSHA256(tok.Token), "requests": map[string]int64{"success": 3}, "want": 1})
	r := e.post("/api/usage_reports", service, map[string]any{"reports": reports}).want(429)
	if r.Header.Get("Retry-After") == "" || r.Header.Get("X-Ratelimit-Limit") != "5" {
		t.Errorf("headers: %v", r.Header)
	}
	var u usageJSON
	e.get(e.path("/api/api_tokens/%d/usage", tok.ID), e.admin).want(200).decode(&u)
	if len(u.Days) != 0 {
		t.Errorf("a refused report counted: %+v", u.Days)
	}
	// Once the allowance is whole again, five misses fit; the plan limit
	// itself is untouched by them.
	e.clock.Advance(time.Hour)
	if l := e.reportUsage(service, reports[1:]...); l[5].Code != "VALID" || l[5].Granted != 1 {
		t.Errorf("the account's token beside 5 misses: %+v", l[5])
	}
}

// Who may report, and what a report may hold.
func TestUsageReportRefusals(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "user", perm("account", e.acme, 10))
	p := e.createProject(e.admin, "Billing")
	projectOnly := e.createToken(e.admin, "project only", perm("project", p, 100)).Token
	many := make([]map[string]any, tokend.MaxUsageReports+1)
	for i := range many {
		many[i] = want(fmt.Sprint("tk_live_", i), 0)
	}
	hash := client.TokenSHA256(tok.Token)
	cases := []struct {
		name   string
		caller string
		body   any
		status int
		field  string // in the 422 body
	}{
		{"no token", "", map[string]any{"reports": []any{}}, 401, ""},
		{"not viewer on the account", projectOnly, map[string]any{"reports": []any{want(tok.Token, 1)}}, 403, ""},
		{"no reports", e.admin, map[string]any{}, 422, "reports"},
		{"too many tokens", e.admin, map[string]any{"reports": many}, 422, "reports"},
		{"token twice", e.admin, map[string]any{"reports": []any{want(tok.Token, 1), want(tok.Token, 2)}}, 422, "reports[1].token_sha256"},
		{"no token", e.admin, map[string]any{"reports": []any{map[string]any{"want": 1}}}, 422, "reports[0].token_sha256"},
		{"token id instead of its hash", e.admin, map[string]any{"reports": []any{map[string]any{"token_sha256": fmt.Sprint(tok.ID), "want": 1}}}, 422, "reports[0].token_sha256"},
		{"token value instead of its hash", e.admin, map[string]any{"reports": []any{map[string]any{"token_sha256": tok.Token, "want": 1}}}, 422, "reports[0].token_sha256"},
		{"lease too large", e.admin, map[string]any{"reports": []any{want(tok.Token, tokend.MaxLease+1)}}, 422, "reports[0].want"},
		{"negative lease", e.admin, map[string]any{"reports": []any{want(tok.Token, -1)}}, 422, "reports[0].want"},
		{"unknown outcome", e.admin, map[string]any{"reports": []any{map[string]any{"token_sha256": hash, "requests": map[string]int{"teapot": 1}}}}, 422, "reports[0].requests"},
		{"negative count", e.admin, map[string]any{"reports": []any{map[string]any{"token_sha256": hash, "requests": map[string]int{"success": -1}}}}, 422, "reports[0].requests.success"},
		{"not an object", e.admin, "reports", 422, "base"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post("/api/usage_reports", tc.caller, tc.body).want(tc.status)
			if tc.field != "" && !strings.Contains(string(r.Body), fmt.Sprintf("%q", tc.field)) {
				t.Errorf("the answer does not name %s: %s", tc.field, r.Body)
			}
		})
	}
	var u usageJSON
	e.get(e.path("/api/api_tokens/%d/usage", tok.ID), e.admin).want(200).decode(&u)
	if len(u.Days) != 0 {
		t.Errorf("refused reports counted: %+v", u.Days)
	}
}

// When a later limit grants less than an earlier one, what the earlier one
// spent beyond it goes back, and the limit that granted nothing is the one
// the answer names.
func TestUsageReportLeaseGivesBack(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 10))
	quota := e.guarded(map[string]any{"quota": map[string]any{"limit": 5, "period": "day"}})
	other := e.createToken(e.admin, "other", perm("account", e.acme, 10))
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10)).Token
	e.clock.Advance(time.Hour)
	// Another token takes 9 of the plan's 10: the quota grants 5, the plan 1.
	if l := e.reportUsage(service, want(other.Token, 9))[0]; l.Granted != 9 {
		t.Fatalf("the other token's lease: %+v", l)
	}
	l := e.reportUsage(service, want(quota.Token, 5))[0]
	if l.Code != "VALID" || l.Granted != 1 || l.Quota == nil || l.Quota.Remaining == nil || *l.Quota.Remaining != 4 {
		t.Fatalf("lease with the plan nearly spent: %+v, quota %+v", l, l.Quota)
	}
	// Now the plan grants none: the quota's 4 stay, and the plan is named.
	if l := e.reportUsage(service, want(quota.Token, 3))[0]; l.Code != "RATE_LIMITED" || l.Reason != "rate_limited" || l.RetryAfterMS != 6000 {
		t.Fatalf("lease with the plan spent: %+v", l)
	}
	e.clock.Advance(time.Hour)
	if l := e.reportUsage(service, want(quota.Token, 10))[0]; l.Code != "VALID" || l.Granted != 4 {
		t.Fatalf("lease once the plan is whole: %+v, want the quota's 4 left", l)
	}
}

// Test keys lease from their own plan limit, TestRateMultiplier (5) times
// the live one.
func TestUsageReportLeaseTestKey(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 10))
	var test apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "ci", "environment": "test",
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&test)
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 10)).Token
	e.clock.Advance(time.Hour)
	if l := e.reportUsage(service, want(test.Token, 100))[0]; l.Granted != 50 || l.RateLimit == nil || l.RateLimit.Limit != 50 {
		t.Fatalf("a test key's lease: %+v", l)
	}
	// The live limit is untouched.
	e.get("/api/accounts", e.admin).want(200)
}
