package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// testDomainDNS: a domain's DNS state round-trips, a name is claimed
// (verified or trusted) by one account at most, due checks come oldest
// first, and domains without a state are listed.
func testDomainDNS(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a, b := newAccount(t, s, "Acme"), newAccount(t, s, "Beta")
	da := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	db := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: b.ID, Name: "example.com"})
	var missing []tokend.Resource
	write(t, s, func(tx tokend.Tx) error {
		var err error
		missing, err = tx.DomainsWithoutDNS(ctx)
		return err
	})
	if len(missing) != 2 {
		t.Fatalf("domains without DNS state: %v, want both", missing)
	}
	verified := t0.Add(time.Minute)
	stA := &tokend.DomainDNS{DomainID: da.ID, AccountID: a.ID, Name: "example.com", VerifyValue: "v-a",
		Records:     map[string]tokend.RecordCheck{"spf": {Status: tokend.RecordMismatch, Found: []string{"v=spf1 -all"}, Detail: "d"}},
		NextCheckAt: t0.Add(time.Hour)}
	stB := &tokend.DomainDNS{DomainID: db.ID, AccountID: b.ID, Name: "example.com", VerifyValue: "v-b", Records: map[string]tokend.RecordCheck{}, NextCheckAt: t0}
	write(t, s, func(tx tokend.Tx) error {
		if err := tx.CreateDomainDNS(ctx, stA); err != nil {
			return err
		}
		return tx.CreateDomainDNS(ctx, stB)
	})
	stA.VerifiedAt, stA.Failures, stA.Checks = &verified, 1, 3
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateDomainDNS(ctx, stA) })
	var got *tokend.DomainDNS
	var claimedForB, claimedForA bool
	var due []tokend.DomainDNS
	write(t, s, func(tx tokend.Tx) error {
		var err error
		if got, err = tx.DomainDNS(ctx, da.ID); err != nil {
			return err
		}
		if claimedForB, err = tx.DomainNameClaimed(ctx, "example.com", b.ID); err != nil {
			return err
		}
		if claimedForA, err = tx.DomainNameClaimed(ctx, "example.com", a.ID); err != nil {
			return err
		}
		due, err = tx.DueDomainDNS(ctx, t0.Add(2*time.Hour), 10)
		return err
	})
	if got.VerifyValue != "v-a" || got.VerifiedAt == nil || !got.VerifiedAt.Equal(verified) || got.Failures != 1 || got.Checks != 3 ||
		got.Records["spf"].Status != tokend.RecordMismatch || len(got.Records["spf"].Found) != 1 {
		t.Errorf("domain dns = %+v", got)
	}
	if !claimedForB || claimedForA {
		t.Errorf("claimed for the other account %v (want true), for the owner %v (want false)", claimedForB, claimedForA)
	}
	if len(due) != 2 || due[0].DomainID != db.ID {
		t.Errorf("due = %+v, want B's (due first) then A's", due)
	}
	// A second account verifying the same name is refused by the store itself.
	stB.VerifiedAt = &verified
	err := s.Write(ctx, func(tx tokend.Tx) error { return tx.UpdateDomainDNS(ctx, stB) })
	var e *tokend.Error
	if !errors.As(err, &e) || e.Code != tokend.EINVALID || len(e.Fields["domain_name"]) == 0 {
		t.Errorf("a second account verifying example.com: %v, want EINVALID on domain_name", err)
	}
}
