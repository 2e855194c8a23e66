// Package alert watches answered requests for unusual activity and reports it:
// a token or a client address crossing a threshold of 401/403/429 answers
// within a window, or a token used from a client network it was never used
// from before. Each alert is recorded (the audit log) and sent as JSON to a
// webhook with retries. Nothing here blocks a request: observations are
// counted in memory and all I/O happens on a background worker.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
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

	WebhookURL string        // "" records alerts without sending them
	Client     *http.Client  // default: 5 s timeout
	Attempts   int           // delivery attempts per alert (default 5)
	Backoff    time.Duration // wait before the second attempt, doubling after (default 1 s)

	// Record writes an alert to the audit log.
	Record func(context.Context, Event) error
	// NoteNetwork records that a token was used from network and reports
	// whether that is new for it and how many networks it had before.
	NoteNetwork func(ctx context.Context, tokenID int64, network string) (isNew bool, before int, err error)
	// Counted is told of each alert raised and each delivery result
	// ("delivered", "retried", "failed", "dropped"); both may be nil.
	Raised, Delivery func(label string)

	Logger *slog.Logger
	Now    func() time.Time // the clock for sweeping ended windows; time.Now if nil
}

const shards = 32

// Monitor is safe for concurrent use. Start it with Start and stop it with Close.
type Monitor struct {
	opts   Options
	seed   maphash.Seed
	counts [shards]countShard
	known  [shards]networkShard

	events   chan Event
	networks chan networkCheck
	quit     chan struct{}
	done     chan struct{}
	stop     sync.Once
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

type tokenNetwork struct {
	tokenID int64
	network string
}

type networkCheck struct {
	tokenNetwork
	accountID int64
	addr      string
	at        time.Time
}

// New returns a Monitor; call Start before observing.
func New(opts Options) *Monitor {
	if opts.Threshold <= 0 {
		opts.Threshold = 20
	}
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Monitor{opts: opts, seed: maphash.MakeSeed(),
		events: make(chan Event, 1024), networks: make(chan networkCheck, 4096),
		quit: make(chan struct{}), done: make(chan struct{})}
	for i := range m.counts {
		m.counts[i].m = make(map[countKey]*window)
		m.known[i].m = make(map[tokenNetwork]struct{})
	}
	return m
}

// Start runs the background worker until Close.
func (m *Monitor) Start() {
	go m.work()
}

// Close stops the worker once the alerts already raised are recorded and
// delivered, or when ctx ends. Observations after Close are counted but no
// longer reported.
func (m *Monitor) Close(ctx context.Context) error {
	m.stop.Do(func() { close(m.quit) })
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

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
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return "", false
	}
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return "", false
	}
	return p.String(), true
}

func (m *Monitor) checkNetwork(o Observation) {
	network, ok := NetworkOf(o.Addr)
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
		m.delivered("dropped")
		m.opts.Logger.Warn("alert dropped: queue full", "type", e.Type)
	}
}

func (m *Monitor) delivered(result string) {
	if m.opts.Delivery != nil {
		m.opts.Delivery(result)
	}
}

// work records and delivers alerts and checks new networks until Close,
// then drains what is queued.
func (m *Monitor) work() {
	defer close(m.done)
	sweep := time.NewTicker(m.opts.Window)
	defer sweep.Stop()
	ctx := context.Background()
	for {
		select {
		case e := <-m.events:
			m.handle(ctx, e)
		case c := <-m.networks:
			m.noteNetwork(ctx, c)
		case <-sweep.C:
			m.sweep(m.opts.Now())
		case <-m.quit:
			for {
				select {
				case e := <-m.events:
					m.handle(ctx, e)
				default:
					return
				}
			}
		}
	}
}

func (m *Monitor) noteNetwork(ctx context.Context, c networkCheck) {
	if m.opts.NoteNetwork == nil {
		return
	}
	isNew, before, err := m.opts.NoteNetwork(ctx, c.tokenID, c.network)
	if err != nil {
		m.opts.Logger.Error("recording a token's network", "token_id", c.tokenID, "err", err)
		return
	}
	if isNew && before > 0 {
		m.raise(Event{Type: TypeNewNetwork, At: c.at, AccountID: c.accountID, TokenID: c.tokenID,
			ClientAddr: c.addr, Network: c.network,
			Message: fmt.Sprintf("API token %d was used from %s, a network it had not been used from before", c.tokenID, c.network)})
	}
}

func (m *Monitor) handle(ctx context.Context, e Event) {
	if m.opts.Record != nil {
		if err := m.opts.Record(ctx, e); err != nil {
			m.opts.Logger.Error("recording an alert", "type", e.Type, "err", err)
		}
	}
	m.opts.Logger.Warn("alert", "type", e.Type, "message", e.Message, "token_id", e.TokenID, "client_addr", e.ClientAddr)
	if m.opts.WebhookURL == "" {
		return
	}
	body, err := json.Marshal(e)
	if err != nil {
		m.opts.Logger.Error("encoding an alert", "err", err)
		return
	}
	wait := m.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := m.post(ctx, body)
		if err == nil {
			m.delivered("delivered")
			return
		}
		if attempt == m.opts.Attempts {
			m.delivered("failed")
			m.opts.Logger.Error("alert webhook failed; giving up", "type", e.Type, "attempts", attempt, "err", err)
			return
		}
		m.delivered("retried")
		m.opts.Logger.Warn("alert webhook failed; retrying", "type", e.Type, "attempt", attempt, "retry_in", wait, "err", err)
		time.Sleep(wait)
		wait *= 2
	}
}

func (m *Monitor) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.opts.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokend-alerts")
	res, err := m.opts.Client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", res.Status)
	}
	return nil
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
