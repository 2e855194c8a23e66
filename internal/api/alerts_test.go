package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/alert"
)

// receiver is a real local webhook endpoint that fails its first `failures`
// deliveries with 500, then accepts; block, when set, holds every delivery
// until it is closed.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	attempts int
	events   []alert.Event
	got      chan alert.Event
}

func newReceiver(t *testing.T, failures int, block chan struct{}) *receiver {
	rc := &receiver{got: make(chan alert.Event, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if block != nil {
			<-block
		}
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.attempts++
		fail := rc.attempts <= failures
		rc.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook got %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if fail {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var e alert.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		rc.mu.Lock()
		rc.events = append(rc.events, e)
		rc.mu.Unlock()
		rc.got <- e
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// await returns the first delivered event of type typ, waiting at most 10 s.
func (rc *receiver) await(t *testing.T, typ string) alert.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	rc.mu.Lock()
	for _, e := range rc.events {
		if e.Type == typ {
			rc.mu.Unlock()
			return e
		}
	}
	rc.mu.Unlock()
	for {
		select {
		case e := <-rc.got:
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s alert delivered within 10 s", typ)
		}
	}
}

type deliveries struct {
	mu     sync.Mutex
	counts map[string]int
}

func (d *deliveries) add(result string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[result]++
}

func (d *deliveries) get(result string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[result]
}

func monitorFor(t *testing.T, e **env, rc *receiver, threshold int, d *deliveries) envOption {
	return withAlerts(func(svc *tokend.Service) *alert.Monitor {
		m := alert.New(alert.Options{
			Threshold: threshold, Window: time.Minute, WebhookURL: rc.srv.URL, Backoff: 10 * time.Millisecond, Attempts: 5,
			Record:      func(ctx context.Context, ev alert.Event) error { return svc.RecordEvent(ctx, ev.AuditEvent()) },
			NoteNetwork: svc.NoteNetwork,
			Delivery:    d.add,
			Now:         func() time.Time { return (*e).clock.Now() },
		})
		m.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m.Close(ctx)
		})
		return m
	})
}

func TestAlertsReachTheWebhookAndTheAuditLog(t *testing.T) {
	rc := newReceiver(t, 2, nil)
	d := &deliveries{counts: map[string]int{}}
	var e *env
	e = newEnv(t, monitorFor(t, &e, rc, 3, d))
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10))

	// Three 403s for one token from one address: a token alert and an address alert.
	for i := 0; i < 3; i++ {
		e.send(request{method: "POST", path: e.path("/api/accounts/%d/projects", e.acme), token: viewer.Token, from: "127.0.0.7",
			body: map[string]any{"project": map[string]any{"name": "x"}}}).want(403)
	}
	tokEvent := rc.await(t, alert.TypeTokenFailures)
	if tokEvent.TokenID != viewer.ID || tokEvent.AccountID != e.acme || tokEvent.Count != 3 || tokEvent.WindowSeconds != 60 {
		t.Errorf("token alert = %+v", tokEvent)
	}
	addrEvent := rc.await(t, alert.TypeAddressFailures)
	if addrEvent.ClientAddr != "127.0.0.7" || addrEvent.Count != 3 {
		t.Errorf("address alert = %+v", addrEvent)
	}
	if got := d.get("retried"); got != 2 {
		t.Errorf("%d retries, want 2 (the receiver failed twice, then recovered)", got)
	}
	// A fourth failure in the same window does not alert again.
	e.send(request{method: "POST", path: e.path("/api/accounts/%d/projects", e.acme), token: viewer.Token, from: "127.0.0.7",
		body: map[string]any{"project": map[string]any{"name": "x"}}}).want(403)

	// First use from a second network: a new-network alert (the first network is the baseline).
	e.send(request{method: "GET", path: "/api/accounts", token: viewer.Token, from: "127.0.0.1"}).want(200)
	e.send(request{method: "GET", path: "/api/accounts", token: viewer.Token, from: "127.0.1.1"}).want(200)
	netEvent := rc.await(t, alert.TypeNewNetwork)
	if netEvent.TokenID != viewer.ID || netEvent.Network != "127.0.1.0/24" || netEvent.ClientAddr != "127.0.1.1" {
		t.Errorf("new network alert = %+v", netEvent)
	}

	// The account's alerts are in its audit log.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var page auditPage
		e.get("/api/audit_log?limit=200", e.admin).want(200).decode(&page)
		found := map[string]bool{}
		for _, ev := range page.Data {
			found[ev.Action] = true
		}
		if found["alert.token_failures"] && found["alert.new_network"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts missing from the audit log: %v", found)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.mu.Lock()
	n := len(rc.events)
	rc.mu.Unlock()
	if n != 3 {
		t.Errorf("%d alerts delivered, want 3 (one each)", n)
	}
}

// A webhook that hangs never holds up a request.
func TestAlertsNeverBlockRequests(t *testing.T) {
	block := make(chan struct{})
	rc := newReceiver(t, 0, block)
	d := &deliveries{counts: map[string]int{}}
	var e *env
	e = newEnv(t, monitorFor(t, &e, rc, 2, d))
	defer close(block)
	for i := 0; i < 50; i++ {
		// Every one of these answers while the receiver is still holding the first delivery.
		e.send(request{method: "GET", path: "/api/api_tokens", token: fmt.Sprintf("tk_live_guess%d", i), from: "127.0.0.8"}).want(401)
	}
	if d.get("delivered") != 0 {
		t.Fatal("a delivery completed although the receiver was blocked")
	}
}
