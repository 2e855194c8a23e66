package api_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// countingStore counts write transactions.
type countingStore struct {
	tokend.Store
	writes atomic.Int64
}

func (s *countingStore) Write(ctx context.Context, fn func(tokend.Tx) error) error {
	s.writes.Add(1)
	return s.Store.Write(ctx, fn)
}

type usageJSON struct {
	TokenID    int64      `json:"token_id"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Days       []struct {
		Date        string `json:"date"`
		Success     int64  `json:"success"`
		ClientError int64  `json:"client_error"`
		RateLimited int64  `json:"rate_limited"`
		ServerError int64  `json:"server_error"`
		Total       int64  `json:"total"`
	} `json:"days"`
}

func TestUsageAndLastUsed(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 6))
	tok := e.createToken(e.admin, "worker", perm("account", e.acme, 10))
	var before apiToken
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200).decode(&before)
	if before.LastUsedAt != nil {
		t.Fatalf("unused token has last_used_at %v", before.LastUsedAt)
	}
	// 3 successes, 1 client error, then the account's limit of 6 is spent
	// (admin used 2) and the token gets 429s.
	for i := 0; i < 3; i++ {
		e.get("/api/accounts", tok.Token).want(200)
	}
	e.get("/api/api_tokens/424242", tok.Token).want(404)
	e.get("/api/accounts", tok.Token).want(429)
	e.get("/api/accounts", tok.Token).want(429)
	e.clock.Advance(time.Hour) // refill, and a later use

	check := func(when string) {
		t.Helper()
		e.clock.Advance(time.Minute) // the admin's checks share the account's limit of 6
		var u usageJSON
		e.get(e.path("/api/api_tokens/%d/usage", tok.ID), e.admin).want(200).decode(&u)
		if len(u.Days) != 1 {
			t.Fatalf("%s: days = %+v", when, u.Days)
		}
		d := u.Days[0]
		if d.Date != "2026-03-01" || d.Success != 3 || d.ClientError != 1 || d.RateLimited != 2 || d.ServerError != 0 || d.Total != 6 {
			t.Errorf("%s: usage = %+v, want 3 success, 1 client error, 2 rate limited on 2026-03-01", when, d)
		}
		want := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		if u.LastUsedAt == nil || !u.LastUsedAt.Equal(want) {
			t.Errorf("%s: last_used_at = %v, want %v", when, u.LastUsedAt, want)
		}
		var got apiToken
		e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200).decode(&got)
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(want) {
			t.Errorf("%s: token last_used_at = %v, want %v", when, got.LastUsedAt, want)
		}
	}
	check("before the flush")
	if err := e.svc.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("after the flush")
	// A second flush adds nothing twice.
	if err := e.svc.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("after a second flush")
	// Only those who can see the token can see its usage.
	e.clock.Advance(time.Minute)
	e.get(e.path("/api/api_tokens/%d/usage", tok.ID), e.otherAdmin).want(404)
	e.get(e.path("/api/accounts/%d/api_tokens/%d/usage", e.acme, tok.ID), e.admin).want(200)
}

// Requests cost no store write: usage is counted in memory and one flush
// writes it all in a single transaction.
func TestUsageIsWrittenInBatches(t *testing.T) {
	counter := &countingStore{}
	e := newEnv(t, withStore(func(s tokend.Store) tokend.Store { counter.Store = s; return counter }))
	tok := e.createToken(e.admin, "busy", perm("account", e.acme, 10))
	writesBefore := counter.writes.Load()
	const n = 300
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.get("/api/accounts", tok.Token).want(200)
		}()
	}
	wg.Wait()
	if w := counter.writes.Load() - writesBefore; w != 0 {
		t.Fatalf("%d authenticated requests made %d store writes, want 0", n, w)
	}
	if err := e.svc.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w := counter.writes.Load() - writesBefore; w != 1 {
		t.Fatalf("the flush made %d store writes, want 1", w)
	}
	var u usageJSON
	e.get(e.path("/api/api_tokens/%d/usage", tok.ID), e.admin).want(200).decode(&u)
	if len(u.Days) != 1 || u.Days[0].Success != n {
		t.Fatalf("usage = %+v, want %d successes", u.Days, n)
	}
}

// Usage of a token deleted before the flush is dropped, not an error.
func TestFlushSkipsDeletedTokens(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "short-lived", perm("account", e.acme, 10))
	e.get("/api/accounts", tok.Token).want(200)
	e.del(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(204)
	if err := e.svc.FlushUsage(t.Context()); err != nil {
		t.Fatalf("flush after a delete: %v", err)
	}
}
