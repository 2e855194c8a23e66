package client_test

import (
	"testing"
	"time"

	"github.com/tokend/tokend/client"
)

// The client sets, reads, changes and removes a token's guards; VerifyFrom
// checks allowed_ips against the address given; UnusedTokens lists the
// tokens that made no request lately.
func TestGuardsThroughTheClient(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)
	tok, err := admin.CreateToken(ctx, client.NewToken{Name: "office",
		Permissions: []client.Permission{perm("account", e.acme, client.Viewer)},
		AllowedIPs:  []string{"203.0.113.0/24", "2001:db8::/32"},
		RateLimit:   &client.TokenRateLimit{Limit: 100, PeriodSeconds: 60},
		Quota:       &client.Quota{Limit: 1000, Period: client.QuotaMonth, Unit: client.QuotaRequests}})
	ok(t, err)
	if len(tok.AllowedIPs) != 2 || tok.RateLimit == nil || tok.RateLimit.Limit != 100 || tok.Quota == nil ||
		tok.Quota.Remaining == nil || *tok.Quota.Remaining != 1000 || tok.Quota.ResetsAt == nil {
		t.Fatalf("created: %+v %+v %+v", tok.AllowedIPs, tok.RateLimit, tok.Quota)
	}
	for _, tt := range []struct{ ip, code string }{
		{"203.0.113.9", client.CodeValid},
		{"2001:db8::1", client.CodeValid},
		{"198.51.100.1", client.CodeIPNotAllowed},
		{"", client.CodeIPNotAllowed},
	} {
		v, err := admin.VerifyFrom(ctx, tok.Value, tt.ip)
		ok(t, err)
		if v.Code != tt.code || len(v.AllowedIPs) != 2 || v.TokenRateLimit == nil || v.Quota == nil {
			t.Errorf("verify from %q: %+v, want %s with the guards", tt.ip, v, tt.code)
		}
	}
	got, err := admin.UpdateToken(ctx, tok.ID, client.TokenUpdate{AllowedIPs: &[]string{}, RemoveRateLimit: true,
		Quota: &client.Quota{Limit: 5, Period: client.QuotaDay, Unit: client.QuotaEmails}})
	ok(t, err)
	if len(got.AllowedIPs) != 0 || got.RateLimit != nil || got.Quota == nil || got.Quota.Unit != client.QuotaEmails {
		t.Errorf("updated: %+v %+v %+v", got.AllowedIPs, got.RateLimit, got.Quota)
	}
	got, err = admin.UpdateToken(ctx, tok.ID, client.TokenUpdate{RemoveQuota: true})
	ok(t, err)
	if got.Quota != nil || got.Name != "office" {
		t.Errorf("after removing the quota: %+v", got)
	}
	e.clock.Advance(100 * 24 * time.Hour)
	unused, err := admin.UnusedTokens(ctx, 0)
	ok(t, err)
	if len(unused) != 1 || unused[0].ID != tok.ID {
		t.Errorf("unused after 100 days: %+v", unused)
	}
	if unused, err = admin.UnusedTokens(ctx, 365); err != nil || len(unused) != 0 {
		t.Errorf("unused for a year: %+v %v", unused, err)
	}
}
