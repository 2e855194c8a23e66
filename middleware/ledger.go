package middleware

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/client"
)

// The limits of a token the Authenticator has verified are tokend's, not
// this process's: each request admitted from memory spends one request of a
// lease, a number of requests tokend has already spent in the token's own
// rate limit, its quota and its account's plan limit (shared by every
// tokend instance) and lent to this process. A request that finds the lease
// empty waits for the next usage report (POST /api/usage_reports), sent at
// once, which asks for as many requests as are waiting plus two report
// intervals' worth of the token's pace (its pace so far while a stream
// starts, so that leases double then). Reports also carry what was
// admitted and refused, to the token's usage. So any number of processes
// together admit what one tokend would, and a lease left unspent is the
// only error: at most what one process asked for ahead of its demand, about
// two report intervals of the token's pace in that process.

// DefaultReportInterval is how often an Authenticator reports usage to
// tokend and tops up the leases of busy tokens.
const DefaultReportInterval = 100 * time.Millisecond

// leaseWait bounds how long a request waits for a lease before it is
// answered 503 unavailable.
const leaseWait = 5 * time.Second

// minRoomAhead is the least room left of a token's limit for a lease to
// ask ahead at all: a token whose limit has less left is asked for exactly
// what waits, so that near a small limit nothing goes unspent.
const minRoomAhead = 64

// ledgerIdle is how long a token's ledger is kept after its last activity
// once the token has left the cache.
const ledgerIdle = 2 * time.Minute

// ledger is the leases and unreported usage of every token this process
// admits requests of.
type ledger struct {
	c        *client.Client
	interval time.Duration
	now      func() time.Time
	cached   func(h *[32]byte) bool // whether the token is in the Authenticator's cache
	onError  func(error)

	mu      sync.Mutex
	tokens  map[[32]byte]*tokenLedger // by the SHA-256 of the token's value
	wake    chan struct{}             // a request waits for a lease
	running atomic.Bool               // run is reporting: a request may wait for a lease
}

func newLedger(c *client.Client, interval time.Duration, now func() time.Time, cached func(*[32]byte) bool, onError func(error)) *ledger {
	return &ledger{c: c, interval: interval, now: now, cached: cached, onError: onError,
		tokens: map[[32]byte]*tokenLedger{}, wake: make(chan struct{}, 1)}
}

// tokenLedger is one token's lease and unreported usage.
type tokenLedger struct {
	// exact is set for a token with a quota: its leases are only what
	// waiting requests need, none ahead, so that no quota is spent unused.
	exact atomic.Bool
	// room is what tokend last said was left of the token's limit after
	// its lease (-1: not known). A lease asks ahead for at most an eighth
	// of it, and none below minRoomAhead, so that near the limit, where
	// other processes compete for the rest, nothing is leased that may go
	// unspent.
	room  atomic.Int64
	hash  string       // the SHA-256 of the token's value, in hexadecimal: its name in reports
	avail atomic.Int64 // leased requests not yet admitted
	// Requests admitted, refused by a limit and refused for lacking a
	// permission since the last report, and admitted since the last tick.
	success, limited, lacking, paced atomic.Int64
	pace                             atomic.Int64 // admitted in the last whole interval

	mu      sync.Mutex
	waiting int    // requests waiting for the next report
	next    *round // what they wait for; nil when no one waits
	denied  time.Time
	denial  *Error // tokend's refusal, until denied
	touched time.Time
}

// round is one report as the requests waiting for it see it.
type round struct {
	done chan struct{}
	err  error // the report failed
}

// get returns the ledger of the token whose value hashes to h, making it
// if needed. (A token's value changes when it is reset: each value has its
// own ledger, as tokend sees the old value until its grace ends.)
func (l *ledger) get(h *[32]byte) *tokenLedger {
	l.mu.Lock()
	defer l.mu.Unlock()
	tl := l.tokens[*h]
	if tl == nil {
		tl = &tokenLedger{hash: hex.EncodeToString(h[:])}
		tl.room.Store(-1)
		l.tokens[*h] = tl
	}
	tl.mu.Lock()
	tl.touched = l.now()
	tl.mu.Unlock()
	return tl
}

