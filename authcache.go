package tokend

import "sync"

// authCache is the Service's memory of verified tokens (their principals)
// and of the resources permission checks looked up: a TokenCache, whose
// generation also guards the resources' fills.
type authCache struct {
	*TokenCache[*Token]

	// resources are the projects, sandboxes and domains permission checks
	// have looked up: only ones that exist, dropped with their account.
	resMu     sync.RWMutex
	resources map[resourceKey]Resource
}

// resourceCacheSize bounds the resources the cache remembers; a full cache
// starts over rather than grow.
const resourceCacheSize = 1 << 16

func newAuthCache() *authCache {
	return &authCache{TokenCache: NewTokenCache(func(t *Token) (int64, int64) { return t.ID, t.AccountID }),
		resources: make(map[resourceKey]Resource)}
}

// get returns the cached token for h, and whether h is known not to exist.
func (c *authCache) get(h *[32]byte) (t *Token, unknown bool) {
	t, _, unknown = c.Get(h)
	return t, unknown
}

// put caches t under h unless an eviction happened since gen was read.
func (c *authCache) put(h *[32]byte, t *Token, gen uint64) { c.Put(h, t, gen, nil) }

// evictAccount drops every token of an account, and its resources.
func (c *authCache) evictAccount(accountID int64) {
	c.EvictAccount(accountID)
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
	if c.Gen() == gen {
		if len(c.resources) >= resourceCacheSize {
			clear(c.resources)
		}
		c.resources[resourceKey{r.Type, r.ID}] = r
	}
	c.resMu.Unlock()
}

// flush drops everything: verified tokens, unknown hashes and resources.
func (c *authCache) flush() {
	c.Flush()
	c.resMu.Lock()
	clear(c.resources)
	c.resMu.Unlock()
}

// principal is the part of a token authentication needs, kept in the cache:
// who it is, its account, environment, permissions, expiry and limits.
func principal(t *Token) *Token {
	p := &Token{ID: t.ID, AccountID: t.AccountID, Name: t.Name, Environment: t.Environment,
		Permissions: t.Permissions, AccountLimit: t.AccountLimit, AccountMessageLimit: t.AccountMessageLimit,
		AllowedIPs: t.AllowedIPs, RateLimit: t.RateLimit, Quota: t.Quota,
		plan: planKey(t.AccountID, t.Environment == Test)}
	if t.RateLimit != nil {
		p.own = tokenKey(t)
	}
	if t.ExpiresAt != nil {
		exp := *t.ExpiresAt
		p.ExpiresAt = &exp
	}
	return p
}
