package tokend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// AuthEvent tells a subscriber of the change stream that what it learned
// about tokens may be stale. TokenID set: that one token (AccountID is its
// account). TokenID 0 and AccountID set: every token of that account.
// Both 0: everything, because this process itself had to forget everything.
type AuthEvent struct {
	TokenID   int64
	AccountID int64
}

// Flush reports whether e says to forget everything.
func (e AuthEvent) Flush() bool { return e.TokenID == 0 && e.AccountID == 0 }

// AuthSubscription receives the authentication changes of one account, as
// this process applies them: its own writes once committed, other processes'
// writes as the change feed brings them. Events arrive in the order this
// process applies them.
//
// A subscriber that falls behind by more than its buffer is dropped: C is
// closed and Lost reports true, and the subscriber must treat everything it
// learned as stale. C is also closed by Close.
type AuthSubscription struct {
	C       <-chan AuthEvent
	c       chan AuthEvent
	account int64
	token   int64
	lost    atomic.Bool
	stream  *authStream
	once    sync.Once
}

// Lost reports whether the subscription was dropped for falling behind.
func (sub *AuthSubscription) Lost() bool { return sub.lost.Load() }

// Close ends the subscription and closes C. It is safe to call more than once.
func (sub *AuthSubscription) Close() { sub.stream.remove(sub) }

// authSubscriptionBuffer is how many events a subscriber may fall behind.
const authSubscriptionBuffer = 1024

// How many change streams one process serves, so that no caller can take
// them all: a gateway whose stream is refused asks tokend on every request.
const (
	// MaxAuthSubscriptions bounds the change streams one account may hold
	// open at once in one process.
	MaxAuthSubscriptions = 64
	// MaxServiceTokenStreams bounds the streams of one service token (see
	// IsServiceToken): a fleet of gateways may share one.
	MaxServiceTokenStreams = 16
)

// IsServiceToken reports whether t is a service token: a live token with at
// least viewer on its account, which is what a gateway or the middleware
// needs to verify the account's tokens, report their usage and follow its
// change stream (see MayVerify). Test keys never are: they are for code
// under test, not for guarding live traffic.
func IsServiceToken(t *Token) bool { return MayVerify(t) == nil }

// SubscribeAuthChanges subscribes caller, a service token, to the
// authentication changes of its account (and the flushes that concern
// everyone). Like verifying tokens, it needs a service token (MayVerify:
// EFORBIDDEN otherwise, a test key included). A subscription beyond a bound
// is ERATELIMITED with reason too_many_streams: the account's
// MaxAuthSubscriptions, or the token's MaxServiceTokenStreams. The caller
// must Close the subscription.
func (s *Service) SubscribeAuthChanges(ctx context.Context, caller *Token) (*AuthSubscription, error) {
	if err := MayVerify(caller); err != nil {
		return nil, err
	}
	// The feed must stand at the log's end before the subscriber is told it
	// is ready, or changes committed in between would never reach it.
	if err := s.startFeed(ctx); err != nil {
		return nil, err
	}
	return s.stream.add(caller)
}

// tooManyStreams refuses a subscription beyond one of the bounds.
func tooManyStreams(format string, args ...any) error {
	return &Error{Code: ERATELIMITED, Reason: "too_many_streams", Message: fmt.Sprintf(format, args...)}
}

// authStream fans authentication changes out to subscribers.
type authStream struct {
	mu        sync.RWMutex
	subs      map[*AuthSubscription]struct{}
	byAccount map[int64]int // streams of each account
	byToken   map[int64]int // streams of each token
	n         atomic.Int32
}

// add subscribes t, a service token, to its account's changes, within the
// bounds.
func (h *authStream) add(t *Token) (*AuthSubscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs, h.byAccount, h.byToken = make(map[*AuthSubscription]struct{}), make(map[int64]int), make(map[int64]int)
	}
	switch {
	case h.byAccount[t.AccountID] >= MaxAuthSubscriptions:
		return nil, tooManyStreams("This account already holds %d change streams open on this server, the most it may", MaxAuthSubscriptions)
	case h.byToken[t.ID] >= MaxServiceTokenStreams:
		return nil, tooManyStreams("This token already holds %d change streams open on this server, the most one token may: "+
			"give each group of gateways its own service token", MaxServiceTokenStreams)
	}
	c := make(chan AuthEvent, authSubscriptionBuffer)
	sub := &AuthSubscription{C: c, c: c, account: t.AccountID, token: t.ID, stream: h}
	h.subs[sub] = struct{}{}
	h.byAccount[t.AccountID]++
	h.byToken[t.ID]++
	h.n.Store(int32(len(h.subs)))
	return sub, nil
}

func (h *authStream) remove(sub *AuthSubscription) {
	h.mu.Lock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		decrement(h.byAccount, sub.account)
		decrement(h.byToken, sub.token)
	}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	sub.once.Do(func() { close(sub.c) })
}

// decrement counts one less of k, forgetting k at none.
func decrement(m map[int64]int, k int64) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// active reports whether anyone is subscribed.
func (h *authStream) active() bool { return h.n.Load() > 0 }

// publish delivers e to the subscribers it concerns without waiting: one that
// is behind by a whole buffer is dropped. A token event without an account
// (written before changes recorded it) goes to everyone as a flush, so that
// no account learns another's token IDs.
func (h *authStream) publish(e AuthEvent) {
	if !h.active() {
		return
	}
	if e.TokenID != 0 && e.AccountID == 0 {
		e = AuthEvent{}
	}
	var behind []*AuthSubscription
	h.mu.RLock()
	for sub := range h.subs {
		if e.AccountID != 0 && sub.account != e.AccountID {
			continue
		}
		select {
		case sub.c <- e:
		default:
			behind = append(behind, sub)
		}
	}
	h.mu.RUnlock()
	for _, sub := range behind {
		sub.lost.Store(true)
		h.remove(sub)
	}
}