// take spends one leased request, if there is one.
func (tl *tokenLedger) take() bool {
	for {
		n := tl.avail.Load()
		if n <= 0 {
			return false
		}
		if tl.avail.CompareAndSwap(n, n-1) {
			tl.success.Add(1)
			tl.paced.Add(1)
			return true
		}
	}
}

// admit admits one request of tl's token from its lease, waiting for the
// next report when the lease is spent. It refuses with tokend's refusal
// while tokend refuses the token more, and with errUpstream when tokend
// cannot be asked.
func (l *ledger) admit(ctx context.Context, tl *tokenLedger) *Error {
	if tl.take() {
		return nil
	}
	deadline := time.Now().Add(leaseWait)
	for time.Now().Before(deadline) {
		if !l.running.Load() {
			return errUpstream // nothing would report: Run is not running
		}
		tl.mu.Lock()
		if now := l.now(); now.Before(tl.denied) {
			e := *tl.denial
			e.RetryAfter = tl.denied.Sub(now)
			tl.mu.Unlock()
			if e.Status == http.StatusTooManyRequests {
				tl.limited.Add(1)
			}
			return &e
		}
		if tl.take() {
			tl.mu.Unlock()
			return nil
		}
		tl.waiting++
		if tl.next == nil {
			tl.next = &round{done: make(chan struct{})}
		}
		r := tl.next
		tl.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default:
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-r.done:
			t.Stop()
		case <-t.C:
			l.leave(tl, r)
			return errUpstream
		case <-ctx.Done():
			t.Stop()
			l.leave(tl, r)
			return errUpstream
		}
		if r.err != nil {
			return errUpstream
		}
		if tl.take() {
			return nil
		}
	}
	return errUpstream
}

// lift forgets tokend's refusal of tl's token: tokend has since said the
// token may make requests, or the token or its account changed.
func (tl *tokenLedger) lift() {
	tl.mu.Lock()
	tl.denied, tl.denial = time.Time{}, nil
	tl.mu.Unlock()
}

// liftAll lifts every token's refusal.
func (l *ledger) liftAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tl := range l.tokens {
		tl.lift()
	}
}

// leave withdraws a request from round r it no longer waits for.
func (l *ledger) leave(tl *tokenLedger, r *round) {
	tl.mu.Lock()
	if tl.next == r && tl.waiting > 0 {
		tl.waiting--
	}
	tl.mu.Unlock()
}

// run reports every interval, and at once when a request waits for a
// lease, until ctx ends; then it refuses the requests still waiting and
// reports what is left to report, once.
func (l *ledger) run(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	l.running.Store(true)
	for {
		tick := false
		select {
		case <-ctx.Done():
			l.running.Store(false)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseWait)
			l.report(fctx, false, true)
			cancel()
			return nil
		case <-t.C:
			tick = true
		case <-l.wake:
		}
		rctx, cancel := context.WithTimeout(ctx, leaseWait)
		l.report(rctx, tick, false)
		cancel()
	}
}

// pending is one token's part of a report being made.
type pending struct {
	tl                        *tokenLedger
	success, limited, lacking int64
	r                         *round
}

func (p *pending) counted() bool { return p.success+p.limited+p.lacking > 0 }

