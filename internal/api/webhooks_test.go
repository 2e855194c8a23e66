package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// hookReceiver is a webhook endpoint on loopback that keeps what it is sent and
// answers with status (200 unless told otherwise).
type hookReceiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []received
}

type received struct {
	header http.Header
	body   []byte
	events []map[string]any
}

func startHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.status.Store(200)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		status := int(r.status.Load())
		if status == 200 {
			rec := received{header: req.Header.Clone(), body: body}
			var payload struct {
				Events []map[string]any `json:"events"`
			}
			if json.Unmarshal(body, &payload) == nil && payload.Events != nil {
				rec.events = payload.Events
			} else {
				for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
					var ev map[string]any
					if json.Unmarshal([]byte(line), &ev) == nil {
						rec.events = append(rec.events, ev)
					}
				}
			}
			r.mu.Lock()
			r.got = append(r.got, rec)
			r.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// events returns every event received, in arrival order.
func (r *hookReceiver) events() []map[string]any {
	var out []map[string]any
	for _, rec := range r.received() {
		out = append(out, rec.events...)
	}
	return out
}

type webhookJSON struct {
	ID                     int64    `json:"id"`
	URL                    string   `json:"url"`
	Active                 bool     `json:"active"`
	WebhookType            string   `json:"webhook_type"`
	PayloadFormat          string   `json:"payload_format"`
	DomainID               *int64   `json:"domain_id"`
	EventTypes             []string `json:"event_types"`
	SigningSecret          string   `json:"signing_secret"`
	StandardWebhooksSecret string   `json:"standard_webhooks_secret"`
	DeactivatedReason      *string  `json:"deactivated_reason"`
}

func (e *env) createWebhook(token string, hook map[string]any) webhookJSON {
	e.t.Helper()
	var out struct{ Data webhookJSON }
	e.post(e.path("/api/accounts/%d/webhooks", e.acme), token, map[string]any{"webhook": hook}).want(200).decode(&out)
	return out.Data
}

// checkSignatures verifies both signatures of a delivery the way receivers
// do: Mailtrap's hex HMAC of the body, and Standard Webhooks' of id.ts.body
// with the whsec_ key.
func checkSignatures(t *testing.T, rec received, secret, whsec string) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(rec.body)
	if got := rec.header.Get("Mailtrap-Signature"); got != hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("Mailtrap-Signature %q does not sign the body", got)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	if err != nil {
		t.Fatalf("standard_webhooks_secret %q: %v", whsec, err)
	}
	mac = hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", rec.header.Get("webhook-id"), rec.header.Get("webhook-timestamp"), rec.body)
	if got := rec.header.Get("webhook-signature"); got != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("webhook-signature %q does not sign id.timestamp.body", got)
	}
}

