package storetest

import (
	"context"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// A token's guards are stored with it and come back from every lookup;
// an update replaces or removes them.
func testGuardsRoundTrip(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	tok := newToken(t, s, a.ID)
	tok.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	tok.RateLimit = &tokend.Rate{Limit: 5, Per: 10 * time.Second}
	tok.Quota = &tokend.Quota{Limit: 1000, Period: tokend.QuotaMonth, Unit: tokend.QuotaEmails}
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(ctx, tok) })
	check := func(got *tokend.Token, want *tokend.Token) {
		t.Helper()
		if !reflect.DeepEqual(got.AllowedIPs, want.AllowedIPs) || !reflect.DeepEqual(got.RateLimit, want.RateLimit) || !reflect.DeepEqual(got.Quota, want.Quota) {
			t.Errorf("guards: got %v %+v %+v, want %v %+v %+v", got.AllowedIPs, got.RateLimit, got.Quota, want.AllowedIPs, want.RateLimit, want.Quota)
		}
	}
	got, err := s.TokenByHash(ctx, tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	check(got, tok)
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Token(ctx, tok.ID)
		if err == nil {
			check(got, tok)
		}
		return err
	})
	tok.AllowedIPs, tok.RateLimit, tok.Quota = nil, nil, nil
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(ctx, tok) })
	if got, err = s.TokenByHash(ctx, tok.Hash); err != nil {
		t.Fatal(err)
	}
	check(got, tok)
}

// A quota is spent all or none, never beyond its limit however many spend
// at once; a new period starts from zero, an older one is refused, a
// refund gives units back, and listings carry what was spent.
func testQuotaSpends(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	tok := newToken(t, s, a.ID)
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)

	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, spent, err := s.SpendQuota(ctx, tok.ID, day, 25, 1)
			if err != nil {
				t.Error(err)
			}
			if spent {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 25 {
		t.Fatalf("40 parallel spends of a quota of 25: %d passed", ok.Load())
	}
	if used, spent, err := s.SpendQuota(ctx, tok.ID, day, 25, 1); err != nil || spent || used != 25 {
		t.Fatalf("spend over the quota: used %d, spent %v, %v", used, spent, err)
	}
	if err := s.RefundQuota(ctx, tok.ID, day, 3); err != nil {
		t.Fatal(err)
	}
	if used, spent, err := s.SpendQuota(ctx, tok.ID, day, 25, 4); err != nil || spent || used != 22 {
		t.Fatalf("4 with 3 left: used %d, spent %v, %v (all or none)", used, spent, err)
	}
	if used, spent, err := s.SpendQuota(ctx, tok.ID, day, 25, 3); err != nil || !spent || used != 25 {
		t.Fatalf("3 with 3 left: used %d, spent %v, %v", used, spent, err)
	}
	if used, spent, err := s.SpendQuota(ctx, tok.ID, day, 25, 26); err != nil || spent || used != 25 {
		t.Fatalf("more than the whole quota: used %d, spent %v, %v", used, spent, err)
	}
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Token(ctx, tok.ID)
		if err == nil && (got.QuotaUsed == nil || got.QuotaUsed.Used != 25 || !got.QuotaUsed.Start.Equal(day)) {
			t.Errorf("the token's quota usage: %+v, want 25 since %v", got.QuotaUsed, day)
		}
		return err
	})

	// Another token goes on from what this one spent (a reset).
	next := newToken(t, s, a.ID)
	write(t, s, func(tx tokend.Tx) error { return tx.CopyQuotaUsage(ctx, tok.ID, next.ID) })
	if used, spent, err := s.SpendQuota(ctx, next.ID, day, 30, 5); err != nil || !spent || used != 30 {
		t.Fatalf("the copy's spend: used %d, spent %v, %v; want 30 after 25 copied", used, spent, err)
	}

	tomorrow := day.AddDate(0, 0, 1)
	if used, spent, err := s.SpendQuota(ctx, tok.ID, tomorrow, 25, 2); err != nil || !spent || used != 2 {
		t.Fatalf("the next day: used %d, spent %v, %v", used, spent, err)
	}
	if _, spent, err := s.SpendQuota(ctx, tok.ID, day, 25, 1); err != nil || spent {
		t.Fatalf("a spend in the period before the stored one passed (%v, %v)", spent, err)
	}
	if err := s.RefundQuota(ctx, tok.ID, day, 10); err != nil {
		t.Fatal(err)
	}
	if used, _, _ := s.SpendQuota(ctx, tok.ID, tomorrow, 25, 1); used != 3 {
		t.Fatalf("a refund for an old period changed the new one: used %d, want 3", used)
	}
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteToken(ctx, tok.ID) })
}
