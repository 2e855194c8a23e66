package redis_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/redis"
	"github.com/tokend/tokend/internal/testutil"
)

func newLimits(t *testing.T, url string, opts redis.Options) *redis.Limits {
	t.Helper()
	l, err := redis.New(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Three instances' limiters on one Redis admit the limit together, as one
// in-memory limiter does alone: a burst of exactly the limit, then nothing.
func TestLimitHoldsAcrossInstances(t *testing.T) {
	srv := testutil.Redis(t)
	var instances []*redis.Limits
	for range 3 {
		// A generous timeout: this test is about counting together, and a
		// call timed out under the race detector would count in memory.
		instances = append(instances, newLimits(t, srv.URL, redis.Options{Timeout: 2 * time.Second}))
	}
	const limit = 100
	// 100 an hour: one more every 36 s, so a slow run cannot see a refill.
	rate := tokend.Rate{Limit: limit, Per: time.Hour}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := instances[i%3].TakeN(context.Background(), "token:1", rate, 1)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != limit {
		t.Errorf("300 requests over three instances admitted %d, want exactly %d", n, limit)
	}
	d, _ := instances[0].TakeN(context.Background(), "token:1", rate, 1)
	if d.Allowed || d.RetryAfter <= 35*time.Second || d.RetryAfter > 36*time.Second || d.Limit != limit {
		t.Errorf("after the burst: %+v, want refused with a retry within one interval (36 s)", d)
	}
	// Another key is untouched; remaining counts down.
	d, _ = instances[1].TakeN(context.Background(), "plan:2:live", tokend.PerMinute(limit), 1)
	if !d.Allowed || d.Remaining != limit-1 {
		t.Errorf("a fresh key: %+v", d)
	}
	// A limit past a microsecond's resolution still answers sensibly.
	if d, err := instances[0].TakeN(context.Background(), "plan:3:live", tokend.PerMinute(1_000_000_000), 1); err != nil || !d.Allowed || d.Remaining <= 0 || d.Remaining > 1_000_000_000 {
		t.Errorf("a huge limit: %+v %v", d, err)
	}
	// A refund gives one back.
	instances[2].RefundN(context.Background(), "token:1", rate, 1)
	if d, _ := instances[2].TakeN(context.Background(), "token:1", rate, 1); !d.Allowed {
		t.Errorf("after a refund: %+v", d)
	}
}

func TestRedisDownFollowsThePolicy(t *testing.T) {
	srv := testutil.Redis(t)
	var states []string
	var mu sync.Mutex
	state := func(s string) { mu.Lock(); states = append(states, s); mu.Unlock() }
	open := newLimits(t, srv.URL, redis.Options{Policy: redis.FailOpen, OpenFor: 200 * time.Millisecond, State: state})
	closed := newLimits(t, srv.URL, redis.Options{Policy: redis.FailClosed, OpenFor: 200 * time.Millisecond})
	srv.Stop()
	ctx := context.Background()
	for i := range 5 {
		d, err := open.TakeN(ctx, "k", tokend.PerMinute(3), 1)
		if err != nil {
			t.Fatalf("open policy, Redis down: %v", err)
		}
		if want := i < 3; d.Allowed != want { // counted in memory: the limit still holds here
			t.Errorf("open policy take %d: allowed %v, want %v", i, d.Allowed, want)
		}
		if _, err := closed.TakeN(ctx, "k", tokend.PerMinute(3), 1); err == nil {
			t.Errorf("closed policy take %d with Redis down: no error", i)
		}
	}
	// The circuit is open: a call costs nothing while it is.
	start := time.Now()
	for range 100 {
		closed.TakeN(ctx, "k", tokend.PerMinute(3), 1)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("100 takes with the circuit open took %v", d)
	}
	srv.Start(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := closed.TakeN(ctx, "k2", tokend.PerMinute(3), 1); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis is back, but the closed policy still refuses after 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		open.TakeN(ctx, "k3", tokend.PerMinute(3), 1)
		mu.Lock()
		n := len(states)
		mu.Unlock()
		if n >= 2 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 2 || states[0] != "open" || states[len(states)-1] != "closed" {
		t.Errorf("circuit states %v, want open then closed", states)
	}
}

// A Redis that takes connections and never answers holds a request no longer
// than the timeout.
func TestSlowRedisIsBounded(t *testing.T) {
	srv := testutil.Redis(t)
	l := newLimits(t, srv.URL, redis.Options{Policy: redis.FailOpen, Timeout: 30 * time.Millisecond})
	srv.Stop()
	testutil.Silent(t, srv.Addr) // silent, on Redis's address
	start := time.Now()
	d, err := l.TakeN(context.Background(), "k", tokend.PerMinute(10), 1)
	if err != nil || !d.Allowed {
		t.Errorf("open policy against a silent Redis: %+v %v", d, err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a take against a silent Redis took %v", took)
	}
}

// TakeN spends several units at once across instances, all or none: a
// message allowance of 100 admits exactly twenty sends of five recipients,
// however they are spread.
func TestTakeNHoldsAcrossInstances(t *testing.T) {
	srv := testutil.Redis(t)
	var instances []*redis.Limits
	for range 3 {
		instances = append(instances, newLimits(t, srv.URL, redis.Options{Timeout: 2 * time.Second}))
	}
	const limit, n = 100, 5
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := instances[i%3].TakeN(context.Background(), "messages:1:live", tokend.PerMinute(limit), n)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got != limit/n {
		t.Errorf("60 sends of %d over three instances admitted %d, want exactly %d", n, got, limit/n)
	}
	// Refused with what is left (nothing) and a retry of five units' time
	// (3 s) less what passed since the sends (under 2 s, however slow the run).
	d, err := instances[0].TakeN(context.Background(), "messages:1:live", tokend.PerMinute(limit), n)
	if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= time.Second || d.RetryAfter > 3*time.Second {
		t.Errorf("after the allowance: %+v %v", d, err)
	}
	// A refund of 7 lets 5 through and leaves 2.
	if err := instances[1].RefundN(context.Background(), "messages:1:live", tokend.PerMinute(limit), 7); err != nil {
		t.Fatal(err)
	}
	d, _ = instances[2].TakeN(context.Background(), "messages:1:live", tokend.PerMinute(limit), n)
	if !d.Allowed || d.Remaining != 2 {
		t.Errorf("after a refund of 7: %+v", d)
	}
	// Refused with the 2 that are left.
	if d, _ = instances[0].TakeN(context.Background(), "messages:1:live", tokend.PerMinute(limit), 3); d.Allowed || d.Remaining != 2 {
		t.Errorf("3 of the 2 left: %+v", d)
	}
	// More than the whole limit never passes, even on a fresh key.
	if d, err := instances[0].TakeN(context.Background(), "messages:2:live", tokend.PerMinute(limit), limit+1); err != nil || d.Allowed {
		t.Errorf("more than the limit on a fresh key: %+v %v", d, err)
	}
	if d, err := instances[0].TakeN(context.Background(), "messages:2:live", tokend.PerMinute(limit), limit); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Errorf("the whole limit on a fresh key: %+v %v", d, err)
	}
}
