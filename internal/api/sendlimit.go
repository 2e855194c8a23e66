package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/tokend/tokend"
)

// SendLimits bound the sends a server has in flight: each reads its body
// whole, decodes it and renders its emails in memory, taking a few times the
// body's size (16 MiB for a send, 50 MiB for a batch), so that without a
// bound a few clients sending at once could exhaust the memory. A send
// beyond a bound waits up to Wait for room, then is refused: 429 when its
// account has PerAccount sends in flight, 503 when the server is full. Zero
// fields take the defaults.
type SendLimits struct {
	// PerAccount is how many sends one account may have in flight (default 2).
	PerAccount int
	// Total is how many sends the server may have in flight (default 8).
	Total int
	// Bytes bounds the bodies of the sends in flight, each counted at its
	// Content-Length, or at its route's bound when it declares none (default
	// 128 MiB). A send larger than Bytes alone still runs when nothing else does.
	Bytes int64
	// Wait is how long a send waits for room before it is refused (default 2 s).
	Wait time.Duration
}

// Defaults of SendLimits.
const (
	DefaultSendsPerAccount = 2
	DefaultSendsInFlight   = 8
	defaultSendBytes       = 128 << 20
	defaultSendWait        = 2 * time.Second
)

func (l SendLimits) withDefaults() SendLimits {
	if l.PerAccount <= 0 {
		l.PerAccount = DefaultSendsPerAccount
	}
	if l.Total <= 0 {
		l.Total = DefaultSendsInFlight
	}
	if l.Bytes <= 0 {
		l.Bytes = defaultSendBytes
	}
	if l.Wait <= 0 {
		l.Wait = defaultSendWait
	}
	return l
}

// sendLimiter admits sends within SendLimits.
type sendLimiter struct {
	limits SendLimits

	mu       sync.Mutex
	total    int
	bytes    int64
	accounts map[int64]int // sends in flight by account; no entry for none
	freed    chan struct{} // closed, then replaced, whenever a send ends
}

func newSendLimiter(l SendLimits) *sendLimiter {
	return &sendLimiter{limits: l.withDefaults(), accounts: map[int64]int{}, freed: make(chan struct{})}
}

// acquire waits until a send of size bytes by account fits within the
// limits, and returns the function that ends it. After Wait, or when ctx is
// done, it gives up with the error of the bound that was full: ERATELIMITED
// (reason too_many_sends) for the account's, EUNAVAILABLE (reason
// server_busy) for the server's.
func (l *sendLimiter) acquire(ctx context.Context, account, size int64) (func(), error) {
	var timeout <-chan time.Time
	for {
		l.mu.Lock()
		accountFull := l.accounts[account] >= l.limits.PerAccount
		serverFull := l.total >= l.limits.Total || l.bytes > 0 && l.bytes+size > l.limits.Bytes
		if !accountFull && !serverFull {
			l.accounts[account]++
			l.total++
			l.bytes += size
			l.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { l.release(account, size) }) }, nil
		}
		freed := l.freed
		l.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(l.limits.Wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-freed:
			continue
		case <-timeout:
		case <-ctx.Done():
		}
		if accountFull {
			return nil, &tokend.Error{Code: tokend.ERATELIMITED, Reason: "too_many_sends", Message: fmt.Sprintf(
				"This account already has %d sends in flight, the most it may have at once: retry when one has been answered", l.limits.PerAccount)}
		}
		return nil, &tokend.Error{Code: tokend.EUNAVAILABLE, Reason: "server_busy",
			Message: "The server is busy with other sends: retry in a moment"}
	}
}

func (l *sendLimiter) release(account, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.accounts[account]--; l.accounts[account] <= 0 {
		delete(l.accounts, account)
	}
	l.total--
	l.bytes -= size
	close(l.freed)
	l.freed = make(chan struct{})
}

// admitSend is where every sending route starts, once the caller is known
// and before its body is read: it waits for room for the send (see
// SendLimits) and returns the function that ends it. A send refused gets
// Retry-After, and its connection is closed rather than its body read.
func (s *Server) admitSend(w http.ResponseWriter, r *http.Request, caller *tokend.Token, bound int64) (func(), error) {
	size := bound
	if r.ContentLength >= 0 && r.ContentLength < bound {
		size = max(r.ContentLength, 1)
	}
	release, err := s.sends.acquire(r.Context(), caller.AccountID, size)
	if err != nil {
		h := w.Header()
		h.Set("Retry-After", seconds(s.sends.limits.Wait))
		h.Set("Connection", "close")
		return nil, err
	}
	return release, nil
}
