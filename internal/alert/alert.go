// Package alert watches answered requests for unusual activity and reports it:
// a token or a client address crossing a threshold of 401/403/429 answers
// within a window, or a token used from a client network it was never used
// from before. Each alert is recorded at once (the audit log), together with
// its webhook delivery as a job in the durable outbox, which internal/jobs
// workers deliver with retries. Nothing here blocks a request: observations
// are counted in memory and the recording happens on a background worker
// that never waits for a webhook.
package alert

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/tokend/tokend"
)

// Alert types.
const (
	TypeTokenFailures   = "token_failures"   // one token crossed the threshold
	TypeAddressFailures = "address_failures" // one client address crossed the threshold
	TypeNewNetwork      = "new_network"      // a token was used from a network new to it
)

// Event is one alert, as the webhook receives it.
type Event struct {
	Type          string    `json:"type"`
	At            time.Time `json:"at"`
	Message       string    `json:"message"`
	AccountID     int64     `json:"account_id,omitempty"`
	TokenID       int64     `json:"token_id,omitempty"`
	ClientAddr    string    `json:"client_addr,omitempty"`
	Network       string    `json:"network,omitempty"`
	Count         int       `json:"count,omitempty"`
	WindowSeconds int       `json:"window_seconds,omitempty"`
}

// AuditEvent is how the alert appears in the audit log: under its account
// (none for address alerts), acted by "tokend", action "alert.<type>".
func (e Event) AuditEvent() *tokend.AuditEvent {
	target, id := "client", int64(0)
	if e.TokenID != 0 {
		target, id = "api_token", e.TokenID
	}
	details := map[string]any{"message": e.Message}
	if e.Count > 0 {
		details["count"], details["window_seconds"] = e.Count, e.WindowSeconds
	}
	if e.Network != "" {
		details["network"] = e.Network
	}
	return &tokend.AuditEvent{AccountID: e.AccountID, At: e.At, Actor: "tokend", Action: tokend.ActionAlertPrefix + e.Type,
		TargetType: target, TargetID: id, ClientAddr: e.ClientAddr, Details: details}
}

// Observation is one answered request. TokenID and AccountID are 0 when the
// request did not authenticate.
type Observation struct {
	At        time.Time
	Addr      string // client IP
	Status    int
	TokenID   int64
	AccountID int64
}

// Options configures a Monitor.
type Options struct {
	Threshold int           // failures within Window that raise an alert (default 20)
	Window    time.Duration // default 1 minute

	// Record writes an alert to the audit log, with its webhook delivery
	// when one is configured, in one transaction.
	Record func(context.Context, Event) error
	// NoteNetwork records that a token was used from network and reports
	// whether that is new for it and how many networks it had before.
	NoteNetwork func(ctx context.Context, tokenID int64, network string) (isNew bool, before int, err error)
	// Raised is told of each alert raised, by type; Dropped of each alert
	// that could not be recorded (the recording queue was full because the
	// database is stuck). Both may be nil.
	Raised, Dropped func(typ string)

	Logger *slog.Logger
	Now    func() time.Time // the clock for sweeping ended windows; time.Now if nil
}

const shards = 32

// Monitor is safe for concurrent use. Run does its background work.
type Monitor struct {
	opts   Options
	seed   maphash.Seed
	counts [shards]countShard
	known  [shards]networkShard

	events   chan Event
	networks chan networkCheck
}

type countKey struct {
	tokenID int64
	addr    string
}

type window struct {
	start time.Time
	n     int
	fired bool
	// accountID of the token, for token alerts.
	accountID int64
}

type countShard struct {
	mu sync.Mutex
	m  map[countKey]*window
}

type networkShard struct {
	mu sync.Mutex
	m  map[tokenNetwork]struct{}
}

// tokenNetwork is a token and a network it was used from, held as a value
// so that a request from a network already seen allocates nothing.
type tokenNetwork struct {
	tokenID int64
	network netip.Prefix
}

type networkCheck struct {
	tokenNetwork
	accountID int64
	addr      string
	at        time.Time
}

// New returns a Monitor; run it with Run.
func New(opts Options) *Monitor {
	if opts.Threshold <= 0 {
		opts.Threshold = 20
	}
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Monitor{opts: opts, seed: maphash.MakeSeed(),
		events: make(chan Event, 1024), networks: make(chan networkCheck, 4096)}
	for i := range m.counts {
		m.counts[i].m = make(map[countKey]*window)
		m.known[i].m = make(map[tokenNetwork]struct{})
	}
	return m
}

// drainGrace bounds how long Run records the alerts still queued once its
// context ends.
const drainGrace = 15 * time.Second

// Observe counts one answered request. It never blocks.
func (m *Monitor) Observe(o Observation) {
	switch o.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		if o.TokenID != 0 {
			m.countFailure(countKey{tokenID: o.TokenID}, o)
		}
		if o.Addr != "" {
			m.countFailure(countKey{addr: o.Addr}, o)
		}
	}
	if o.TokenID != 0 && o.Status < 400 && o.Addr != "" {
		m.checkNetwork(o)
	}
}

