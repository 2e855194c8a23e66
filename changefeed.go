package tokend

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// changed records, inside tx, that the tokens c names must be looked up
// afresh by every process, and sets c.ID. Call evict with c once tx commits.
func (s *Service) changed(ctx context.Context, tx Tx, c *AuthChange) error {
	id, err := tx.AddAuthChange(ctx, *c, s.now())
	c.ID = id
	return err
}

// evict applies changes this process has just committed: it drops what
// they name from this process's cache and tells the change stream's
// subscribers. It runs after the commit, so that a concurrent refill cannot
// read the state before it. A change the feed has applied already is
// skipped, so subscribers hear of each change once.
func (s *Service) evict(changes ...AuthChange) {
	for _, c := range changes {
		if s.feed.claim(c.ID) {
			s.apply(c)
		}
	}
}

// apply drops what c names from the cache and tells the subscribers.
func (s *Service) apply(c AuthChange) {
	if s.cache != nil {
		if c.TokenID != 0 {
			s.cache.EvictToken(c.TokenID)
		} else if c.AccountID != 0 {
			s.cache.evictAccount(c.AccountID)
		}
	}
	s.stream.publish(AuthEvent{TokenID: c.TokenID, AccountID: c.AccountID})
}

// issued tells the cache that a new token's hash now exists.
func (s *Service) issued(t *IssuedToken) {
	if s.cache != nil && t != nil {
		var h [32]byte
		copy(h[:], t.Hash)
		s.cache.ForgetUnknown(&h)
	}
}

// SyncAuthCache applies the authentication changes other processes (the CLI,
// other instances) recorded since the last sync. Run it every fraction of a
// second; changes made through this Service apply at once without it.
//
// Change IDs need not become visible in order: on PostgreSQL a transaction
// holding ID 10 may commit after one holding 11. So the feed reads from its
// floor, the highest ID below which it has applied everything, applies each
// change it has not applied yet, and moves the floor over an ID still unseen
// only after changeGapWait (a rolled-back transaction's ID never appears).
func (s *Service) SyncAuthCache(ctx context.Context) error {
	if s.cache == nil && !s.stream.active() {
		return nil
	}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	if err := s.startFeedLocked(ctx); err != nil {
		return err
	}
	for range 100 { // bounded: 100 pages of 10,000 changes
		changes, err := s.store.AuthChangesSince(ctx, s.feed.floor)
		if err != nil {
			return err
		}
		for _, c := range s.feed.take(changes, s.now()) {
			s.apply(c) // the feed's lock is held: not evict, which takes it
		}
		if len(changes) < 10_000 {
			return nil
		}
	}
	return nil
}

// startFeed puts the change feed at the log's end unless it has started.
func (s *Service) startFeed(ctx context.Context) error {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.startFeedLocked(ctx)
}

func (s *Service) startFeedLocked(ctx context.Context) error {
	if s.feed.started {
		return nil
	}
	last, err := s.store.LastAuthChange(ctx)
	if err != nil {
		return fmt.Errorf("start the change feed: %w", err)
	}
	s.feed.floor, s.feed.started = last, true
	return nil
}

// FlushAuthCache forgets every verified token and unknown hash, so that the
// next request of each is looked up afresh: for when this process may have
// missed changes (its change feed has been failing). Subscribers of the
// change stream are told to forget everything too.
func (s *Service) FlushAuthCache() {
	if s.cache != nil {
		s.cache.flush()
	}
	s.stream.publish(AuthEvent{})
}

// changeFeed tracks which auth changes a process has applied.
type changeFeed struct {
	mu      sync.Mutex
	started bool                // floor has been set from the log
	floor   int64               // every ID at or below it is applied or given up on
	applied map[int64]bool      // applied IDs above floor
	missing map[int64]time.Time // IDs above floor not seen yet, since when
}

// claim marks change id, just committed by this process, as applied, so
// that the feed does not apply it a second time; it reports false when the
// feed has applied it already. ID 0 (not recorded in the log) is always
// claimed, and so is everything before the feed starts at the log's end.
func (f *changeFeed) claim(id int64) bool {
	if id == 0 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started {
		return true
	}
	if id <= f.floor || f.applied[id] {
		return false
	}
	if f.applied == nil {
		f.applied, f.missing = map[int64]bool{}, map[int64]time.Time{}
	}
	f.applied[id] = true
	delete(f.missing, id)
	return true
}

// changeGapWait is how long an ID missing below applied ones may still turn
// up: longer than any write transaction runs.
const changeGapWait = time.Minute

// take returns the changes not applied yet and moves the floor up.
func (f *changeFeed) take(changes []AuthChange, now time.Time) []AuthChange {
	if f.applied == nil {
		f.applied, f.missing = map[int64]bool{}, map[int64]time.Time{}
	}
	var fresh []AuthChange
	top := f.floor
	for _, c := range changes {
		if !f.applied[c.ID] && c.ID > f.floor {
			f.applied[c.ID] = true
			delete(f.missing, c.ID)
			fresh = append(fresh, c)
		}
		top = max(top, c.ID)
	}
	for id := f.floor + 1; id < top; id++ {
		if !f.applied[id] {
			if _, ok := f.missing[id]; !ok {
				f.missing[id] = now
			}
		}
	}
	for f.floor < top {
		next := f.floor + 1
		if f.applied[next] {
			delete(f.applied, next)
		} else if since, ok := f.missing[next]; !ok || now.Sub(since) < changeGapWait {
			break
		} else {
			delete(f.missing, next)
		}
		f.floor = next
	}
	return fresh
}
