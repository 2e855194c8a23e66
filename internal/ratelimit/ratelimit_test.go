package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBurstThenSteadyRate(t *testing.T) {
	l := New[string](time.Minute)
	for i := 0; i < 100; i++ {
		d := l.Take("k", 100, t0)
		if !d.Allowed || d.Remaining != 99-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, 99-i)
		}
	}
	d := l.Take("k", 100, t0)
	if d.Allowed || d.RetryAfter != 600*time.Millisecond || d.Reset != time.Minute {
		t.Fatalf("101st request: %+v, want refused, retry after 600ms, reset in 1m", d)
	}
	// One more every 600 ms.
	if d := l.Take("k", 100, t0.Add(599*time.Millisecond)); d.Allowed {
		t.Fatalf("at 599ms: %+v", d)
	}
	if d := l.Take("k", 100, t0.Add(600*time.Millisecond)); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("at 600ms: %+v", d)
	}
}

// Over any window of length w at most N + ⌊w·N/period⌋ + 1 requests are
// admitted; a fixed window would admit 2N within a second across its boundary.
func TestWindowBound(t *testing.T) {
	l := New[string](time.Minute)
	var admitted []time.Time
	for ms := 0; ms < 5*60_000; ms += 50 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if l.Take("k", 100, now).Allowed {
			admitted = append(admitted, now)
		}
	}
	for _, w := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		bound := 100 + int(w/(600*time.Millisecond)) + 1
		for i := range admitted {
			n := 0
			for j := i; j < len(admitted) && admitted[j].Sub(admitted[i]) < w; j++ {
				n++
			}
			if n > bound {
				t.Fatalf("%d requests admitted within %v of %v, bound %d", n, w, admitted[i], bound)
			}
		}
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l := New[string](time.Minute)
	for i := 0; i < 5; i++ {
		l.Take("a", 5, t0)
	}
	if l.Take("a", 5, t0).Allowed {
		t.Fatal("a exceeded its limit")
	}
	if !l.Take("b", 5, t0).Allowed {
		t.Fatal("b was limited by a's requests")
	}
}

func TestPeekDoesNotSpend(t *testing.T) {
	l := New[string](time.Minute)
	for i := 0; i < 10; i++ {
		if d := l.Peek("k", 1, t0); !d.Allowed {
			t.Fatalf("peek %d refused", i)
		}
	}
	l.Take("k", 1, t0)
	if l.Peek("k", 1, t0).Allowed {
		t.Fatal("peek allowed after the only request was spent")
	}
}

