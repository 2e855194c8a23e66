package tokend

import (
	"sync"
	"sync/atomic"
)

// TokenCache holds what a process knows of verified tokens, by the SHA-256
// of their value, and a bounded set of hashes known not to exist, so that
// neither a valid token nor a repeated guess costs a lookup per request. It
// is the memory of every verifier: tokend's own (E is the token's
// principal) and the middleware's and gateway's in front of a remote tokend
// (E is what tokend answered). ids says which token and account an entry
// belongs to, for evictions.
//
// Correctness under concurrency: every eviction first bumps the generation,
// then finds the token through its id and deletes it, under the shard locks.
// A fill reads Gen before its lookup, then sets the id and only then the
// entry, each only if the generation is unchanged, under the same locks.
// Whatever the interleaving, a fill that raced a revocation either is
// skipped or leaves the id set before the eviction looks, so the token never
// comes back.
type TokenCache[E any] struct {
	gen      atomic.Uint64
	shards   [cacheShards]cacheShard[E]
	negLimit int // unknown hashes kept per shard
	ids      func(E) (token, account int64)
}

const cacheShards = 64

type cacheShard[E any] struct {
	mu      sync.RWMutex
	entries map[[32]byte]E
	byID    map[int64][32]byte
	unknown map[[32]byte]struct{}
}

// NegativeCacheSize is how many unknown hashes a TokenCache remembers in all.
const NegativeCacheSize = 1 << 17

// NewTokenCache returns an empty cache of entries that ids identifies.
func NewTokenCache[E any](ids func(E) (token, account int64)) *TokenCache[E] {
	c := &TokenCache[E]{negLimit: NegativeCacheSize / cacheShards, ids: ids}
	for i := range c.shards {
		c.shards[i].entries = make(map[[32]byte]E)
		c.shards[i].byID = make(map[int64][32]byte)
		c.shards[i].unknown = make(map[[32]byte]struct{})
	}
	return c
}

func (c *TokenCache[E]) shardOf(h *[32]byte) *cacheShard[E] {
	// The hash is already uniform: its first byte picks the shard.
	return &c.shards[uint(h[0])%cacheShards]
}

func (c *TokenCache[E]) idShard(id int64) *cacheShard[E] {
	return &c.shards[uint64(id)%cacheShards]
}

// Gen is the cache's generation, to read before a lookup whose answer will
// be put: any eviction since makes the put a no-op.
func (c *TokenCache[E]) Gen() uint64 { return c.gen.Load() }

// Get returns the entry for h (ok set), or reports whether h is known not
// to exist.
func (c *TokenCache[E]) Get(h *[32]byte) (e E, ok, unknown bool) {
	s := c.shardOf(h)
	s.mu.RLock()
	e, ok = s.entries[*h]
	if !ok {
		_, unknown = s.unknown[*h]
	}
	s.mu.RUnlock()
	return e, ok, unknown
}

// Put stores e under h unless an eviction happened since gen was read. When
// keep is not nil and says to keep the entry already cached for h, that one
// stays. It returns the entry cached for h after the call, and whether there
// is one.
func (c *TokenCache[E]) Put(h *[32]byte, e E, gen uint64, keep func(old E) bool) (E, bool) {
	id, _ := c.ids(e)
	is := c.idShard(id)
	is.mu.Lock()
	ok := c.gen.Load() == gen
	if ok {
		is.byID[id] = *h
	}
	is.mu.Unlock()
	if !ok {
		var zero E
		return zero, false
	}
	s := c.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		var zero E
		return zero, false
	}
	if old, found := s.entries[*h]; found && keep != nil && keep(old) {
		return old, true
	}
	s.entries[*h] = e
	return e, true
}

// PutUnknown remembers that h names no token, unless an eviction happened
// since gen was read. A full shard starts over rather than grow.
func (c *TokenCache[E]) PutUnknown(h *[32]byte, gen uint64) {
	s := c.shardOf(h)
	s.mu.Lock()
	if c.gen.Load() == gen {
		if len(s.unknown) >= c.negLimit {
			clear(s.unknown)
		}
		s.unknown[*h] = struct{}{}
	}
	s.mu.Unlock()
}

// ForgetUnknown removes h from the unknown set: its token now exists.
func (c *TokenCache[E]) ForgetUnknown(h *[32]byte) {
	c.gen.Add(1)
	s := c.shardOf(h)
	s.mu.Lock()
	delete(s.unknown, *h)
	s.mu.Unlock()
}

// EvictToken drops token id.
func (c *TokenCache[E]) EvictToken(id int64) {
	c.gen.Add(1)
	is := c.idShard(id)
	is.mu.Lock()
	h, ok := is.byID[id]
	delete(is.byID, id)
	is.mu.Unlock()
	if !ok {
		return
	}
	s := c.shardOf(&h)
	s.mu.Lock()
	if e, found := s.entries[h]; found {
		if tid, _ := c.ids(e); tid == id {
			delete(s.entries, h)
		}
	}
	s.mu.Unlock()
}

// EvictAccount drops every token of an account. It scans the cache, which is
// fine for the rare changes that need it (a resource deleted, a plan changed).
func (c *TokenCache[E]) EvictAccount(account int64) {
	c.gen.Add(1)
	var ids []int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, e := range s.entries {
			if id, acc := c.ids(e); acc == account {
				delete(s.entries, h)
				ids = append(ids, id)
			}
		}
		s.mu.Unlock()
	}
	for _, id := range ids {
		is := c.idShard(id)
		is.mu.Lock()
		delete(is.byID, id)
		is.mu.Unlock()
	}
}

// Flush drops everything: verified tokens and unknown hashes.
func (c *TokenCache[E]) Flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.entries)
		clear(s.byID)
		clear(s.unknown)
		s.mu.Unlock()
	}
}

// Len is the number of cached tokens.
func (c *TokenCache[E]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}
