package client_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// receiver is a webhook endpoint on loopback that keeps each POST's body
// and Mailtrap-Signature, and answers 200.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  [][]byte
	sigs []string
}

func startReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got, r.sigs = append(r.got, body), append(r.sigs, req.Header.Get("Mailtrap-Signature"))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Webhooks are created (their secret shown once, in both forms), read,
// changed and deleted; the events of live mail reach them signed with that
// secret, their deliveries are listed, and one resent arrives again as a
// new delivery. The API's rules refuse what they refuse, in 422s that name
// the field.
func TestWebhooks(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	ok(t, err)
	e := newEnv(t, withRelay(r))
	ctx := t.Context()
	admin := e.client(e.admin)
	d := e.verifiedDomain(admin, "mail.example.com")
	rcv := startReceiver(t)

	hook, err := admin.CreateWebhook(ctx, client.WebhookInput{URL: rcv.srv.URL + "/events", EventTypes: []string{client.EventDelivery, client.EventBounce},
		DomainID: d.ID})
	ok(t, err)
	if hook.ID == 0 || hook.URL != rcv.srv.URL+"/events" || !hook.Active || hook.WebhookType != "email_sending" || hook.SendingStream != "transactional" ||
		hook.PayloadFormat != client.PayloadJSON || hook.DomainID != d.ID || !slices.Equal(hook.EventTypes, []string{"delivery", "bounce"}) ||
		hook.FailingSince != nil || hook.DeactivatedAt != nil || hook.DeactivatedReason != "" || hook.CreatedAt.IsZero() {
		t.Errorf("created %+v", hook.Webhook)
	}
	if len(hook.SigningSecret) != 64 || hook.StandardWebhooksSecret != "whsec_"+base64.StdEncoding.EncodeToString([]byte(hook.SigningSecret)) {
		t.Errorf("secrets %q and %q: want 64 hex characters and their whsec_ form", hook.SigningSecret, hook.StandardWebhooksSecret)
	}
	got, err := admin.GetWebhook(ctx, hook.ID)
	ok(t, err)
	if got.URL != hook.URL || got.DomainID != d.ID || !got.UpdatedAt.Equal(hook.UpdatedAt) {
		t.Errorf("read back %+v", got)
	}
	list, err := admin.ListWebhooks(ctx)
	ok(t, err)
	if len(list) != 1 || list[0].ID != hook.ID {
		t.Errorf("webhooks = %+v", list)
	}

	// A send's delivery event reaches it, signed with its secret.
	sent, err := admin.Send(ctx, hello("news@mail.example.com", "ann@example.org"))
	ok(t, err)
	waitFor(t, 10*time.Second, "the delivery event", func() bool { return rcv.count() > 0 })
	rcv.mu.Lock()
	mac := hmac.New(sha256.New, []byte(hook.SigningSecret))
	mac.Write(rcv.got[0])
	if rcv.sigs[0] != hex.EncodeToString(mac.Sum(nil)) || !strings.Contains(string(rcv.got[0]), sent.MessageIDs[0]) {
		t.Errorf("delivery %s signed %q: not the message's event signed with the secret", rcv.got[0], rcv.sigs[0])
	}
	rcv.mu.Unlock()
	var deliveries []client.WebhookDelivery
	waitFor(t, 10*time.Second, "the delivery recorded", func() bool {
		deliveries, err = admin.WebhookDeliveries(ctx, hook.ID)
		ok(t, err)
		return len(deliveries) == 1 && deliveries[0].State == client.WebhookDelivered
	})
	first := deliveries[0]
	if first.EventType != client.EventDelivery || first.MessageID != sent.MessageIDs[0] || first.Attempts != 1 || first.LastStatus != 200 ||
		first.LastError != "" || first.EventID == 0 {
		t.Errorf("delivery %+v", first)
	}

	// Resent: a new delivery of the same event, which arrives again.
	again, err := admin.ResendWebhookDelivery(ctx, hook.ID, first.ID)
	ok(t, err)
	if again.ID == first.ID || again.EventID != first.EventID || again.MessageID != first.MessageID || again.State != client.WebhookPending {
		t.Errorf("resent as %+v", again)
	}
	waitFor(t, 10*time.Second, "the resent event", func() bool { return rcv.count() == 2 })
	deliveries, err = admin.WebhookDeliveries(ctx, hook.ID)
	ok(t, err)
	if len(deliveries) != 2 || deliveries[0].ID != again.ID || deliveries[1].ID != first.ID {
		t.Errorf("deliveries after the resend: %+v, want the new one first", deliveries)
	}

	// Changed: what is given changes, the rest stays.
	updated, err := admin.UpdateWebhook(ctx, hook.ID, client.WebhookUpdate{EventTypes: []string{client.EventReject}, PayloadFormat: ptr(client.PayloadJSONLines),
		Active: ptr(false)})
	ok(t, err)
	if updated.Active || updated.PayloadFormat != client.PayloadJSONLines || !slices.Equal(updated.EventTypes, []string{"reject"}) || updated.URL != hook.URL {
		t.Errorf("updated %+v", updated)
	}
	moved, err := admin.UpdateWebhook(ctx, hook.ID, client.WebhookUpdate{URL: ptr("https://hooks.example.org/tokend"), Active: ptr(true)})
	ok(t, err)
	if !moved.Active || moved.URL != "https://hooks.example.org/tokend" || !slices.Equal(moved.EventTypes, []string{"reject"}) {
		t.Errorf("moved %+v", moved)
	}

	// What the rules refuse.
	viewer, err := admin.CreateToken(ctx, client.NewToken{Name: "viewer", Permissions: []client.Permission{perm("account", e.acme, client.Viewer)}})
	ok(t, err)
	domainAdmin, err := admin.CreateToken(ctx, client.NewToken{Name: "domain admin", Permissions: []client.Permission{perm("domain", d.ID, client.Admin)}})
	ok(t, err)
	create := func(c *client.Client, in client.WebhookInput) func() error {
		return func() error { _, err := c.CreateWebhook(ctx, in); return err }
	}
	for _, tt := range []struct {
		name   string
		call   func() error
		status int
		field  string // in a 422's Fields
		says   string // in that field's messages
	}{
		{"a private address", create(admin, client.WebhookInput{URL: "https://10.1.2.3/hook", EventTypes: []string{"delivery"}}), 422, "url",
			"points to a private or internal address; the operator can allow it (--webhook-allow-private)"},
		{"plain http to another host", create(admin, client.WebhookInput{URL: "http://hooks.example.org/", EventTypes: []string{"delivery"}}), 422, "url", "http://"},
		{"no event types", create(admin, client.WebhookInput{URL: "https://hooks.example.org/"}), 422, "event_types", "can't be blank"},
		{"a format that is not one", create(admin, client.WebhookInput{URL: "https://hooks.example.org/", EventTypes: []string{"delivery"}, PayloadFormat: "xml"}),
			422, "payload_format", "json or jsonlines"},
		{"a viewer", create(e.client(viewer.Value), client.WebhookInput{URL: "https://hooks.example.org/", EventTypes: []string{"delivery"}}), 403, "", ""},
		{"a domain admin, for every domain", create(e.client(domainAdmin.Value), client.WebhookInput{URL: "https://hooks.example.org/", EventTypes: []string{"delivery"}}),
			403, "", ""},
		{"a viewer changing it", func() error {
			_, err := e.client(viewer.Value).UpdateWebhook(ctx, hook.ID, client.WebhookUpdate{Active: ptr(false)})
			return err
		}, 403, "", ""},
		{"another account reading it", func() error { _, err := e.client(e.otherAdmin).GetWebhook(ctx, hook.ID); return err }, 404, "", ""},
		{"a delivery of no such webhook resent", func() error { _, err := admin.ResendWebhookDelivery(ctx, hook.ID+1, first.ID); return err }, 404, "", ""},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			ae := apiError(t, tt.call(), tt.status)
			if tt.field != "" && !strings.Contains(strings.Join(ae.Fields[tt.field], " "), tt.says) {
				t.Errorf("422 with fields %v, want %s saying %q", ae.Fields, tt.field, tt.says)
			}
		})
	}
	// A domain admin manages the webhooks of its domain; a viewer reads them.
	own, err := e.client(domainAdmin.Value).CreateWebhook(ctx, client.WebhookInput{URL: "https://d.example.org/", EventTypes: []string{"bounce"}, DomainID: d.ID})
	ok(t, err)
	if seen, err := e.client(viewer.Value).ListWebhooks(ctx); err != nil || len(seen) != 2 {
		t.Errorf("a viewer's listing: %+v, %v", seen, err)
	}

	// Deleted: gone, with its deliveries.
	deleted, err := admin.DeleteWebhook(ctx, hook.ID)
	ok(t, err)
	if deleted.ID != hook.ID || deleted.URL != "https://hooks.example.org/tokend" {
		t.Errorf("deleted %+v", deleted)
	}
	if _, err := admin.GetWebhook(ctx, hook.ID); !client.IsNotFound(err) {
		t.Errorf("a deleted webhook read: %v, want a 404", err)
	}
	if _, err := admin.WebhookDeliveries(ctx, hook.ID); !client.IsNotFound(err) {
		t.Errorf("a deleted webhook's deliveries: %v, want a 404", err)
	}
	if _, err := admin.DeleteWebhook(ctx, own.ID); err != nil {
		t.Errorf("an account admin deleting a domain's webhook: %v", err)
	}
}
