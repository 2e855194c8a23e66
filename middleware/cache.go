package middleware

import (
	"sync"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/client"
)

// entry is what the middleware knows of one verified token: who it is, its
// guards, its ledger, and the permission sets tokend has said it holds.
type entry struct {
	id      *Identity
	guards  tokend.Guards
	fetched time.Time
	ledger  *tokenLedger // the token's lease and unreported usage

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

// cache is the middleware's memory of verified tokens: tokend's answers in a
// tokend.TokenCache, the same memory tokend keeps of its own tokens, plus
// the tokens and accounts changed a moment ago, whose answers are not
// cached.
type cache struct {
	*tokend.TokenCache[*entry]

	// recent remembers tokens and accounts changed in the last changeQuiet,
	// whose answers are not cached: another tokend instance may not have
	// applied the change yet when it answers.
	recentMu       sync.Mutex
	recentTokens   map[int64]time.Time
	recentAccounts map[int64]time.Time
}

// changeQuiet is how long after a change its token's answers stay uncached.
const changeQuiet = 2 * time.Second

func newCache() *cache {
	return &cache{TokenCache: tokend.NewTokenCache(func(e *entry) (int64, int64) { return e.id.TokenID, e.id.AccountID }),
		recentTokens: map[int64]time.Time{}, recentAccounts: map[int64]time.Time{}}
}

// put stores e (fetched when gen was read) under h unless anything was
// evicted since or the token changed a moment before. An entry of the same
// token fetched within ttl of e stays, and is returned to take e's grant;
// an older one is replaced. It returns the entry now cached for h, or nil.
func (c *cache) put(h *[32]byte, e *entry, gen uint64, ttl time.Duration) *entry {
	if c.changedRecently(e.id.TokenID, e.id.AccountID, e.fetched) {
		return nil
	}
	cached, _ := c.Put(h, e, gen, func(old *entry) bool {
		return old.id.TokenID == e.id.TokenID && e.fetched.Sub(old.fetched) < ttl
	})
	return cached
}

func (c *cache) evictToken(id int64, now time.Time) {
	c.recentMu.Lock()
	c.recentTokens[id] = now
	c.recentMu.Unlock()
	c.EvictToken(id)
}

func (c *cache) evictAccount(account int64, now time.Time) {
	c.recentMu.Lock()
	c.recentAccounts[account] = now
	c.recentMu.Unlock()
	c.EvictAccount(account)
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

// identityOf turns tokend's answer into an Identity.
func identityOf(v *client.Verification) *Identity {
	return &Identity{TokenID: v.TokenID, AccountID: v.AccountID, Name: v.Name, Environment: v.Environment,
		ExpiresAt: v.ExpiresAt, Permissions: v.Permissions}
}
