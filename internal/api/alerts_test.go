package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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

// monitorFor sends the server's alerts, raised after threshold events, to
// rc's webhook, counting each delivery's outcome in d.
func monitorFor(rc *receiver, threshold int, d *deliveries) envOption {
	return withAlerts(rc.srv.URL, threshold, d.add)
}

func TestAlertsReachTheWebhookAndTheAuditLog(t *testing.T) {
	rc := newReceiver(t, 2, nil)
	d := &deliveries{counts: map[string]int{}}
	e := newEnv(t, monitorFor(rc, 3, d))
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

// A webhook that hangs holds up neither requests nor the audit log: every
// alert is recorded at once, and waits in the outbox for the webhook.
func TestAlertsNeverWaitForTheWebhook(t *testing.T) {
	block := make(chan struct{})
	rc := newReceiver(t, 0, block)
	d := &deliveries{counts: map[string]int{}}
	e := newEnv(t, monitorFor(rc, 2, d))
	defer close(block) // before the receiver's Close, which waits for its handlers
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10))

	// Token alerts, one per token, while every delivery hangs.
	const tokens = 12
	ids := map[int64]bool{}
	for i := 0; i < tokens; i++ {
		tok := e.createToken(e.admin, fmt.Sprintf("t%d", i), perm("account", e.acme, 10))
		ids[tok.ID] = true
		for j := 0; j < 2; j++ {
			e.send(request{method: "POST", path: e.path("/api/accounts/%d/projects", e.acme), token: tok.Token,
				body: map[string]any{"project": map[string]any{"name": "x"}}}).want(403)
		}
	}
	_ = viewer
	// Every one of them is in the audit log, with the webhook still hanging.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var page auditPage
		e.get("/api/audit_log?limit=200", e.admin).want(200).decode(&page)
		found := 0
		for _, ev := range page.Data {
			if ev.Action == "alert.token_failures" && ev.TargetID != nil && ids[*ev.TargetID] {
				found++
			}
		}
		if found == tokens {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d alerts reached the audit log while the webhook hung", found, tokens)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.get("delivered")+d.get("failed")+d.get("dropped") != 0 {
		t.Errorf("deliveries %v although the receiver hangs", d.counts)
	}
}