// report sends one usage report: each token's unreported counts, the
// requests waiting for a lease, and a top-up for tokens whose lease will
// not last two intervals at their pace. With final set
// it only reports counts. A report that fails is counted again next time,
// and its waiting requests are refused.
func (l *ledger) report(ctx context.Context, tick, final bool) {
	now := l.now()
	var reports []client.UsageReport
	var parts []pending
	l.mu.Lock()
	for h, tl := range l.tokens {
		p := pending{tl: tl, success: tl.success.Swap(0), limited: tl.limited.Swap(0), lacking: tl.lacking.Swap(0)}
		// At most MaxReportedRequests of each count a report; the rest next time.
		for _, c := range []struct {
			n   *int64
			src *atomic.Int64
		}{{&p.success, &tl.success}, {&p.limited, &tl.limited}, {&p.lacking, &tl.lacking}} {
			if over := *c.n - tokend.MaxReportedRequests; over > 0 {
				*c.n -= over
				c.src.Add(over)
			}
		}
		want := 0
		tl.mu.Lock()
		if tick {
			tl.pace.Store(tl.paced.Swap(0))
		}
		if final {
			// Nothing reports after this one: the requests still waiting
			// are refused now rather than at their bound.
			if tl.next != nil {
				tl.next.err = errStopped
				close(tl.next.done)
				tl.next, tl.waiting = nil, 0
			}
		} else {
			want = tl.waiting
			p.r, tl.next, tl.waiting = tl.next, nil, 0
			// Enough for two intervals at the token's pace, so that a steady
			// stream of requests rarely waits. Within its first interval a
			// stream's pace so far counts, so leases double as it starts.
			pace := max(tl.pace.Load(), tl.paced.Load())
			ahead := 2*pace - tl.avail.Load()
			if room := tl.room.Load(); room >= 0 {
				ahead = min(ahead, room/8)
				if room < minRoomAhead {
					ahead = 0
				}
			}
			if ahead > 0 && !now.Before(tl.denied) && !tl.exact.Load() {
				want += int(min(ahead, tokend.MaxLease))
			}
			want = min(want, tokend.MaxLease)
		}
		if p.counted() || want > 0 {
			tl.touched = now
		}
		idle := now.Sub(tl.touched) > ledgerIdle
		tl.mu.Unlock()
		if !p.counted() && want == 0 && p.r == nil {
			if idle && !l.cached(&h) {
				delete(l.tokens, h)
			}
			continue
		}
		rep := client.UsageReport{TokenSHA256: tl.hash, Want: want}
		if p.counted() {
			rep.Requests = map[string]int64{}
			for o, n := range map[string]int64{client.OutcomeSuccess: p.success, client.OutcomeRateLimited: p.limited, client.OutcomeClientError: p.lacking} {
				if n > 0 {
					rep.Requests[o] = n
				}
			}
		}
		reports = append(reports, rep)
		parts = append(parts, p)
		if len(reports) == tokend.MaxUsageReports {
			break // the rest next time
		}
	}
	l.mu.Unlock()
	if len(reports) == 0 {
		return
	}
	leases, err := l.c.ReportUsage(ctx, reports)
	if err == nil && len(leases) != len(reports) {
		err = errors.New("tokend answered a usage report with another number of leases than tokens")
	}
	if err != nil {
		l.onError(err)
		// The counts are sent again next time, unless tokend refused the
		// report for good (a 4xx but 429: it would refuse it again).
		status := client.StatusOf(err)
		keep := status == 0 || status == http.StatusTooManyRequests || status >= 500
		for _, p := range parts {
			if keep {
				p.tl.success.Add(p.success)
				p.tl.limited.Add(p.limited)
				p.tl.lacking.Add(p.lacking)
			}
			if p.r != nil {
				p.r.err = err
				close(p.r.done)
			}
		}
		return
	}
	now = l.now()
	for i, p := range parts {
		le := &leases[i]
		p.tl.avail.Add(int64(le.Granted))
		if rl := le.RateLimit; rl != nil {
			p.tl.room.Store(int64(rl.Remaining))
		}
		if le.Code == client.CodeValid {
			p.tl.lift()
		}
		if refusal := leaseRefusal(le); refusal != nil {
			wait := le.RetryAfter()
			if wait <= 0 {
				wait = time.Second // NOT_FOUND, EXPIRED: the change stream evicts the token meanwhile
			}
			p.tl.mu.Lock()
			p.tl.denied, p.tl.denial = now.Add(wait), refusal
			p.tl.mu.Unlock()
		}
		if p.r != nil {
			close(p.r.done)
		}
	}
}

// errStopped fails the requests waiting for a lease when Run ends.
var errStopped = errors.New("the middleware stopped reporting to tokend")

// leaseRefusal is the refusal of requests of a token tokend leased none
// of, or nil when it may make more.
func leaseRefusal(le *client.Lease) *Error {
	switch le.Code {
	case client.CodeRateLimited:
		return limitRefusal(le.Reason == tokend.ReasonTokenRateLimited, le.RateLimit, 0) // admit sets RetryAfter
	case client.CodeUsageExceeded:
		e := quotaRefusal(le.Quota, time.Time{})
		e.RetryAfter = 0 // admit sets RetryAfter
		return e
	case client.CodeNotFound:
		return errInvalid
	case client.CodeExpired:
		return errExpired
	}
	return nil
}
