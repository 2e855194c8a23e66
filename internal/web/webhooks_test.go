package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/internal/web"
)

var (
	secretField   = regexp.MustCompile(`id="signing-secret" readonly value="([0-9a-f]{64})"`)
	standardField = regexp.MustCompile(`id="standard-secret" readonly value="(whsec_[A-Za-z0-9+/=]+)"`)
	hookPage      = regexp.MustCompile(`<a href="/webhooks/([0-9]+)">The webhook's page</a>`)
	resendForm    = regexp.MustCompile(`action="/webhooks/([0-9]+)/deliveries/([0-9]+)/resend"`)
)

// api calls the API with token and returns the status and the body.
func (e *env) api(method, path, token, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Api-Token", token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// addWebhook submits the add form and returns the new webhook's id, its
// secret and the secret's Standard Webhooks form, from the page that shows
// them once.
func (b *browser) addWebhook(form url.Values) (id, secret, whsec string) {
	b.e.t.Helper()
	p := b.post("/webhooks", form).want(200).has("<title>Webhook created · tokend</title>", "Copy the signing secret now: it will not be shown again.")
	s, w, h := secretField.FindStringSubmatch(p.Body), standardField.FindStringSubmatch(p.Body), hookPage.FindStringSubmatch(p.Body)
	if s == nil || w == nil || h == nil {
		b.e.t.Fatalf("the new webhook's page lacks its secret or link:\n%s", p.Body)
	}
	return h[1], s[1], w[1]
}

// Account admins add webhooks (for every domain or one) and see their
// signing secret once, in both forms; they change and delete them. URLs
// follow the operator's policy, refused in its words; viewers read and
// change nothing; forms from another site are refused.
func TestWebhooksPage(t *testing.T) {
	dns := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: dns})
	b := e.signIn("ann@example.com")
	domain := b.verifiedDomain(dns, "mail.example.com")
	b.get("/webhooks").want(200).has(`<a href="/webhooks" aria-current="page">Webhooks</a>`, "No webhooks you can see.", "Add a webhook",
		`<option value="">Every sending domain</option>`, `<option value="`+domain+`">mail.example.com</option>`,
		`<input type="checkbox" name="event_types" value="delivery" checked> delivery`, `<input type="checkbox" name="event_types" value="soft_bounce"> soft_bounce`,
		`<option value="json" selected>json</option>`).lacks("never sent by tokend")

	id, secret, whsec := b.addWebhook(url.Values{"url": {" https://hooks.example.org/tokend "}, "event_types": {"delivery", "bounce"}, "payload_format": {"json"}})
	if whsec != "whsec_"+base64.StdEncoding.EncodeToString([]byte(secret)) {
		t.Errorf("the Standard Webhooks secret %q is not the signing secret's whsec_ form", whsec)
	}
	// The secret is shown that once: no page, nor the API, shows it again.
	for _, path := range []string{"/webhooks", "/webhooks/" + id} {
		b.get(path).want(200).lacks(secret, whsec, "signing-secret")
	}
	hookAPI := fmt.Sprintf("/api/accounts/%d/webhooks/%s", e.acme, id)
	if code, body := e.api("GET", hookAPI, e.admin, ""); code != 200 || !strings.Contains(body, `"url":"https://hooks.example.org/tokend"`) ||
		!strings.Contains(body, `"event_types":["delivery","bounce"]`) || !strings.Contains(body, `"domain_id":null`) || strings.Contains(body, secret) {
		t.Errorf("the API's view of the webhook: %d %s", code, body)
	}
	p := b.post("/webhooks", url.Values{"url": {"https://d.example.org/"}, "event_types": {"reject"}, "domain_id": {domain}, "payload_format": {"jsonlines"}}).
		want(200).has("gets the reject events of mail.example.com, as jsonlines.")
	domainHook := hookPage.FindStringSubmatch(p.Body)[1]

	for _, tt := range []struct {
		name string
		form url.Values
		says string
	}{
		{"a private address", url.Values{"url": {"https://10.0.0.1/hook"}, "event_types": {"reject"}},
			"URL points to a private or internal address; the operator can allow it (--webhook-allow-private)."},
		{"the metadata address", url.Values{"url": {"https://169.254.169.254/latest"}, "event_types": {"reject"}}, "URL points to a private or internal address"},
		{"plain http", url.Values{"url": {"http://127.0.0.1:8080/hook"}, "event_types": {"reject"}},
			"URL http:// is only allowed for loopback hosts, and only when the operator allows it (--webhook-allow-http)."},
		{"no event types", url.Values{"url": {"https://hooks.example.org/x"}}, "Event types can&#39;t be blank."},
		{"a format that is not one", url.Values{"url": {"https://hooks.example.org/x"}, "event_types": {"reject"}, "payload_format": {"xml"}}, "Format must be json or jsonlines."},
		{"a domain that is not one", url.Values{"url": {"https://hooks.example.org/x"}, "event_types": {"reject"}, "domain_id": {"abc"}},
			"Sending domain must be a sending domain of the list."},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			p := b.post("/webhooks", tt.form).want(422).has(`<p class="error" role="alert">`+tt.says, `value="`+tt.form.Get("url")+`"`, "Add a webhook")
			if tt.form.Get("event_types") == "reject" {
				p.has(`value="reject" checked`).lacks(`value="delivery" checked`)
			}
		})
	}
	b.get("/webhooks").want(200).has(`<a href="/webhooks/`+id+`">https://hooks.example.org/tokend</a>`, "<td>delivery, bounce</td>", "<td>Every sending domain</td>",
		`<a href="/webhooks/`+domainHook+`">https://d.example.org/</a>`, "<td>mail.example.com</td>", "<td>jsonlines</td>",
		`<span class="badge pass">Active</span>`).lacks("10.0.0.1", "hooks.example.org/x")

	// Edited: an unticked Active stops it; ticked, it is active again.
	b.get("/webhooks/"+id).want(200).has("<title>Webhook https://hooks.example.org/tokend · tokend</title>", "Edit webhook", `name="active" value="1" checked`,
		"No deliveries yet", "<td>Every sending domain</td>")
	b.follow(b.post("/webhooks/"+id, url.Values{"url": {"https://hooks.example.org/v2"}, "event_types": {"soft_bounce", "bounce"}, "payload_format": {"jsonlines"}})).
		want(200).has("Saved the webhook to https://hooks.example.org/v2: it is inactive, and its events wait to be sent until it is active again.",
		`<span class="badge unchecked">Inactive</span>`, "<td>soft_bounce, bounce</td>", "<td>jsonlines</td>", `name="active" value="1">`)
	b.follow(b.post("/webhooks/"+id, url.Values{"url": {"https://hooks.example.org/v2"}, "event_types": {"delivery"}, "payload_format": {"json"}, "active": {"1"}})).
		want(200).has("Saved the webhook to https://hooks.example.org/v2: it is active.", `<span class="badge pass">Active</span>`, "<td>delivery</td>")
	b.post("/webhooks/"+id, url.Values{"url": {"https://192.168.0.10/"}, "event_types": {"delivery"}, "active": {"1"}}).want(422).
		has(`<p class="error" role="alert">URL points to a private or internal address`, `value="https://192.168.0.10/"`, "Edit webhook")
	b.get("/webhooks/" + id).want(200).has("<code class=\"wrap\">https://hooks.example.org/v2</code>").lacks("192.168.0.10")

	// An event type the API accepts and tokend never sends is kept by the form.
	if code, body := e.api("PATCH", hookAPI, e.admin, `{"webhook": {"event_types": ["delivery", "open"]}}`); code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	b.get("/webhooks/" + id).want(200).has(`value="open" checked> open (never sent by tokend)`)

	// A viewer reads them, and changes nothing.
	v := e.signIn("vic@example.com")
	v.get("/webhooks").want(200).has("https://hooks.example.org/v2", "https://d.example.org/").lacks("Add a webhook")
	v.get("/webhooks/"+id).want(200).has("https://hooks.example.org/v2").lacks("Edit webhook", "Delete webhook")
	for _, tt := range []struct {
		path string
		form url.Values
		says string
	}{
		{"/webhooks", url.Values{"url": {"https://v.example.org/"}, "event_types": {"delivery"}}, "A webhook of every sending domain needs account admin access"},
		{"/webhooks", url.Values{"url": {"https://v.example.org/"}, "event_types": {"delivery"}, "domain_id": {domain}}, `class="error" role="alert"`},
		{"/webhooks/" + id, url.Values{"url": {"https://v.example.org/"}, "event_types": {"delivery"}, "active": {"1"}}, "needs account admin access"},
		{"/webhooks/" + id + "/delete", nil, "needs account admin access"},
		{"/webhooks/" + id + "/deliveries/1/resend", nil, "needs account admin access"},
	} {
		t.Run("a viewer posting to "+tt.path, func(t *testing.T) {
			v.post(tt.path, tt.form).want(403).has(tt.says)
		})
	}
	v.get("/webhooks/" + id + "/delete").want(403)
	b.get("/webhooks").want(200).lacks("v.example.org")
	// Nor can another site, on Ann's behalf.
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Origin of another site":    {"Origin": {"http://evil.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/webhooks", "/webhooks/" + id, "/webhooks/" + id + "/delete", "/webhooks/" + id + "/deliveries/1/resend"} {
				req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader("url=https%3A%2F%2Fevil.example%2F&event_types=delivery"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range h {
					req.Header[k] = v
				}
				b.do(req).want(403).has("came from another site")
			}
		})
	}
	b.get("/webhooks").want(200).lacks("evil.example").has("https://hooks.example.org/v2")

	// Another account's webhook, and paths that name none, are not there.
	code, body := e.api("POST", fmt.Sprintf("/api/accounts/%d/webhooks", e.acme+1), e.other, `{"webhook": {"url": "https://other.example.org/", "event_types": ["delivery"]}}`)
	if code != 200 {
		t.Fatalf("the other account's webhook: %d %s", code, body)
	}
	otherID := regexp.MustCompile(`"id":([0-9]+)`).FindStringSubmatch(body)[1]
	for _, path := range []string{"/webhooks/" + otherID, "/webhooks/abc", "/webhooks/0", "/webhooks/" + otherID + "/delete"} {
		b.get(path).want(404).has("There is no such page")
	}
	b.post("/webhooks/"+otherID+"/delete", nil).want(404)

	// Deleted, after a confirmation: gone.
	b.get("/webhooks/"+domainHook+"/delete").want(200).has("Delete the webhook to https://d.example.org/?", "Confirm", `href="/webhooks/`+domainHook+`"`)
	b.follow(b.post("/webhooks/"+domainHook+"/delete", nil)).want(200).
		has("Deleted the webhook to https://d.example.org/, and the deliveries waiting for it.").lacks(`href="/webhooks/` + domainHook + `"`)
	b.get("/webhooks/" + domainHook).want(404)
	b.get("/audit-log").want(200).has("webhook.created", "webhook.updated", "webhook.deleted")
}

