// Package ratelimit implements the generic cell rate algorithm (GCRA), the
// sliding-window limiter tokend uses for plan limits and failed-authentication
// throttling.
//
// A limit of N per period admits a burst of N from a rested key and then one
// request every period/N. Over any window of length w a key gets at most
// N + ⌊w·N/period⌋ + 1 requests: never the 2N within a moment that a fixed
// window admits across its boundary. A rested key may use its burst and then
// the steady rate, so its first period can see up to 2N-1. State is one
// timestamp per key, in sharded maps, so decisions on different keys do not contend.
package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

const shards = 64

// Limiter decides whether a key may make one more request. The zero value is
// not usable; create one with New.
type Limiter[K comparable] struct {
	period time.Duration
	seed   maphash.Seed
	shards [shards]shard[K]
}

type shard[K comparable] struct {
	mu  sync.Mutex
	tat map[K]time.Time // theoretical arrival time of the next conforming request
}

// New returns a limiter whose limits are counts per period, keyed by K.
func New[K comparable](period time.Duration) *Limiter[K] {
	l := &Limiter[K]{period: period, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tat = make(map[K]time.Time)
	}
	return l
}

// Decision is the outcome of one Take or Peek.
type Decision struct {
	Allowed bool
	Limit   int
	// Remaining is how many more requests the key could make right now.
	Remaining int
	// RetryAfter is how long to wait before the next request is allowed (0 when allowed).
	RetryAfter time.Duration
	// Reset is how long until the key is back to a full burst of Limit.
	Reset time.Duration
}

func (l *Limiter[K]) shard(key K) *shard[K] {
	return &l.shards[maphash.Comparable(l.seed, key)%shards]
}

// Take spends one request of key's limit at now if it conforms.
func (l *Limiter[K]) Take(key K, limit int, now time.Time) Decision {
	return l.decide(key, limit, now, true)
}

// Peek reports whether key could take one request at now, without spending it.
func (l *Limiter[K]) Peek(key K, limit int, now time.Time) Decision {
	return l.decide(key, limit, now, false)
}

func (l *Limiter[K]) decide(key K, limit int, now time.Time, spend bool) Decision {
	if limit <= 0 {
		return Decision{Limit: limit, RetryAfter: l.period, Reset: l.period}
	}
	interval := l.period / time.Duration(limit)
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat := s.tat[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	// The request conforms if, after it, the key is no more than one period ahead of now.
	if allowAt := next.Add(-l.period); now.Before(allowAt) {
		return Decision{Limit: limit, RetryAfter: allowAt.Sub(now), Reset: tat.Sub(now)}
	}
	if spend {
		s.tat[key] = next
	} else {
		next = tat
	}
	return Decision{
		Allowed:   true,
		Limit:     limit,
		Remaining: int((l.period - next.Sub(now)) / interval),
		Reset:     next.Sub(now),
	}
}

// Refund gives back one request that Take spent for key at now, for a
// reservation that turned out not to count (a throttle charged before a lookup
// that then succeeded). It never gives a key more than a rested key has.
func (l *Limiter[K]) Refund(key K, limit int, now time.Time) {
	if limit <= 0 {
		return
	}
	interval := l.period / time.Duration(limit)
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	if !ok {
		return
	}
	if tat = tat.Add(-interval); tat.After(now) {
		s.tat[key] = tat
	} else {
		delete(s.tat, key)
	}
}

// Sweep forgets keys that are fully rested at now; they behave exactly as
// unknown keys. Call it periodically to bound memory.
func (l *Limiter[K]) Sweep(now time.Time) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, tat := range s.tat {
			if !tat.After(now) {
				delete(s.tat, k)
			}
		}
		s.mu.Unlock()
	}
}

// Len is the number of keys held, for tests and metrics.
func (l *Limiter[K]) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
