package tokend

import (
	"sync"
	"sync/atomic"
)

// authCache holds verified tokens by the SHA-256 of their value, decoded once,
// and a bounded set of hashes known not to exist, so that neither a valid
// token nor a guess costs a store read per request.
//
// Correctness under concurrency: every eviction first bumps gen, then finds
// the token through byID and deletes it, under the shard locks. A refill
// records gen before its store read, then sets byID and only then the token,
// each only if gen is unchanged, under the same locks. Whatever the
// interleaving, a refill that raced a revocation either is skipped or leaves
// byID set before the eviction looks, so the token never comes back.
type authCache struct {
	gen      atomic.Uint64
	shards   [authShards]authShard
	negLimit int // unknown hashes kept per shard

	// resources are the projects, sandboxes and domains permission checks
	// have looked up: only ones that exist, dropped with their account.
	resMu     sync.RWMutex
	resources map[resourceKey]Resource
}

// resourceCacheSize bounds the resources the cache remembers; a full cache
// starts over rather than grow.
const resourceCacheSize = 1 << 16

const authShards = 64

type authShard struct {
	mu      sync.RWMutex
	tokens  map[[32]byte]*Token
	byID    map[int64][32]byte
	unknown map[[32]byte]struct{}
}

// NegativeCacheSize is how many unknown hashes the cache remembers in all.
const NegativeCacheSize = 1 << 17

func newAuthCache() *authCache {
	c := &authCache{negLimit: NegativeCacheSize / authShards, resources: make(map[resourceKey]Resource)}
	for i := range c.shards {
		c.shards[i].tokens = make(map[[32]byte]*Token)
		c.shards[i].byID = make(map[int64][32]byte)
		c.shards[i].unknown = make(map[[32]byte]struct{})
	}
	return c
}

func (c *authCache) shardOf(h *[32]byte) *authShard {
	// The hash is already uniform: its first bytes pick the shard.
	return &c.shards[uint(h[0])%authShards]
}

func (c *authCache) idShard(id int64) *authShard {
	return &c.shards[uint64(id)%authShards]
}

// get returns the cached token for h, and whether h is known not to exist.
func (c *authCache) get(h *[32]byte) (t *Token, unknown bool) {
	s := c.shardOf(h)
	s.mu.RLock()
	t = s.tokens[*h]
	if t == nil {
		_, unknown = s.unknown[*h]
	}
	s.mu.RUnlock()
	return t, unknown
}

// put caches t under h unless an eviction happened since gen was read.
// byID is set before the token so that a concurrent eviction can find it.
func (c *authCache) put(h *[32]byte, t *Token, gen uint64) {
	is := c.idShard(t.ID)
	is.mu.Lock()
	ok := c.gen.Load() == gen
	if ok {
		is.byID[t.ID] = *h
	}
	is.mu.Unlock()
	if !ok {
		return
	}
	s := c.shardOf(h)
	s.mu.Lock()
	if c.gen.Load() == gen {
		s.tokens[*h] = t
	}
	s.mu.Unlock()
}

// putUnknown remembers that h names no token, unless an eviction happened
// since gen was read. A full shard starts over rather than grow.
func (c *authCache) putUnknown(h *[32]byte, gen uint64) {
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

// forgetUnknown removes h from the unknown set: its token now exists.
func (c *authCache) forgetUnknown(h *[32]byte) {
	c.gen.Add(1)
	s := c.shardOf(h)
	s.mu.Lock()
	delete(s.unknown, *h)
	s.mu.Unlock()
}

// evictToken drops token id.
func (c *authCache) evictToken(id int64) {
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
	if t := s.tokens[h]; t != nil && t.ID == id {
		delete(s.tokens, h)
	}
	s.mu.Unlock()
}

// evictAccount drops every token of an account. It scans the cache, which is
// fine for the rare changes that need it (a resource deleted, a plan changed).
func (c *authCache) evictAccount(accountID int64) {
	c.gen.Add(1)
	var ids []int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, t := range s.tokens {
			if t.AccountID == accountID {
				delete(s.tokens, h)
				ids = append(ids, t.ID)
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
	c.resMu.Lock()
	for k, r := range c.resources {
		if r.AccountID == accountID {
			delete(c.resources, k)
		}
	}
	c.resMu.Unlock()
}

// resource returns the cached resource named by k.
func (c *authCache) resource(k resourceKey) (Resource, bool) {
	c.resMu.RLock()
	r, ok := c.resources[k]
	c.resMu.RUnlock()
	return r, ok
}

// putResource caches r unless an eviction happened since gen was read.
func (c *authCache) putResource(r Resource, gen uint64) {
	c.resMu.Lock()
	if c.gen.Load() == gen {
		if len(c.resources) >= resourceCacheSize {
			clear(c.resources)
		}
		c.resources[resourceKey{r.Type, r.ID}] = r
	}
	c.resMu.Unlock()
}

// flush drops everything: verified tokens and unknown hashes.
func (c *authCache) flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.tokens)
		clear(s.byID)
		clear(s.unknown)
		s.mu.Unlock()
	}
	c.resMu.Lock()
	clear(c.resources)
	c.resMu.Unlock()
}

// len is the number of cached tokens.
func (c *authCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.tokens)
		s.mu.RUnlock()
	}
	return n
}

// principal is the part of a token authentication needs, kept in the cache:
// who it is, its account, environment, permissions, expiry and limits.
func principal(t *Token) *Token {
	p := &Token{ID: t.ID, AccountID: t.AccountID, Name: t.Name, Environment: t.Environment,
		Permissions: t.Permissions, AccountLimit: t.AccountLimit, AccountMessageLimit: t.AccountMessageLimit}
	if t.ExpiresAt != nil {
		exp := *t.ExpiresAt
		p.ExpiresAt = &exp
	}
	return p
}