// Events of a send reach a subscribed endpoint signed twice, in Mailtrap's
// payload, in order for each message; an endpoint that fails gets them once
// it answers again, and its deliveries show the attempts.
func TestWebhooksDeliverSignedEventsInOrder(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRelay(r), withConfig(func(c *app.Config) { c.WebhookAllowHTTP = true }))
	domain, _, _ := e.domainRecord(e.admin, "mail.example.com")
	relay.RefuseRecipient("later@example.org", 451, "4.2.0", "greylisted")
	relay.RefuseRecipient("gone@example.org", 550, "5.1.1", "no such user")
	rcv := startHookReceiver(t)
	rcv.status.Store(503) // down at first
	hook := e.createWebhook(e.admin, map[string]any{"url": rcv.srv.URL + "/hooks?src=tokend", "webhook_type": "email_sending",
		"event_types": []string{"delivery", "soft_bounce", "bounce", "reject"}, "domain_id": domain, "sending_stream": "transactional"})
	if hook.SigningSecret == "" || !strings.HasPrefix(hook.StandardWebhooksSecret, "whsec_") || hook.DomainID == nil || *hook.DomainID != domain ||
		hook.PayloadFormat != "json" || !hook.Active || hook.WebhookType != "email_sending" {
		t.Fatalf("created webhook %+v", hook)
	}
	e.post(e.path("/api/accounts/%d/suppressions", e.acme), e.admin, map[string]any{"email": "blocked@example.org"}).want(201)

	msg := email("news@mail.example.com", "ok@example.org", "later@example.org", "gone@example.org", "blocked@example.org")
	msg["category"], msg["custom_variables"] = "welcome", map[string]any{"user_id": "42"}
	var s sent
	e.post("/api/send", e.admin, msg).want(200).decode(&s)
	// Failed deliveries are retried while the endpoint is down.
	waitFor(t, 10*time.Second, "deliveries failing against the down endpoint", func() bool {
		var d struct {
			Data []struct {
				State      string `json:"state"`
				EventType  string `json:"event_type"`
				Attempts   int    `json:"attempts"`
				LastStatus int    `json:"last_status"`
				LastError  string `json:"last_error"`
			}
		}
		e.get(e.path("/api/accounts/%d/webhooks/%d/deliveries", e.acme, hook.ID), e.admin).want(200).decode(&d)
		return len(d.Data) > 0 && d.Data[len(d.Data)-1].Attempts >= 2 && d.Data[len(d.Data)-1].LastStatus == 503
	})
	relay.RefuseRecipient("later@example.org", 0, "", "")
	rcv.status.Store(200)
	waitFor(t, 15*time.Second, "delivery, soft bounce, bounce and reject events", func() bool {
		types := map[string]bool{}
		for _, ev := range rcv.events() {
			types[fmt.Sprint(ev["email"], " ", ev["event"])] = true
		}
		return types["ok@example.org delivery"] && types["later@example.org delivery"] && types["later@example.org soft bounce"] &&
			types["gone@example.org bounce"] && types["blocked@example.org reject"]
	})
	time.Sleep(100 * time.Millisecond) // let any duplicate arrive, too
	byMessage := map[string][]string{}
	seen := map[string]bool{}
	for _, rec := range rcv.received() {
		checkSignatures(t, rec, hook.SigningSecret, hook.StandardWebhooksSecret)
		if strings.Contains(string(rec.body), e.admin) || strings.Contains(string(rec.body), hook.SigningSecret) {
			t.Fatal("a payload holds a token or the secret")
		}
		if len(rec.events) == 0 || len(rec.events) > 100 || rec.header.Get("Content-Type") != "application/json" {
			t.Errorf("a request of %d events as %q, want a batch of 1 to 100 as JSON", len(rec.events), rec.header.Get("Content-Type"))
		}
		for _, ev := range rec.events {
			id := fmt.Sprint(ev["event_id"])
			if seen[id] {
				continue // at least once: a retry may repeat an event
			}
			seen[id] = true
			m := fmt.Sprint(ev["message_id"])
			byMessage[m] = append(byMessage[m], fmt.Sprint(ev["event"]))
			if ev["sending_domain_name"] != "mail.example.com" || ev["sending_stream"] != "transactional" || ev["category"] != "welcome" ||
				fmt.Sprint(ev["custom_variables"]) != "map[user_id:42]" || ev["timestamp"] == nil {
				t.Errorf("event %v lacks Mailtrap's fields", ev)
			}
			switch ev["event"] {
			case "bounce":
				if ev["response_code"] != float64(550) || ev["bounce_category"] != "bad_mailbox" || !strings.Contains(fmt.Sprint(ev["response"]), "no such user") {
					t.Errorf("bounce event %v", ev)
				}
			case "reject":
				if !strings.Contains(fmt.Sprint(ev["reason"]), "suppression list") {
					t.Errorf("reject event %v", ev)
				}
			}
		}
	}
	later := byMessage[s.MessageIDs[1]]
	if len(later) < 2 || later[len(later)-1] != "delivery" || slices.Index(later, "delivery") != len(later)-1 {
		t.Errorf("events of the greylisted message arrived as %v, want its soft bounces, then its delivery", later)
	}
	var d struct {
		Data []struct {
			ID       int64
			State    string
			Attempts int
		}
	}
	e.get(e.path("/api/accounts/%d/webhooks/%d/deliveries", e.acme, hook.ID), e.admin).want(200).decode(&d)
	retried := false
	for _, x := range d.Data {
		if x.State == "delivered" && x.Attempts > 1 {
			retried = true
		}
	}
	if !retried {
		t.Errorf("deliveries %+v, want some delivered after failed attempts", d.Data)
	}
	// A resend delivers the event again, as a new delivery.
	before := len(rcv.received())
	e.post(e.path("/api/accounts/%d/webhooks/%d/deliveries/%d/resend", e.acme, hook.ID, d.Data[0].ID), e.admin, nil).want(200)
	waitFor(t, 5*time.Second, "the resent event", func() bool { return len(rcv.received()) > before })
}

