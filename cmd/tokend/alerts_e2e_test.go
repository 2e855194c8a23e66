package main_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// hook is a webhook receiver whose behaviour a test switches: "down" answers
// 503, "hang" holds requests until the test ends, "up" accepts.
type hook struct {
	srv    *httptest.Server
	mode   atomic.Value // string
	mu     sync.Mutex
	events []map[string]any
	hung   chan struct{}
}

func newHook(t *testing.T, mode string) *hook {
	h := &hook{hung: make(chan struct{})}
	h.mode.Store(mode)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch h.mode.Load().(string) {
		case "down":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		case "hang":
			select {
			case <-h.hung:
			case <-r.Context().Done():
			}
			return
		}
		var e map[string]any
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}))
	t.Cleanup(func() { close(h.hung); h.srv.Close() })
	return h
}

func (h *hook) received() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...)
}

// raiseAddressAlert makes three failed authentications, which with
// --alert-threshold 3 raise one address alert.
func raiseAddressAlert(t *testing.T, s *testutil.Process, admin string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		call(t, "GET", s.URL+"/api/whoami", admin[:len(admin)-2]+"zz", "")
	}
}

// An alert raised while the webhook is down survives a restart of tokend and
// reaches the webhook once it is back.
func TestAlertDeliverySurvivesRestart(t *testing.T) {
	h := newHook(t, "down")
	db := filepath.Join(t.TempDir(), "tokend.db")
	args := []string{"--db", db, "--alert-webhook", h.srv.URL, "--alert-threshold", "3"}
	s := tokend.Serve(t, nil, args...)
	admin := s.WaitToken(t)
	raiseAddressAlert(t, s, admin)
	waitFor(t, 5*time.Second, "a failed delivery attempt in the log", func() bool {
		return strings.Contains(s.Stderr.String(), "outbox job failed; retrying")
	})
	s.Stop(t)

	h.mode.Store("up")
	again := tokend.Serve(t, nil, args...)
	waitFor(t, 15*time.Second, "the alert to reach the webhook after the restart", func() bool { return len(h.received()) == 1 })
	if e := h.received()[0]; e["type"] != "address_failures" || e["client_addr"] != "127.0.0.1" {
		t.Errorf("webhook got %v", e)
	}
	again.Stop(t)
	if n := len(h.received()); n != 1 {
		t.Errorf("the alert was delivered %d times", n)
	}
}

// tokend killed while a delivery is in flight loses nothing: the job's lease
// runs out and the next process delivers it.
func TestAlertDeliverySurvivesKill(t *testing.T) {
	h := newHook(t, "hang")
	db := filepath.Join(t.TempDir(), "tokend.db")
	args := []string{"--db", db, "--alert-webhook", h.srv.URL, "--alert-threshold", "3"}
	s := tokend.Serve(t, nil, args...)
	admin := s.WaitToken(t)
	raiseAddressAlert(t, s, admin)
	waitFor(t, 5*time.Second, "the alert's log line", func() bool {
		return strings.Contains(s.Stderr.String(), `"msg":"alert"`)
	})
	time.Sleep(200 * time.Millisecond) // the delivery is now hanging in the webhook
	s.Kill(t)

	h.mode.Store("up")
	again := tokend.Serve(t, nil, args...)
	// The lease of the interrupted attempt (the attempt timeout plus 15 s) must run out first.
	waitFor(t, 40*time.Second, "the interrupted alert to be delivered by the next process", func() bool { return len(h.received()) >= 1 })
	if e := h.received()[0]; e["type"] != "address_failures" {
		t.Errorf("webhook got %v", e)
	}
	again.Stop(t)
}

// A webhook that refuses an alert for good (a 4xx) is not asked again: the
// job ends failed, counted in the metrics and logged.
func TestAlertRefusedByWebhookFailsAtOnce(t *testing.T) {
	var attempts atomic.Int32
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer refuse.Close()
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db, "--alert-webhook", refuse.URL, "--alert-threshold", "3")
	admin := s.WaitToken(t)
	raiseAddressAlert(t, s, admin)
	waitFor(t, 5*time.Second, "the delivery to fail", func() bool {
		_, body := call(t, "GET", s.URL+"/metrics", "", "")
		return strings.Contains(body, `tokend_alert_deliveries_total{result="failed"} 1`)
	})
	time.Sleep(1500 * time.Millisecond) // a retry, if there were one, would come after 1 s
	if n := attempts.Load(); n != 1 {
		t.Errorf("the webhook was asked %d times, want once", n)
	}
	if !strings.Contains(s.Stderr.String(), "outbox job failed; giving up") {
		t.Errorf("no log line for the failed delivery:\n%s", s.Stderr.String())
	}
	s.Stop(t)
}
