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
// set of hashes tokend said it does not know. Reads take no lock (the hot
// path of every request); changes are made under mu.
//
// Every eviction bumps gen under mu before it removes anything; a fill reads
// gen before it asks tokend and stores only if gen is unchanged, checked
// under mu, so a fill that raced a revocation never brings the token back.
type cache struct {
	gen     atomic.Uint64
	tokens  sync.Map // [32]byte → *entry
	unknown sync.Map // [32]byte → struct{}
	nUnk    atomic.Int64

	mu   sync.Mutex
	byID map[int64][32]byte

	// recent remembers tokens and accounts changed in the last changeQuiet,
	// whose answers are not cached: another tokend instance may not have
	// applied the change yet when it answers.
	recentMu       sync.Mutex
	recentTokens   map[int64]time.Time
	recentAccounts map[int64]time.Time
}

const (
	// maxUnknown bounds the negative cache; a full one starts over.
	maxUnknown = 1 << 17
	// changeQuiet is how long after a change its token's answers stay uncached.
	changeQuiet = 2 * time.Second
)

func newCache() *cache {
	return &cache{byID: map[int64][32]byte{}, recentTokens: map[int64]time.Time{}, recentAccounts: map[int64]time.Time{}}
}

// get returns the entry for h, and whether h is known not to exist.
func (c *cache) get(h *[32]byte) (*entry, bool) {
	if e, ok := c.tokens.Load(*h); ok {
		return e.(*entry), false
	}
	_, unknown := c.unknown.Load(*h)
	return nil, unknown
}

// put stores e (fetched when gen was read) under h unless anything was
// evicted since or the token changed a moment before. An entry of the same
// token fetched within ttl of e stays, and is returned to take e's grant;
// an older one is replaced. It returns the entry now cached for h, or nil.
func (c *cache) put(h *[32]byte, e *entry, gen uint64, ttl time.Duration) *entry {
	if c.changedRecently(e.id.TokenID, e.id.AccountID, e.fetched) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return nil
	}
	if v, ok := c.tokens.Load(*h); ok {
		if old := v.(*entry); old.id.TokenID == e.id.TokenID && e.fetched.Sub(old.fetched) < ttl {
			return old
		}
	}
	c.byID[e.id.TokenID] = *h
	c.tokens.Store(*h, e)
	return e
}

// putUnknown remembers that tokend does not know h (for this account).
func (c *cache) putUnknown(h *[32]byte, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if c.nUnk.Add(1) > maxUnknown {
		c.unknown.Clear()
		c.nUnk.Store(1)
	}
	c.unknown.Store(*h, struct{}{})
}

func (c *cache) evictToken(id int64, now time.Time) {
	c.recentMu.Lock()
	c.recentTokens[id] = now
	c.recentMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	h, ok := c.byID[id]
	if !ok {
		return
	}
	delete(c.byID, id)
	if e, ok := c.tokens.Load(h); ok && e.(*entry).id.TokenID == id {
		c.tokens.CompareAndDelete(h, e)
	}
}

func (c *cache) evictAccount(account int64, now time.Time) {
	c.recentMu.Lock()
	c.recentAccounts[account] = now
	c.recentMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.tokens.Range(func(k, v any) bool {
		if e := v.(*entry); e.id.AccountID == account {
			c.tokens.CompareAndDelete(k, v)
			delete(c.byID, e.id.TokenID)
		}
		return true
	})
}

// flush forgets everything.
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.tokens.Clear()
	c.unknown.Clear()
	c.nUnk.Store(0)
	clear(c.byID)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

// identityOf turns tokend's answer into an Identity.
func identityOf(v *client.Verification) *Identity {
	return &Identity{TokenID: v.TokenID, AccountID: v.AccountID, Name: v.Name, Environment: v.Environment,
		ExpiresAt: v.ExpiresAt, Permissions: v.Permissions}
}