// An endpoint that fails every delivery for --webhook-deactivate-after is
// deactivated with an alert; its deliveries wait, and reach it once it is
// reactivated. jsonlines sends one event a line.
func TestFailingWebhookIsDeactivatedAndResumes(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, _ := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	e := newEnv(t, withRelay(r), withConfig(func(c *app.Config) {
		c.WebhookAllowHTTP, c.WebhookDeactivateAfter = true, 300*time.Millisecond
	}))
	e.domainRecord(e.admin, "mail.example.com")
	rcv := startHookReceiver(t)
	rcv.status.Store(500)
	hook := e.createWebhook(e.admin, map[string]any{"url": rcv.srv.URL, "event_types": []string{"delivery"}, "payload_format": "jsonlines"})
	var s sent
	e.post("/api/send", e.admin, email("news@mail.example.com", "ann@example.org")).want(200).decode(&s)
	path := e.path("/api/accounts/%d/webhooks/%d", e.acme, hook.ID)
	waitFor(t, 10*time.Second, "the failing webhook deactivated", func() bool {
		var got struct{ Data webhookJSON }
		e.get(path, e.admin).want(200).decode(&got)
		return !got.Data.Active && got.Data.DeactivatedReason != nil && strings.Contains(*got.Data.DeactivatedReason, "500")
	})
	var audit auditPage
	e.get("/api/audit_log", e.admin).want(200).decode(&audit)
	found := false
	for _, ev := range audit.Data {
		found = found || ev.Action == "alert.webhook_deactivated" && strings.Contains(fmt.Sprint(ev.Details["message"]), rcv.srv.URL)
	}
	if !found {
		t.Errorf("no alert.webhook_deactivated naming the endpoint in the audit log: %+v", audit.Data)
	}
	rcv.status.Store(200)
	var back struct{ Data webhookJSON }
	e.patch(path, e.admin, map[string]any{"webhook": map[string]any{"active": true}}).want(200).decode(&back)
	if !back.Data.Active || back.Data.DeactivatedReason != nil {
		t.Errorf("reactivated: %+v", back.Data)
	}
	waitFor(t, 10*time.Second, "the waiting delivery after reactivation", func() bool { return len(rcv.events()) > 0 })
	rec := rcv.received()[0]
	if rec.header.Get("Content-Type") != "application/jsonl" || !strings.HasSuffix(string(rec.body), "}\n") || rec.events[0]["message_id"] != s.MessageIDs[0] {
		t.Errorf("jsonlines delivery %q of %q", rec.body, rec.header.Get("Content-Type"))
	}
}

