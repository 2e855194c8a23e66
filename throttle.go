package tokend

import (
	"context"
	"net/netip"

	"golang.org/x/sync/singleflight"
)

// The failed-authentication throttle and the lookup gate are the part of
// verification every way in shares, whether token facts come from the store
// (Verifier) or from a remote tokend (the middleware package and the
// gateway): a client address may fail a bounded number of times a minute,
// and a credential that memory did not answer is looked up under that
// budget.

// Throttle is the failed-authentication budget of client addresses: Limit
// failures a minute per ThrottleKey, counted in Limits.
type Throttle struct {
	Limits Limits
	Limit  int // failures a minute; DefaultAuthFailureLimit if 0
}

func (t *Throttle) limit() int {
	if t.Limit <= 0 {
		return DefaultAuthFailureLimit
	}
	return t.Limit
}

// Fail spends one failure of client's budget. It returns ErrThrottled, with
// the decision saying when to retry, once the budget is spent, and
// ErrLimitsUnavailable when the budget cannot be checked.
func (t *Throttle) Fail(ctx context.Context, client string) (LimitDecision, error) {
	d, err := take(ctx, t.Limits, failureKey(ThrottleKey(client)), t.limit())
	switch {
	case err != nil:
		return d, ErrLimitsUnavailable
	case !d.Allowed:
		return d, ErrThrottled
	}
	return d, nil
}

// forgive gives back one failure Fail spent for client. At worst, when the
// limits cannot be reached, the address keeps it for a minute.
func (t *Throttle) forgive(ctx context.Context, client string) {
	_ = t.Limits.RefundN(context.WithoutCancel(ctx), failureKey(ThrottleKey(client)), PerMinute(t.limit()), 1)
}

// Gate looks up credentials that memory did not answer, under a Throttle.
// Each lookup is a possible guess: it reserves one failure of the client
// address's budget before the source is asked, so that no interleaving of
// parallel guesses gets more answers than the budget, and gives it back
// unless the lookup says the credential failed (the source failing is not
// the client's fault). Concurrent lookups of one credential share one
// lookup and one reservation, so that a burst of a valid token just evicted
// from memory never spends the address's budget. The zero value is not
// usable; create one with NewGate.
type Gate[T any] struct {
	throttle *Throttle
	flights  singleflight.Group
}

// NewGate returns a gate whose lookups spend throttle.
func NewGate[T any](throttle *Throttle) *Gate[T] {
	return &Gate[T]{throttle: throttle}
}

// Throttle is the budget the gate's lookups spend.
func (g *Gate[T]) Throttle() *Throttle { return g.throttle }

// Lookup returns what lookup finds for the credential that flight names
// (its hash, say, with anything else the answer depends on), asked by
// client. lookup reports whether the credential failed (unknown, forged,
// expired); it runs without ctx's cancellation, since requests that join
// the flight must not fail when the first one goes. When the client's
// budget is spent, or cannot be checked, lookup is not called and the error
// is Fail's.
func (g *Gate[T]) Lookup(ctx context.Context, flight, client string, lookup func(ctx context.Context) (v T, failed bool)) (T, LimitDecision, error) {
	type result struct {
		v   T
		d   LimitDecision
		err error
	}
	shared := context.WithoutCancel(ctx)
	r, _, _ := g.flights.Do(flight, func() (any, error) {
		d, err := g.throttle.Fail(shared, client)
		if err != nil {
			return result{d: d, err: err}, nil
		}
		v, failed := lookup(shared)
		if !failed {
			g.throttle.forgive(shared, client)
		}
		return result{v: v, d: d}, nil
	})
	res := r.(result)
	return res.v, res.d, res.err
}

// ThrottleKey is what a failed-authentication throttle counts for a client
// address: the IPv4 address, or the IPv6 /64, since one IPv6 client usually
// holds a whole /64 and could otherwise guess from a fresh address each time.
func ThrottleKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Unmap().Is4() {
		return addr
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}
