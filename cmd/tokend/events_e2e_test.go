package main_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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

// eventReceiver is a webhook endpoint on loopback that can be down (503),
// and keeps each event it takes once, by event_id.
type eventReceiver struct {
	url    string
	down   atomic.Bool
	mu     sync.Mutex
	events map[string]map[string]any
	bodies [][]byte
	sigs   []string
}

func startEventReceiver(t *testing.T) *eventReceiver {
	r := &eventReceiver{events: map[string]map[string]any{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(req.Body)
		var payload struct{ Events []map[string]any }
		if err := json.Unmarshal(body, &payload); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, ev := range payload.Events {
			r.events[fmt.Sprint(ev["event_id"])] = ev
		}
		r.bodies, r.sigs = append(r.bodies, body), append(r.sigs, req.Header.Get("Mailtrap-Signature"))
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// byMessage returns the event types received for each message.
func (r *eventReceiver) byMessage() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, ev := range r.events {
		id := fmt.Sprint(ev["message_id"])
		out[id] = append(out[id], fmt.Sprint(ev["event"]))
	}
	return out
}

// An endpoint that is down while mail is delivered, and a kill -9 of tokend
// with the deliveries still waiting: after a restart, with the endpoint
// back, every event of every accepted message reaches it, signed.
func TestWebhookEventsSurviveAnOutageAndKill(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.RefuseRecipient("gone@example.org", 550, "5.1.1", "no such user")
	db := filepath.Join(t.TempDir(), "events.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	args := []string{"--db", db, "--smtp-relay", "smtp://" + relay.Addr, "--dns-resolver", dns.Addr(), "--webhook-allow-http"}
	s := tokend.Serve(t, nil, args...)
	dkimRecord(t, s.URL, account, admin, "example.com", dns)
	rcv := startEventReceiver(t)
	rcv.down.Store(true)
	code, body := call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/webhooks", s.URL, account), admin,
		`{"webhook": {"url": "`+rcv.url+`", "webhook_type": "email_sending", "event_types": ["delivery", "bounce"]}}`)
	var hook struct {
		Data struct {
			SigningSecret string `json:"signing_secret"`
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &hook) != nil || hook.Data.SigningSecret == "" {
		t.Fatalf("create webhook: %d %s", code, body)
	}

	want := map[string]string{} // message id → the event it must get
	for i := range 20 {
		to := fmt.Sprintf("r%d@example.org", i)
		if i == 7 {
			to = "gone@example.org"
		}
		code, body := call(t, "POST", s.URL+"/api/send", admin, sendBody("app@example.com", to))
		var sent struct {
			MessageIDs []string `json:"message_ids"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &sent) != nil || len(sent.MessageIDs) != 1 {
			t.Fatalf("send: %d %s", code, body)
		}
		want[sent.MessageIDs[0]] = map[bool]string{true: "bounce", false: "delivery"}[i == 7]
	}
	// Every message is final (its event written, its webhook delivery
	// failing against the endpoint that is down) before the kill.
	pending := fmt.Sprintf("%s/api/accounts/%d/email_logs?filters[status][operator]=equal&filters[status][value]=enqueued", s.URL, account)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := call(t, "GET", pending, admin, "")
		if strings.Contains(body, `"total_count":0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still enqueued: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Kill(t)
	rcv.down.Store(false)
	s = tokend.Serve(t, nil, args...)
	deadline = time.Now().Add(90 * time.Second)
	for {
		got := rcv.byMessage()
		missing := 0
		for id, event := range want {
			if !strings.Contains(strings.Join(got[id], " "), event) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages' events never reached the endpoint: got %v", missing, len(want), got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for i, b := range rcv.bodies {
		mac := hmac.New(sha256.New, []byte(hook.Data.SigningSecret))
		mac.Write(b)
		if rcv.sigs[i] != hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("delivery %d is not signed with the webhook's secret", i)
		}
	}
	s.Stop(t)
}

// Clients that retry their sends under an Idempotency-Key until they get an
// answer, through a kill -9 of tokend: each key is sent once. The relay is
// down until the restart, so that no copy is relayed twice for any other
// reason (a delivery the kill cut short is retried, at least once, by design).
func TestIdempotentRetriesThroughAKillSendOnce(t *testing.T) {
	// Most of its time waits for the leases the kill left to run out (35 s):
	// it waits beside the other parallel tests.
	t.Parallel()
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.Stop()
	db := filepath.Join(t.TempDir(), "idem.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	args := []string{"--db", db, "--smtp-relay", "smtp://" + relay.Addr, "--dns-resolver", dns.Addr()}
	s := tokend.Serve(t, nil, args...)
	dkimRecord(t, s.URL, account, admin, "example.com", dns)

	var mu sync.Mutex
	url := s.URL
	answers := map[string][]string{} // key → message ids, from every answer it got
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	stopAt := time.Now().Add(800 * time.Millisecond)
	giveUp := time.Now().Add(60 * time.Second)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stopAt); i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				body := sendBody("app@example.com", fmt.Sprintf("%s@example.org", key))
				for time.Now().Before(giveUp) { // retry until answered
					mu.Lock()
					base := url
					mu.Unlock()
					req, _ := http.NewRequest("POST", base+"/api/send", strings.NewReader(body))
					req.Header.Set("Api-Token", admin)
					req.Header.Set("Idempotency-Key", key)
					res, err := client.Do(req)
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					var out struct {
						MessageIDs []string `json:"message_ids"`
					}
					err = json.NewDecoder(res.Body).Decode(&out)
					res.Body.Close()
					if res.StatusCode != 200 || err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					mu.Lock()
					answers[key] = append(answers[key], out.MessageIDs...)
					mu.Unlock()
					break
				}
			}
		}()
	}
	time.Sleep(time.Until(stopAt.Add(-300 * time.Millisecond)))
	s.Kill(t)
	s = tokend.Serve(t, nil, args...)
	mu.Lock()
	url = s.URL
	mu.Unlock()
	relay.Start(t) // no kill from now on: each message is relayed once
	wg.Wait()

	ids := map[string]bool{}
	for key, got := range answers {
		for _, id := range got {
			ids[id] = true
		}
		if len(got) != 1 {
			t.Errorf("key %s answered %v", key, got)
		}
	}
	if len(answers) < 20 {
		t.Fatalf("only %d keys answered", len(answers))
	}
	// Every key retried after the kill (its first try lost with the
	// process) is answered as its first try was stored: no key has a second
	// message. Ask again for one key of each worker, and count the account's
	// messages.
	for key, got := range answers {
		code, body := callWithKey(t, url+"/api/send", admin, key, sendBody("app@example.com", key+"@example.org"))
		if code != 200 || !strings.Contains(body, got[0]) {
			t.Fatalf("key %s asked again: %d %s, want its message %s", key, code, body, got[0])
		}
		break
	}
	_, body := call(t, "GET", fmt.Sprintf("%s/api/accounts/%d/email_logs", url, account), admin, "")
	var list struct {
		TotalCount int `json:"total_count"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || list.TotalCount != len(answers) {
		t.Fatalf("the account has %d messages, want one for each of the %d keys (%v)", list.TotalCount, len(answers), err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(relay.Mails()) < len(answers) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	copies := map[string]int{}
	for _, m := range relay.Mails() {
		if id := messageIDHeader.FindSubmatch(m.Data); id != nil {
			copies[string(id[1])]++
		}
	}
	for id := range ids {
		if copies[id] != 1 {
			t.Errorf("message %s relayed %d times, want once", id, copies[id])
		}
	}
	if len(copies) != len(ids) {
		t.Errorf("the relay got %d messages, want %d", len(copies), len(ids))
	}
	t.Logf("%d keys sent through a kill -9, each once", len(answers))
	s.Stop(t)
}

func callWithKey(t *testing.T, url, token, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Api-Token", token)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