// The webhooks API follows Mailtrap's: {"webhook": {...}} in, {"data": ...}
// out, the secret shown once; URLs must be https (http only to loopback when
// the operator allows it) and never reach private addresses; immutable
// fields stay so; domain admins manage their domain's webhooks.
func TestWebhooksAPI(t *testing.T) {
	e := newEnv(t)
	domain, _, _ := e.domainRecord(e.admin, "mail.example.com")
	base := e.path("/api/accounts/%d/webhooks", e.acme)
	for _, c := range []struct {
		name  string
		hook  map[string]any
		field string
	}{
		{"no url", map[string]any{"event_types": []string{"delivery"}}, "url"},
		{"plain http", map[string]any{"url": "http://hooks.example.org/", "event_types": []string{"delivery"}}, "url"},
		{"loopback", map[string]any{"url": "https://127.0.0.1/", "event_types": []string{"delivery"}}, "url"},
		{"metadata address", map[string]any{"url": "https://169.254.169.254/latest", "event_types": []string{"delivery"}}, "url"},
		{"no events", map[string]any{"url": "https://hooks.example.org/"}, "event_types"},
		{"unknown event", map[string]any{"url": "https://hooks.example.org/", "event_types": []string{"opened"}}, "event_types"},
		{"audit log type", map[string]any{"url": "https://hooks.example.org/", "event_types": []string{"delivery"}, "webhook_type": "audit_log"}, "webhook_type"},
		{"bad format", map[string]any{"url": "https://hooks.example.org/", "event_types": []string{"delivery"}, "payload_format": "xml"}, "payload_format"},
	} {
		r := e.post(base, e.admin, map[string]any{"webhook": c.hook}).want(422)
		if !strings.Contains(string(r.Body), `"`+c.field+`"`) {
			t.Errorf("%s: %s, want an error on %s", c.name, r.Body, c.field)
		}
	}
	created := e.createWebhook(e.admin, map[string]any{"url": "https://hooks.example.org/tokend", "event_types": []string{"delivery", "bounce"}})
	if len(created.SigningSecret) != 64 || created.DomainID != nil {
		t.Errorf("created %+v", created)
	}
	var got struct{ Data map[string]any }
	e.get(e.path("%s/%d", base, created.ID), e.admin).want(200).decode(&got)
	if _, ok := got.Data["signing_secret"]; ok || got.Data["url"] != "https://hooks.example.org/tokend" {
		t.Errorf("get shows %v; the secret is shown once only", got.Data)
	}
	e.patch(e.path("%s/%d", base, created.ID), e.admin, map[string]any{"webhook": map[string]any{"domain_id": domain}}).want(422)
	var updated struct{ Data webhookJSON }
	e.patch(e.path("%s/%d", base, created.ID), e.admin, map[string]any{"webhook": map[string]any{"event_types": []string{"reject"}, "active": false}}).
		want(200).decode(&updated)
	if !slices.Equal(updated.Data.EventTypes, []string{"reject"}) || updated.Data.Active {
		t.Errorf("updated %+v", updated.Data)
	}

	domainAdmin := e.createToken(e.admin, "domain admin", map[string]any{"resource_type": "domain", "resource_id": domain, "access_level": 100})
	viewer := e.createToken(e.admin, "viewer", map[string]any{"resource_type": "domain", "resource_id": domain, "access_level": 10})
	own := e.createWebhook(domainAdmin.Token, map[string]any{"url": "https://d.example.org/", "event_types": []string{"delivery"}, "domain_id": domain})
	e.post(base, domainAdmin.Token, map[string]any{"webhook": map[string]any{"url": "https://x.example.org/", "event_types": []string{"delivery"}}}).want(403)
	e.post(base, viewer.Token, map[string]any{"webhook": map[string]any{"url": "https://x.example.org/", "event_types": []string{"delivery"}, "domain_id": domain}}).want(403)
	var list struct{ Data []webhookJSON }
	e.get(base, viewer.Token).want(200).decode(&list)
	if len(list.Data) != 1 || list.Data[0].ID != own.ID {
		t.Errorf("the domain viewer lists %+v, want its domain's webhook only", list.Data)
	}
	e.get(e.path("%s/%d", base, created.ID), viewer.Token).want(404)
	e.get(e.path("/api/accounts/%d/webhooks/%d", e.other, created.ID), e.otherAdmin).want(404)
	e.del(e.path("%s/%d", base, own.ID), viewer.Token).want(403)
	var deleted struct{ Data webhookJSON }
	e.del(e.path("%s/%d", base, own.ID), domainAdmin.Token).want(200).decode(&deleted)
	if deleted.Data.ID != own.ID {
		t.Errorf("deleted %+v", deleted.Data)
	}
	e.get(e.path("%s/%d", base, own.ID), e.admin).want(404)
}