func TestConcurrentBurstAdmitsExactlyLimit(t *testing.T) {
	l := New[string](time.Minute)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 130; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Take("k", 100, t0).Allowed {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 {
		t.Fatalf("admitted %d of 130 concurrent requests, want 100", ok.Load())
	}
}

func TestSweepForgetsRestedKeys(t *testing.T) {
	l := New[string](time.Minute)
	l.Take("a", 10, t0)
	l.Take("b", 1, t0)
	l.Sweep(t0.Add(6 * time.Second)) // a is rested after 6s, b after 60s
	if l.Len() != 1 {
		t.Fatalf("%d keys after sweep, want 1", l.Len())
	}
}

func TestZeroLimitRefusesAll(t *testing.T) {
	if New[string](time.Minute).Take("k", 0, t0).Allowed {
		t.Fatal("a zero limit admitted a request")
	}
}

func BenchmarkTake(b *testing.B) {
	type key struct {
		account int64
		test    bool
	}
	l := New[key](time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		l.Take(key{1, false}, 1<<30, t0)
	}
}

func TestRefundGivesBackOneRequest(t *testing.T) {
	l := New[string](time.Minute)
	now := t0
	for i := 0; i < 3; i++ {
		l.Take("k", 3, now)
	}
	if d := l.Take("k", 3, now); d.Allowed {
		t.Fatal("a fourth request within the burst of 3 was allowed")
	}
	l.Refund("k", 3, now)
	if d := l.Take("k", 3, now); !d.Allowed {
		t.Fatal("the refunded request was not available again")
	}
	// Refunds never make a key better than rested.
	for i := 0; i < 10; i++ {
		l.Refund("fresh", 3, now)
	}
	admitted := 0
	for i := 0; i < 10; i++ {
		if l.Take("fresh", 3, now).Allowed {
			admitted++
		}
	}
	if admitted != 3 {
		t.Errorf("after refunds a rested key admitted %d, want its burst of 3", admitted)
	}
}

// TakeN spends several units at once, all or none, at the same rate as
// that many single takes.
func TestTakeNSpendsAllOrNone(t *testing.T) {
	l := New[string](time.Minute)
	if d := l.TakeN("k", 100, 60, t0); !d.Allowed || d.Remaining != 40 || d.Limit != 100 {
		t.Fatalf("60 of 100: %+v", d)
	}
	// 41 do not fit in the 40 left: refused, nothing spent, and the retry is
	// when one more unit has come back (600 ms per unit at 100 a minute).
	if d := l.TakeN("k", 100, 41, t0); d.Allowed || d.RetryAfter != 600*time.Millisecond || d.Remaining != 40 {
		t.Fatalf("41 of the 40 left: %+v", d)
	}
	if d := l.TakeN("k", 100, 40, t0); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("the 40 left: %+v", d)
	}
	if d := l.Take("k", 100, t0); d.Allowed {
		t.Fatalf("a single take after the whole limit: %+v", d)
	}
	// Ten units come back over 6 s.
	if d := l.TakeN("k", 100, 10, t0.Add(6*time.Second)); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("10 after 6 s: %+v", d)
	}
	// More than the whole limit never conforms, even on a rested key.
	if d := l.TakeN("rested", 100, 101, t0); d.Allowed {
		t.Fatalf("101 of 100 on a rested key: %+v", d)
	}
	if d := l.TakeN("rested", 100, 100, t0); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("the whole limit on a rested key: %+v", d)
	}
}

func TestRefundNGivesBackUnits(t *testing.T) {
	l := New[string](time.Minute)
	l.TakeN("k", 10, 10, t0)
	l.RefundN("k", 10, 4, t0)
	if d := l.TakeN("k", 10, 5, t0); d.Allowed {
		t.Fatalf("5 after a refund of 4: %+v", d)
	}
	if d := l.TakeN("k", 10, 4, t0); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("the 4 refunded: %+v", d)
	}
	// Never beyond rested.
	l.RefundN("k", 10, 100, t0)
	if d := l.TakeN("k", 10, 10, t0); !d.Allowed {
		t.Fatalf("after a large refund: %+v", d)
	}
	if d := l.Take("k", 10, t0); d.Allowed {
		t.Fatalf("a refund made the key better than rested: %+v", d)
	}
}

// A key spent per its own period (a token's "3 per 10 s") has the burst of
// its limit and refills at period/limit, whatever the limiter's period.
func TestTakeNPerCountsInItsOwnPeriod(t *testing.T) {
	l := New[string](time.Minute)
	for i := range 3 {
		if d := l.TakeNPer("k", 3, 1, 10*time.Second, t0); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	interval := 10 * time.Second / 3
	d := l.TakeNPer("k", 3, 1, 10*time.Second, t0)
	if d.Allowed || d.RetryAfter != 4*interval-10*time.Second || d.Reset != 3*interval {
		t.Fatalf("4th request: %+v, want refused, retry after 3.33s, reset in 10s", d)
	}
	l.RefundNPer("k", 3, 1, 10*time.Second, t0)
	if d := l.TakeNPer("k", 3, 1, 10*time.Second, t0); !d.Allowed {
		t.Fatalf("after a refund: %+v", d)
	}
	if d := l.TakeNPer("k", 3, 1, 10*time.Second, t0.Add(interval)); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("one interval later: %+v", d)
	}
}
