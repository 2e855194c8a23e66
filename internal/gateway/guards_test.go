package gateway_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// The gateway holds a token's guards as tokend does: allowed_ips against
// its client's address, the token's rate limit, and its quota.
func TestGatewayEnforcesGuards(t *testing.T) {
	rate := &tokend.Rate{Limit: 2, Per: time.Hour}
	quota := &tokend.Quota{Limit: 2, Period: tokend.QuotaDay, Unit: tokend.QuotaRequests}
	cases := []struct {
		name   string
		guards tokend.GuardsInput
		want   []int
		code   string
	}{
		{"allowed_ips elsewhere", tokend.GuardsInput{AllowedIPs: &[]netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, []int{403, 403}, "ip_not_allowed"},
		{"allowed_ips here", tokend.GuardsInput{AllowedIPs: &[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, []int{200, 200, 200}, ""},
		{"rate_limit", tokend.GuardsInput{RateLimit: &rate}, []int{200, 200, 429}, "token_rate_limited"},
		{"quota", tokend.GuardsInput{Quota: &quota}, []int{200, 200, 429}, "quota_exceeded"},
	}
	base := newFixture(t, "", false)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := base.tokend.Svc.CreateToken(context.Background(), &base.tokend.Admin.Token, tokend.TokenInput{Name: "guarded",
				Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: base.tokend.AccountID, Level: tokend.Viewer}}, Guards: tc.guards})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				status, _, body := base.do("GET", "/x", http.Header{"Api-Token": {tok.Value}})
				if status != want || status != 200 && body["code"] != tc.code {
					t.Fatalf("request %d: %d %v, want %d %q", i+1, status, body, want, tc.code)
				}
				// tokend's own message (GET /api/whoami's), which says when the quota refills.
				if msg, _ := body["error"].(string); status == 429 && tc.code == "quota_exceeded" &&
					!strings.HasPrefix(msg, "This token's quota of 2 requests a day is used up; it refills at ") {
					t.Fatalf("request %d: %q, not tokend's message", i+1, msg)
				}
			}
		})
	}
}