func (m *Monitor) countFailure(k countKey, o Observation) {
	s := &m.counts[maphash.Comparable(m.seed, k)%shards]
	s.mu.Lock()
	w := s.m[k]
	if w == nil || o.At.Sub(w.start) >= m.opts.Window {
		w = &window{start: o.At}
		s.m[k] = w
	}
	w.n++
	if o.AccountID != 0 {
		w.accountID = o.AccountID
	}
	fire := w.n >= m.opts.Threshold && !w.fired
	if fire {
		w.fired = true
	}
	n, accountID := w.n, w.accountID
	s.mu.Unlock()
	if !fire {
		return
	}
	e := Event{At: o.At, Count: n, WindowSeconds: int(m.opts.Window / time.Second)}
	if k.tokenID != 0 {
		e.Type, e.TokenID, e.AccountID = TypeTokenFailures, k.tokenID, accountID
		e.Message = fmt.Sprintf("API token %d got %d answers of 401, 403 or 429 within %s", k.tokenID, n, m.opts.Window)
	} else {
		e.Type, e.ClientAddr = TypeAddressFailures, k.addr
		e.Message = fmt.Sprintf("Client %s got %d answers of 401, 403 or 429 within %s", k.addr, n, m.opts.Window)
	}
	m.raise(e)
}

// NetworkOf returns the network a client address belongs to for new-network
// alerts: its /24 for IPv4, its /64 for IPv6.
func NetworkOf(addr string) (string, bool) {
	p, ok := networkOf(addr)
	if !ok {
		return "", false
	}
	return p.String(), true
}

func networkOf(addr string) (netip.Prefix, bool) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

func (m *Monitor) checkNetwork(o Observation) {
	network, ok := networkOf(o.Addr)
	if !ok {
		return
	}
	k := tokenNetwork{o.TokenID, network}
	s := &m.known[maphash.Comparable(m.seed, k)%shards]
	s.mu.Lock()
	_, seen := s.m[k]
	if !seen {
		s.m[k] = struct{}{}
	}
	s.mu.Unlock()
	if seen {
		return
	}
	select {
	case m.networks <- networkCheck{tokenNetwork: k, accountID: o.AccountID, addr: o.Addr, at: o.At}:
	default: // saturated: forget it so that a later request checks again
		s.mu.Lock()
		delete(s.m, k)
		s.mu.Unlock()
	}
}

func (m *Monitor) raise(e Event) {
	if m.opts.Raised != nil {
		m.opts.Raised(e.Type)
	}
	select {
	case m.events <- e:
	default:
		m.dropped(e, "the recording queue is full: the database is not keeping up")
	}
}

// dropped counts and logs an alert that will never reach the audit log.
func (m *Monitor) dropped(e Event, why string) {
	if m.opts.Dropped != nil {
		m.opts.Dropped(e.Type)
	}
	m.opts.Logger.Error("alert dropped", "type", e.Type, "reason", why, "message", e.Message,
		"token_id", e.TokenID, "client_addr", e.ClientAddr)
}

// Run records alerts and checks new networks until ctx ends, then records
// the alerts already raised (for up to drainGrace). Observations after Run
// returned are counted but no longer reported. It never waits on a webhook:
// delivery is the outbox's.
func (m *Monitor) Run(ctx context.Context) error {
	sweep := time.NewTicker(m.opts.Window)
	defer sweep.Stop()
	work := context.WithoutCancel(ctx) // a record begun is not cut short
	for {
		select {
		case e := <-m.events:
			m.handle(work, e)
		case c := <-m.networks:
			m.noteNetwork(work, c)
		case <-sweep.C:
			m.sweep(m.opts.Now())
		case <-ctx.Done():
			drain, cancel := context.WithTimeout(work, drainGrace)
			defer cancel()
			for {
				select {
				case e := <-m.events:
					m.handle(drain, e)
				default:
					return nil
				}
			}
		}
	}
}

func (m *Monitor) noteNetwork(ctx context.Context, c networkCheck) {
	if m.opts.NoteNetwork == nil {
		return
	}
	network := c.network.String()
	isNew, before, err := m.opts.NoteNetwork(ctx, c.tokenID, network)
	if err != nil {
		m.opts.Logger.Error("recording a token's network", "token_id", c.tokenID, "err", err)
		return
	}
	if isNew && before > 0 {
		m.raise(Event{Type: TypeNewNetwork, At: c.at, AccountID: c.accountID, TokenID: c.tokenID,
			ClientAddr: c.addr, Network: network,
			Message: fmt.Sprintf("API token %d was used from %s, a network it had not been used from before", c.tokenID, network)})
	}
}

func (m *Monitor) handle(ctx context.Context, e Event) {
	m.opts.Logger.Warn("alert", "type", e.Type, "message", e.Message, "token_id", e.TokenID, "client_addr", e.ClientAddr)
	if m.opts.Record == nil {
		return
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a busy database gets a moment, not the queue
		if err = m.opts.Record(ctx, e); err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	m.dropped(e, "recording failed: "+err.Error())
}

// sweep forgets failure windows that have ended.
func (m *Monitor) sweep(now time.Time) {
	for i := range m.counts {
		s := &m.counts[i]
		s.mu.Lock()
		for k, w := range s.m {
			if now.Sub(w.start) >= m.opts.Window {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}
