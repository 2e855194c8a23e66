package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// The change feed returns changes after an ID, oldest first, token and
// account changes alike; old changes can be deleted.
func testAuthChanges(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	last, err := s.LastAuthChange(ctx)
	if err != nil || last != 0 {
		t.Fatalf("LastAuthChange on an empty store = %d, %v", last, err)
	}
	want := []tokend.AuthChange{{TokenID: 7}, {AccountID: 3}, {TokenID: 9}}
	for i, c := range want {
		var id int64
		write(t, s, func(tx tokend.Tx) error {
			var err error
			id, err = tx.AddAuthChange(ctx, c, t0.Add(time.Duration(i)*time.Minute))
			return err
		})
		want[i].ID = id
	}
	all, err := s.AuthChangesSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("AuthChangesSince(0) = %+v, want 3 changes", all)
	}
	for i := range all {
		if all[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, all[i], want[i])
		}
		if i > 0 && all[i].ID <= all[i-1].ID {
			t.Errorf("changes out of order: %+v", all)
		}
	}
	if last, _ := s.LastAuthChange(ctx); last != all[2].ID {
		t.Errorf("LastAuthChange = %d, want %d", last, all[2].ID)
	}
	after, err := s.AuthChangesSince(ctx, all[0].ID)
	if err != nil || len(after) != 2 || after[0].ID != all[1].ID {
		t.Errorf("AuthChangesSince(first) = %+v, %v", after, err)
	}
	if none, _ := s.AuthChangesSince(ctx, all[2].ID); len(none) != 0 {
		t.Errorf("AuthChangesSince(last) = %+v, want none", none)
	}
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteAuthChangesBefore(ctx, t0.Add(90*time.Second)) })
	left, _ := s.AuthChangesSince(ctx, 0)
	if len(left) != 1 || left[0].ID != all[2].ID {
		t.Errorf("after deleting changes before t0+90s: %+v, want only the last", left)
	}
	// The highest ID is kept even when its rows are gone, so IDs never repeat.
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteAuthChangesBefore(ctx, t0.Add(time.Hour)) })
	write(t, s, func(tx tokend.Tx) error {
		_, err := tx.AddAuthChange(ctx, tokend.AuthChange{TokenID: 1}, t0)
		return err
	})
	if again, _ := s.AuthChangesSince(ctx, all[2].ID); len(again) != 1 {
		t.Errorf("a change recorded after a cleanup reused an old ID: %+v", again)
	}
}

// ForEachToken visits every token unexpired at now, in ID order, with its
// permissions in order and its account's limits.
func testForEachToken(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Beta")
	b.Plan, b.RateLimit, b.MessageLimit = tokend.PlanEnterprise, 7, 77
	write(t, s, func(tx tokend.Tx) error {
		return tx.SetPlan(context.Background(), b.ID, b.Plan, b.RateLimit, b.MessageLimit)
	})
	perms := []tokend.Permission{
		{ResourceType: tokend.ResourceSandbox, ResourceID: 5, Level: tokend.Admin},
		{ResourceType: tokend.ResourceAccount, ResourceID: a.ID, Level: tokend.Viewer},
		{ResourceType: tokend.ResourceDomain, ResourceID: 2, Level: tokend.Viewer},
	}
	first := newToken(t, s, a.ID, perms...)
	expired := newToken(t, s, a.ID)
	past := t0.Add(-time.Second)
	expired.ExpiresAt = &past
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(context.Background(), expired) })
	later := newToken(t, s, b.ID)
	future := t0.Add(time.Hour)
	later.ExpiresAt = &future
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(context.Background(), later) })

	var seen []*tokend.Token
	err := s.ForEachToken(context.Background(), t0, func(tk *tokend.Token) error {
		c := *tk
		c.Hash = append([]byte(nil), tk.Hash...)
		seen = append(seen, &c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0].ID != first.ID || seen[1].ID != later.ID {
		t.Fatalf("ForEachToken visited %v, want tokens %d and %d (not the expired %d)", tokenIDs(seen), first.ID, later.ID, expired.ID)
	}
	assertToken(t, seen[0], first)
	if seen[0].AccountLimit != a.RateLimit || seen[1].AccountLimit != b.RateLimit {
		t.Errorf("account limits %d, %d; want %d, %d", seen[0].AccountLimit, seen[1].AccountLimit, a.RateLimit, b.RateLimit)
	}
	if seen[0].AccountMessageLimit != a.MessageLimit || seen[1].AccountMessageLimit != b.MessageLimit {
		t.Errorf("account message limits %d, %d; want %d, %d", seen[0].AccountMessageLimit, seen[1].AccountMessageLimit, a.MessageLimit, b.MessageLimit)
	}
}

func tokenIDs(ts []*tokend.Token) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// Permissions come back in the order they were given, on create and after
// an update that reorders them, from every read path.
func testPermissionOrder(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	var perms []tokend.Permission
	for i := 10; i > 0; i-- {
		perms = append(perms, tokend.Permission{ResourceType: tokend.ResourceProject, ResourceID: int64(i * 7 % 11), Level: tokend.Viewer})
	}
	tok := newToken(t, s, a.ID, perms...)
	check := func(when string) {
		t.Helper()
		read(t, s, func(tx tokend.Tx) error {
			one, err := tx.Token(context.Background(), tok.ID)
			if err != nil {
				return err
			}
			assertToken(t, one, tok)
			list, err := tx.Tokens(context.Background(), a.ID)
			if err == nil {
				assertToken(t, &list[0], tok)
			}
			return err
		})
		byHash, err := s.TokenByHash(context.Background(), tok.Hash)
		if err != nil {
			t.Fatal(err)
		}
		assertToken(t, byHash, tok)
	}
	check("created")
	for i, j := 0, len(tok.Permissions)-1; i < j; i, j = i+1, j-1 {
		tok.Permissions[i], tok.Permissions[j] = tok.Permissions[j], tok.Permissions[i]
	}
	tok.Permissions = append(tok.Permissions[3:], tok.Permissions[:3]...)
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(context.Background(), tok) })
	check("reordered")
}