// endpoint is a webhook receiver on loopback that answers status and counts
// the events it gets (a request carries a batch of them).
func endpoint(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Events []json.RawMessage `json:"events"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		n.Add(int32(len(body.Events)))
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A webhook's page lists its recent deliveries, newest first, with the
// message each is about, its state, attempts and the endpoint's last answer;
// Resend sends one again as a new delivery, which arrives. Viewers see the
// deliveries and resend none.
func TestWebhookDeliveriesAndResend(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.RefuseRecipient("gone@example.org", 550, "5.1.1", "no such user here")
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dns := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: dns, relay: r, webhookHTTP: true})
	b := e.signIn("ann@example.com")
	b.verifiedDomain(dns, "mail.example.com")
	up, got := endpoint(t, http.StatusOK)
	down, _ := endpoint(t, http.StatusServiceUnavailable)
	id, _, _ := b.addWebhook(url.Values{"url": {up.URL + "/events"}, "event_types": {"delivery", "bounce"}})
	downID, _, _ := b.addWebhook(url.Values{"url": {down.URL}, "event_types": {"delivery"}})

	ids := e.send("news@mail.example.com", "Hello", "ok@example.org", "gone@example.org")
	waitFor(t, 10*time.Second, "the delivery and the bounce at the endpoint", func() bool { return got.Load() == 2 })
	var p *page
	waitFor(t, 10*time.Second, "both deliveries recorded as delivered", func() bool {
		p = b.get("/webhooks/" + id).want(200)
		return strings.Count(p.Body, `<span class="badge pass">Delivered</span>`) == 2
	})
	p.has(`<a href="/email-logs/`+ids[0]+`"><code class="wrap">`+ids[0]+`</code></a>`, `<a href="/email-logs/`+ids[1]+`">`,
		"<td>Delivered</td>", "<td>Bounce</td>", "<td>1</td>", "<td>200</td>").lacks("No deliveries yet")
	forms := resendForm.FindAllStringSubmatch(p.Body, -1)
	if len(forms) != 2 || forms[0][1] != id {
		t.Fatalf("resend forms: %v", forms)
	}

	// Resent: a new delivery, listed first, which reaches the endpoint.
	resent := b.follow(b.post(fmt.Sprintf("/webhooks/%s/deliveries/%s/resend", id, forms[1][2]), nil)).want(200)
	resent.has(`<p class="notice" role="status">Queued delivery `, "is sent again.</p>")
	waitFor(t, 10*time.Second, "the resent event at the endpoint", func() bool { return got.Load() == 3 })
	waitFor(t, 10*time.Second, "three deliveries listed", func() bool {
		return len(resendForm.FindAllStringSubmatch(b.get("/webhooks/"+id).Body, -1)) == 3
	})
	newest, _ := strconv.Atoi(resendForm.FindAllStringSubmatch(b.get("/webhooks/"+id).Body, -1)[0][2])
	if before, _ := strconv.Atoi(forms[0][2]); newest <= before {
		t.Errorf("the delivery listed first is %d, not the new one (after %d)", newest, before)
	}

	// An endpoint that fails: its delivery waits, with the answer it gave.
	waitFor(t, 10*time.Second, "the failing endpoint's answer", func() bool {
		return strings.Contains(b.get("/webhooks/"+downID).Body, "<td>503</td>")
	})
	b.get("/webhooks/"+downID).want(200).has(`<span class="badge unchecked">Pending</span>`, "endpoint answered 503 Service Unavailable", "Deliveries failing since")
	// A delivery of another webhook is not this one's to resend.
	b.post(fmt.Sprintf("/webhooks/%s/deliveries/%s/resend", downID, forms[0][2]), nil).want(404)

	// A viewer sees the deliveries, and cannot resend one.
	v := e.signIn("vic@example.com")
	v.get("/webhooks/" + id).want(200).has(`<a href="/email-logs/` + ids[0] + `">`).lacks("Resend")
	v.post(fmt.Sprintf("/webhooks/%s/deliveries/%s/resend", id, forms[0][2]), nil).want(403)
	if got.Load() != 3 {
		t.Errorf("the endpoint got %d requests, want 3", got.Load())
	}
}

// Without the application's webhooks, the dashboard builds its own, which
// checks URLs under the strict policy: https:// only, public addresses only.
func TestDefaultWebhooksAreStrict(t *testing.T) {
	ctx := context.Background()
	store, _ := testutil.Store(t)
	svc := tokend.NewService(store, tokend.Options{})
	a, _, err := svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Users().Create(ctx, tokend.NewUser{AccountID: a.ID, Email: "ann@example.com", Name: "Ann", Role: tokend.Admin, Password: password}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	web.New(svc, nil, web.Options{}).Routes(func(pattern string, h http.Handler) { mux.Handle(pattern, h) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, svc: svc, acme: a.ID, people: map[string]string{"ann@example.com": password}}
	b := e.signIn("ann@example.com")
	for _, tt := range []struct{ url, says string }{
		{"http://127.0.0.1:9/hook", "URL http:// is only allowed for loopback hosts"},
		{"https://127.0.0.1/hook", "URL points to a private or internal address"},
		{"https://localhost/hook", "URL points to a private or internal address"},
		{"https://10.0.0.1/hook", "URL points to a private or internal address"},
	} {
		b.post("/webhooks", url.Values{"url": {tt.url}, "event_types": {"delivery"}}).want(422).has(tt.says)
	}
	b.addWebhook(url.Values{"url": {"https://hooks.example.org/tokend"}, "event_types": {"delivery"}})
}
