package middleware

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/client"
)

// entry is what the middleware knows of one verified token: who it is, its
// plan limit, and the permission sets tokend has said it holds.
type entry struct {
	id      *Identity
	limit   int // requests per minute
	fetched time.Time

	mu      sync.RWMutex
	granted map[string]struct{} // permission-set keys (see permsKey) tokend said VALID for
}

func (e *entry) grants(key string) bool {
	if key == "" {
		return true
	}
	e.mu.RLock()
	_, ok := e.granted[key]
	e.mu.RUnlock()
	return ok
}

func (e *entry) grant(key string) {
	if key == "" {
		return
	}
	e.mu.Lock()
	if len(e.granted) < maxGrantsPerToken {
		e.granted[key] = struct{}{}
	}
	e.mu.Unlock()
}

// maxGrantsPerToken bounds the permission sets remembered per token (a
// route with path values in its requirements makes one per value).
const maxGrantsPerToken = 256

// cache holds verified tokens by the SHA-256 of their value and a bounded
// set of hashes tokend said it does not know.
//
// Every eviction bumps gen before it removes anything; a fill reads gen
// before it asks tokend and stores only if gen is unchanged, checked under
// the same locks the eviction takes, so a fill that raced a revocation never
// brings the token back.
type cache struct {
	gen    atomic.Uint64
	shards [cacheShards]cacheShard

	idMu sync.Mutex
	byID map[int64][32]byte

	// recent remembers tokens and accounts changed in the last changeQuiet,
	// whose answers are not cached: another tokend instance may not have
	// applied the change yet when it answers.
	recentMu       sync.Mutex
	recentTokens   map[int64]time.Time
	recentAccounts map[int64]time.Time
}

const (
	cacheShards = 64
	// unknownPerShard bounds the negative cache.
	unknownPerShard = 2048
	// changeQuiet is how long after a change its token's answers stay uncached.
	changeQuiet = 2 * time.Second
)

type cacheShard struct {
	mu      sync.RWMutex
	tokens  map[[32]byte]*entry
	unknown map[[32]byte]struct{}
}

func newCache() *cache {
	c := &cache{byID: map[int64][32]byte{}, recentTokens: map[int64]time.Time{}, recentAccounts: map[int64]time.Time{}}
	for i := range c.shards {
		c.shards[i].tokens = map[[32]byte]*entry{}
		c.shards[i].unknown = map[[32]byte]struct{}{}
	}
	return c
}

func (c *cache) shard(h *[32]byte) *cacheShard { return &c.shards[h[0]%cacheShards] }

// get returns the entry for h, and whether h is known not to exist.
func (c *cache) get(h *[32]byte) (*entry, bool) {
	s := c.shard(h)
	s.mu.RLock()
	e := s.tokens[*h]
	_, unknown := s.unknown[*h]
	s.mu.RUnlock()
	return e, unknown
}

// put stores e under h unless anything was evicted since gen was read or
// the token changed a moment ago. It returns the entry now cached for h
// (e, or one stored meanwhile), or nil.
func (c *cache) put(h *[32]byte, e *entry, gen uint64, now time.Time) *entry {
	if c.changedRecently(e.id.TokenID, e.id.AccountID, now) {
		return nil
	}
	c.idMu.Lock()
	ok := c.gen.Load() == gen
	if ok {
		c.byID[e.id.TokenID] = *h
	}
	c.idMu.Unlock()
	if !ok {
		return nil
	}
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return nil
	}
	if old := s.tokens[*h]; old != nil && old.id.TokenID == e.id.TokenID {
		return old
	}
	s.tokens[*h] = e
	return e
}

// putUnknown remembers that tokend does not know h (for this account).
func (c *cache) putUnknown(h *[32]byte, gen uint64) {
	s := c.shard(h)
	s.mu.Lock()
	if c.gen.Load() == gen {
		if len(s.unknown) >= unknownPerShard {
			clear(s.unknown)
		}
		s.unknown[*h] = struct{}{}
	}
	s.mu.Unlock()
}

func (c *cache) evictToken(id int64, now time.Time) {
	c.gen.Add(1)
	c.recentMu.Lock()
	c.recentTokens[id] = now
	c.recentMu.Unlock()
	c.idMu.Lock()
	h, ok := c.byID[id]
	delete(c.byID, id)
	c.idMu.Unlock()
	if !ok {
		return
	}
	s := c.shard(&h)
	s.mu.Lock()
	if e := s.tokens[h]; e != nil && e.id.TokenID == id {
		delete(s.tokens, h)
	}
	s.mu.Unlock()
}

func (c *cache) evictAccount(account int64, now time.Time) {
	c.gen.Add(1)
	c.recentMu.Lock()
	c.recentAccounts[account] = now
	c.recentMu.Unlock()
	var ids []int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, e := range s.tokens {
			if e.id.AccountID == account {
				delete(s.tokens, h)
				ids = append(ids, e.id.TokenID)
			}
		}
		s.mu.Unlock()
	}
	c.idMu.Lock()
	for _, id := range ids {
		delete(c.byID, id)
	}
	c.idMu.Unlock()
}

// flush forgets everything.
func (c *cache) flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.tokens)
		clear(s.unknown)
		s.mu.Unlock()
	}
	c.idMu.Lock()
	clear(c.byID)
	c.idMu.Unlock()
}

// changedRecently reports whether token or account changed within
// changeQuiet of now, forgetting older changes as it goes.
func (c *cache) changedRecently(token, account int64, now time.Time) bool {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	if len(c.recentTokens) == 0 && len(c.recentAccounts) == 0 {
		return false
	}
	for _, m := range []map[int64]time.Time{c.recentTokens, c.recentAccounts} {
		for id, at := range m {
			if now.Sub(at) >= changeQuiet {
				delete(m, id)
			}
		}
	}
	_, t := c.recentTokens[token]
	_, a := c.recentAccounts[account]
	return t || a
}

// len is the number of cached tokens.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.tokens)
		s.mu.RUnlock()
	}
	return n
}

// identityOf turns tokend's answer into an Identity.
func identityOf(v *client.Verification) *Identity {
	return &Identity{TokenID: v.TokenID, AccountID: v.AccountID, Name: v.Name, Environment: v.Environment,
		ExpiresAt: v.ExpiresAt, Permissions: v.Permissions}
}
