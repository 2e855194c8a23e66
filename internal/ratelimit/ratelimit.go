// Package ratelimit implements the generic cell rate algorithm (GCRA), the
// sliding-window limiter tokend uses for plan limits and failed-authentication
// throttling.
//
// A limit of N per period admits a burst of N from a rested key and then one
// request every period/N. Over any window of length w a key gets at most
// N + ⌊w·N/period⌋ + 1 requests: never the 2N within a moment that a fixed
// window admits across its boundary. A rested key may use its burst and then
// the steady rate, so its first period can see up to 2N-1. State is one
// atomic timestamp per key, found without a lock once the key exists, so
// decisions on one busy key contend only on that timestamp.
package ratelimit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter decides whether a key may make one more request. The zero value is
// not usable; create one with New.
type Limiter[K comparable] struct {
	period time.Duration
	// epoch is what times are measured from. Differences of times that carry
	// a monotonic reading (time.Now's) use it, so a step of the wall clock
	// cannot push keys' arrival times ahead.
	epoch time.Time
	cells sync.Map // K → *cell
}

// cell holds a key's theoretical arrival time of the next conforming
// request, in nanoseconds since the epoch: unset (long ago) for a new cell,
// swept once Sweep removed it.
type cell struct {
	tat atomic.Int64
}

const (
	swept = math.MinInt64
	unset = math.MinInt64 / 2
)

func newCell() *cell {
	c := new(cell)
	c.tat.Store(unset)
	return c
}

// New returns a limiter whose limits are counts per period, keyed by K.
func New[K comparable](period time.Duration) *Limiter[K] {
	return &Limiter[K]{period: period, epoch: time.Now()}
}

func (l *Limiter[K]) since(now time.Time) int64 { return int64(now.Sub(l.epoch)) }

// Decision is the outcome of one Take or Peek.
type Decision struct {
	Allowed bool
	Limit   int
	// Remaining is how many more requests (units) the key could make right
	// now; when a TakeN is refused, the units left, fewer than it asked for.
	Remaining int
	// RetryAfter is how long to wait before the next request is allowed (0 when allowed).
	RetryAfter time.Duration
	// Reset is how long until the key is back to a full burst of Limit.
	Reset time.Duration
}

// cellOf returns key's cell, creating it when create is set (nil otherwise).
func (l *Limiter[K]) cellOf(key K, create bool) *cell {
	if c, ok := l.cells.Load(key); ok {
		return c.(*cell)
	}
	if !create {
		return nil
	}
	c, _ := l.cells.LoadOrStore(key, newCell())
	return c.(*cell)
}

// Take spends one request of key's limit at now if it conforms.
func (l *Limiter[K]) Take(key K, limit int, now time.Time) Decision {
	return l.decide(key, limit, 1, l.period, now, true)
}

// TakeN spends n units of key's limit at once (the recipients of one send,
// say), all or none: they conform if, after them, the key is no more than
// one period ahead of now. n above limit never conforms.
func (l *Limiter[K]) TakeN(key K, limit, n int, now time.Time) Decision {
	return l.decide(key, limit, max(n, 1), l.period, now, true)
}

// TakeNPer is TakeN for a limit counted per period rather than the
// limiter's own. A key must always be spent with one period.
func (l *Limiter[K]) TakeNPer(key K, limit, n int, period time.Duration, now time.Time) Decision {
	return l.decide(key, limit, max(n, 1), period, now, true)
}

// Peek reports whether key could take one request at now, without spending it.
func (l *Limiter[K]) Peek(key K, limit int, now time.Time) Decision {
	return l.decide(key, limit, 1, l.period, now, false)
}

func (l *Limiter[K]) decide(key K, limit, n int, per time.Duration, now time.Time, spend bool) Decision {
	if limit <= 0 || n > limit {
		return Decision{Limit: limit, RetryAfter: per, Reset: per}
	}
	interval := max(int64(per/time.Duration(limit)), 1)
	cost := interval * int64(n)
	period, t := int64(per), l.since(now)
	for {
		c := l.cellOf(key, spend)
		old := int64(unset)
		if c != nil {
			if old = c.tat.Load(); old == swept {
				l.cells.CompareAndDelete(key, c) // Sweep is removing it: the key gets a new cell
				continue
			}
		}
		tat := max(old, t)
		next := tat + cost
		// The request conforms if, after it, the key is no more than one period ahead of now.
		if allowAt := next - period; t < allowAt {
			// What is left may be less than n but more than none.
			return Decision{Limit: limit, Remaining: max(int((period-(tat-t))/interval), 0),
				RetryAfter: time.Duration(allowAt - t), Reset: time.Duration(tat - t)}
		}
		if !spend {
			next = tat
		} else if !c.tat.CompareAndSwap(old, next) {
			continue // another request of the key went first
		}
		return Decision{
			Allowed:   true,
			Limit:     limit,
			Remaining: int((period - (next - t)) / interval),
			Reset:     time.Duration(next - t),
		}
	}
}

// Refund gives back one request that Take spent for key at now, for a
// reservation that turned out not to count (a throttle charged before a lookup
// that then succeeded). It never gives a key more than a rested key has.
func (l *Limiter[K]) Refund(key K, limit int, now time.Time) { l.RefundN(key, limit, 1, now) }

// RefundN gives back n units that TakeN spent, as Refund gives back one.
func (l *Limiter[K]) RefundN(key K, limit, n int, now time.Time) {
	l.RefundNPer(key, limit, n, l.period, now)
}

// RefundNPer is RefundN for a limit TakeNPer spent per period.
func (l *Limiter[K]) RefundNPer(key K, limit, n int, period time.Duration, now time.Time) {
	if limit <= 0 || n <= 0 {
		return
	}
	interval := max(int64(period/time.Duration(limit)), 1) * int64(n)
	c := l.cellOf(key, false)
	if c == nil {
		return
	}
	for {
		old := c.tat.Load()
		if old == swept {
			return
		}
		next := max(old-interval, l.since(now)) // a time in the past is a rested key
		if next >= old || c.tat.CompareAndSwap(old, next) {
			return
		}
	}
}

// Sweep forgets keys that are fully rested at now; they behave exactly as
// unknown keys. Call it periodically to bound memory.
func (l *Limiter[K]) Sweep(now time.Time) {
	t := l.since(now)
	l.cells.Range(func(k, v any) bool {
		c := v.(*cell)
		if old := c.tat.Load(); old <= t && c.tat.CompareAndSwap(old, swept) {
			l.cells.CompareAndDelete(k, c)
		}
		return true
	})
}

// Len is the number of keys held, for tests and metrics.
func (l *Limiter[K]) Len() int {
	n := 0
	l.cells.Range(func(_, v any) bool {
		if v.(*cell).tat.Load() != swept {
			n++
		}
		return true
	})
	return n
}
