package tokend

import (
	"context"
	"fmt"

	"github.com/tokend/tokend/apikey"
)

// Authenticate returns the token whose value is raw. A value that fails the
// format's checksum is rejected before any lookup. Unknown, deleted and expired
// tokens give an EUNAUTHORIZED error. The token's other guards (allowed IPs,
// limits) are the Verifier's to check. It never writes to the store, and with
// the cache it reads the store only the first time it sees a hash. The token
// returned is shared: callers must not modify it.
func (s *Service) Authenticate(ctx context.Context, raw string) (*Token, error) {
	t, err := s.find(ctx, raw)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// find is Authenticate, except that an expired token is returned together
// with its EUNAUTHORIZED error, for callers that report whose it was.
func (s *Service) find(ctx context.Context, raw string) (*Token, error) {
	env, err := s.opts.Format.Parse(raw)
	if err != nil {
		return nil, errBadToken
	}
	h := apikey.Hash(raw)
	t, cached, err := s.lookup(ctx, &h)
	if err != nil {
		return nil, err
	}
	if string(t.Environment) != env {
		return nil, errBadToken
	}
	if t.ExpiredAt(s.now()) {
		if cached {
			// It will not work again: let it leave memory. Only a cached token is
			// evicted, so replaying an expired token cannot keep bumping the
			// generation and spoil other tokens' refills.
			s.cache.EvictToken(t.ID)
		}
		return t, errExpiredToken
	}
	return t, nil
}

// AuthenticateCached returns the token whose value is raw when this process
// has already verified it and it has not expired; otherwise nil, and the caller
// goes through Authenticate. It never reads the store, so it is safe to answer
// before any throttle that protects the store from guessing.
func (s *Service) AuthenticateCached(raw string) *Token {
	if s.cache == nil {
		return nil
	}
	env, err := s.opts.Format.Parse(raw)
	if err != nil {
		return nil
	}
	h := apikey.Hash(raw)
	t, _ := s.cache.get(&h)
	if t == nil || string(t.Environment) != env || t.ExpiredAt(s.now()) {
		return nil
	}
	return t
}

// lookup finds the token with hash h, in the cache when it can, and reports
// whether it came from the cache.
func (s *Service) lookup(ctx context.Context, h *[32]byte) (t *Token, cached bool, err error) {
	if s.cache == nil {
		t, err = s.tokenByHash(ctx, *h)
		return t, false, err
	}
	if t, unknown := s.cache.get(h); t != nil {
		return t, true, nil
	} else if unknown {
		return nil, false, errBadToken
	}
	gen := s.cache.Gen()
	t, err = s.tokenByHash(ctx, *h)
	switch {
	case err == errBadToken:
		s.cache.PutUnknown(h, gen)
		return nil, false, err
	case err != nil:
		return nil, false, err
	case t.ExpiredAt(s.now()):
		return t, false, nil // not worth caching
	}
	p := principal(t)
	s.cache.put(h, p, gen)
	return p, false, nil
}

// tokenByHash takes the hash by value: passing a pointer on to the store
// would move the caller's hash to the heap on the hot path too.
func (s *Service) tokenByHash(ctx context.Context, h [32]byte) (*Token, error) {
	t, err := s.store.TokenByHash(ctx, h[:])
	if ErrorCode(err) == ENOTFOUND {
		return nil, errBadToken
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return t, nil
}

// WarmAuthCache loads every unexpired token into the cache and returns how
// many it loaded. Changes recorded while it runs are applied by the next SyncAuthCache.
func (s *Service) WarmAuthCache(ctx context.Context) (int, error) {
	if s.cache == nil {
		return 0, nil
	}
	last, err := s.store.LastAuthChange(ctx)
	if err != nil {
		return 0, err
	}
	s.feed.mu.Lock()
	s.feed.floor, s.feed.started = last, true
	s.feed.mu.Unlock()
	n := 0
	err = s.store.ForEachToken(ctx, s.now(), func(t *Token) error {
		var h [32]byte
		copy(h[:], t.Hash)
		s.cache.put(&h, principal(t), s.cache.Gen())
		n++
		return nil
	})
	return n, err
}

// CachedTokens is how many tokens the authentication cache holds.
func (s *Service) CachedTokens() int {
	if s.cache == nil {
		return 0
	}
	return s.cache.Len()
}
