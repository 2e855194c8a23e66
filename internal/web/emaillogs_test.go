package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// verifiedDomain adds a sending domain as b's user, publishes its records
// in srv and re-checks them, and returns its id.
func (b *browser) verifiedDomain(srv *testutil.DNSServer, name string) string {
	b.e.t.Helper()
	path := b.addDomain(name)
	for _, rec := range b.get(path).dnsRecords() {
		srv.AddTXT(rec.name, rec.value)
	}
	b.follow(b.post(path+"/verify", nil)).has("it is verified")
	return strings.TrimPrefix(path, "/domains/")
}

// send sends an email through the API with the account's admin token and
// returns its message ids.
func (e *env) send(from, subject string, to ...string) []string {
	e.t.Helper()
	var rcpts []map[string]string
	for _, a := range to {
		rcpts = append(rcpts, map[string]string{"email": a})
	}
	body, _ := json.Marshal(map[string]any{"from": map[string]string{"email": from}, "to": rcpts, "subject": subject, "text": "Hello"})
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/send", strings.NewReader(string(body)))
	req.Header.Set("Api-Token", e.admin)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var sent struct {
		MessageIDs []string `json:"message_ids"`
	}
	if err := json.NewDecoder(res.Body).Decode(&sent); err != nil || res.StatusCode != 200 {
		e.t.Fatalf("send: %d %v", res.StatusCode, err)
	}
	return sent.MessageIDs
}

// The Email Logs page lists each recipient's message with its status,
// filtered by recipient, status and sending domain; a message's page shows
// its events as the relay answered: delivery, soft bounces, a bounce with
// the relay's reply and its category.
func TestEmailLogPagesFollowTheRelay(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.RefuseRecipient("gone@example.org", 550, "5.1.1", "no such user here")
	relay.RefuseRecipient("later@example.org", 451, "4.2.0", "greylisted, try again")
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dns := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: dns, relay: r})
	b := e.signIn("ann@example.com")
	domain := b.verifiedDomain(dns, "mail.example.com")
	ids := e.send("news@mail.example.com", "Welcome <b>", "ok@example.org", "gone@example.org", "later@example.org")
	okID, goneID, laterID := ids[0], ids[1], ids[2]
	waitFor(t, 10*time.Second, "the relay's answers", func() bool {
		p := b.get("/email-logs").want(200)
		return strings.Count(p.Body, `<span class="badge pass">Delivered</span>`) == 1 && strings.Count(p.Body, `<span class="badge fail">Not delivered</span>`) == 1
	})

	list := b.get("/email-logs").want(200).has(`<a href="/email-logs" aria-current="page">Email Logs</a>`, "3 messages match",
		"Welcome &lt;b&gt;", "<td>ok@example.org</td>", "<td>gone@example.org</td>", "<td>later@example.org</td>",
		`<span class="badge unchecked">Enqueued</span>`, "/email-logs/"+okID).lacks("Welcome <b>", "Older", "Newest")
	if !strings.Contains(list.Body, `<option value="`+domain+`">mail.example.com</option>`) {
		t.Errorf("the domain filter does not offer mail.example.com:\n%s", list.Body)
	}
	for _, tt := range []struct {
		query string
		has   []string // message ids listed
		count string
	}{
		{"status=not_delivered", []string{goneID}, "1 message matches"},
		{"to=GONE%40example", []string{goneID}, "1 message matches"},
		{"domain=" + domain, []string{okID, goneID, laterID}, "3 messages match"},
		{"domain=" + domain + "&status=delivered", []string{okID}, "1 message matches"},
		{"domain=999", nil, "No messages match these filters."},
	} {
		t.Run(tt.query, func(t *testing.T) {
			p := b.get("/email-logs?" + tt.query).want(200).has(tt.count)
			for _, id := range []string{okID, goneID, laterID} {
				if want := strings.Contains(strings.Join(tt.has, " "), id); strings.Contains(p.Body, "/email-logs/"+id) != want {
					t.Errorf("message %s listed: %v, want %v", id, !want, want)
				}
			}
		})
	}
	b.get("/email-logs?status=lost").want(422).has("Status must be delivered, not_delivered, enqueued, opted_out or captured.")
	b.get("/email-logs?after=nope").want(422).has("Page is not a message id")

	// The bounced message: its reply, category and Message-ID.
	b.get("/email-logs/"+goneID).want(200).has("<title>Welcome &lt;b&gt; · tokend</title>", `<span class="badge fail">Not delivered</span>`,
		"<td>Accepted</td>", "<td>Bounce</td>", `Relay's response: <code class="wrap">550 5.1.1 no such user here</code>`,
		"Bounce category: bad_mailbox", `<a href="/domains/`+domain+`">mail.example.com</a>`,
		"&lt;"+goneID+"@mail.example.com&gt;", "<td>gone@example.org</td>", "Back to Email Logs")
	b.get("/email-logs/" + okID).want(200).has("<td>Delivered</td>").lacks("Bounce category")
	b.get("/email-logs/"+laterID).want(200).has("<td>Soft bounce</td>", "greylisted, try again", "Bounce category: other")
	b.get("/email-logs/no-such-message").want(404).has("There is no such page")
	e.browser().get("/email-logs").want(http.StatusSeeOther)
	// A viewer reads them too: account viewers read every sending domain.
	e.signIn("vic@example.com").get("/email-logs/" + goneID).want(200).has("bad_mailbox")
	// The hard bounce is on the suppression list, with the message it came from.
	b.get("/suppressions").want(200).has("<td>gone@example.org</td>", "<td>hard bounce</td>", "<td>mail.example.com</td>",
		`<a href="/email-logs/`+goneID+`">Welcome &lt;b&gt;</a>`, "(bad_mailbox)")
}

// The listing pages by cursor, 50 messages a page, newest first, keeping
// its filters from page to page; without a sending domain to read, a
// viewer is refused in words.
func TestEmailLogsPageByCursor(t *testing.T) {
	dns := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: dns, deliver: true})
	v := e.signIn("vic@example.com")
	v.get("/email-logs").want(403).has("You need access to a sending domain of this account to read its email logs.")
	v.get("/suppressions").want(403).has("You need access to a sending domain of this account to see the suppression list.")
	b := e.signIn("ann@example.com")
	b.get("/email-logs").want(200).has("No messages you can see yet.")
	b.verifiedDomain(dns, "example.com")
	var to []string
	for i := range 51 {
		to = append(to, fmt.Sprintf("u%d@example.org", i))
	}
	e.send("news@example.com", "Newsletter", to...)
	e.clock.Advance(time.Minute)
	newest := e.send("news@example.com", "Latest", "ann@example.org")[0]

	first := b.get("/email-logs?to=example.org").want(200).has("52 messages match").lacks("Newest")
	rows := regexp.MustCompile(`href="/email-logs/([0-9a-f-]+)"`).FindAllStringSubmatch(first.Body, -1)
	if len(rows) != 50 || rows[0][1] != newest {
		t.Fatalf("the first page lists %d messages, the newest first: %v", len(rows), rows[:1])
	}
	older := regexp.MustCompile(`<a href="(/email-logs\?[^"]+)">Older</a>`).FindStringSubmatch(first.Body)
	if older == nil || !strings.Contains(older[1], "to=example.org") || !strings.Contains(older[1], "after="+rows[49][1]) {
		t.Fatalf("no link to older messages that keeps the filter:\n%s", first.Body)
	}
	second := b.get(strings.ReplaceAll(older[1], "&amp;", "&")).want(200).has("52 messages match", `<a href="/email-logs?to=example.org">Newest</a>`).lacks(">Older<")
	seen := map[string]bool{}
	for _, m := range append(rows, regexp.MustCompile(`href="/email-logs/([0-9a-f-]+)"`).FindAllStringSubmatch(second.Body, -1)...) {
		seen[m[1]] = true
	}
	if len(seen) != 52 {
		t.Errorf("two pages list %d messages, want all 52 once", len(seen))
	}
}

var removeForm = regexp.MustCompile(`action="/suppressions/([0-9a-f-]+)/delete"`)

// Account admins add addresses to the suppression list (for every domain
// or one) and remove them; live mail to a suppressed address shows as
// opted out, rejected. Viewers read the list and change nothing; forms from
// another site are refused.
func TestSuppressionsPage(t *testing.T) {
	dns := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: dns, deliver: true})
	b := e.signIn("ann@example.com")
	domain := b.verifiedDomain(dns, "mail.example.com")
	b.get("/suppressions").want(200).has(`<a href="/suppressions" aria-current="page">Suppressions</a>`, "No suppressed addresses you can see.",
		"Suppress an address", `<option value="">Every sending domain</option>`, `<option value="`+domain+`">mail.example.com</option>`,
		`<option value="manual import">manual import</option>`)

	for _, tt := range []struct {
		name   string
		form   url.Values
		notice string
	}{
		{"for every domain", url.Values{"email": {"Left@Example.org"}, "type": {"unsubscription"}},
			"Suppressed left@example.org for every sending domain: live mail to it is not relayed."},
		{"again", url.Values{"email": {"left@example.org"}}, "left@example.org was already suppressed for every sending domain (unsubscription)."},
		{"for one domain", url.Values{"email": {"bounce@example.org"}, "domain_id": {domain}},
			"Suppressed bounce@example.org for mail.example.com: live mail to it is not relayed."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(time.Second)
			b.follow(b.post("/suppressions", tt.form)).want(200).has(`<p class="notice" role="status">` + tt.notice + `</p>`)
		})
	}
	list := b.get("/suppressions").want(200).has("<td>left@example.org</td>", "<td>unsubscription</td>", "<td>Every sending domain</td>",
		"<td>bounce@example.org</td>", "<td>manual import</td>", "<td>mail.example.com</td>", `aria-label="Remove left@example.org"`).lacks(`class="notice"`)
	ids := removeForm.FindAllStringSubmatch(list.Body, -1)
	if len(ids) != 2 {
		t.Fatalf("remove forms: %v", ids)
	}
	bounceID, leftID := ids[0][1], ids[1][1] // newest first
	b.get("/suppressions?email=LEFT%40example.org").want(200).has("<td>left@example.org</td>").lacks("<td>bounce@example.org</td>")
	b.get("/suppressions?email=nobody%40example.org").want(200).has("nobody@example.org is not suppressed.")

	for _, tt := range []struct {
		name string
		form url.Values
		says string
	}{
		{"an address that is not one", url.Values{"email": {"not an address"}}, "Email address is invalid."},
		{"a type that does not exist", url.Values{"email": {"x@example.org"}, "type": {"annoyed"}}, `Type must be one of &#34;hard bounce&#34;`},
		{"a domain that is not one", url.Values{"email": {"x@example.org"}, "domain_id": {"abc"}}, "Sending domain must be a sending domain of the list."},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			b.post("/suppressions", tt.form).want(422).has(`<p class="error" role="alert">`+tt.says, `value="`+tt.form.Get("email")+`"`)
		})
	}

	// A send to the suppressed address: accepted, not relayed, and the
	// message says why.
	opted := e.send("news@mail.example.com", "Hi", "left@example.org")[0]
	b.get("/email-logs?status=opted_out").want(200).has("1 message matches", `<span class="badge mismatch">Opted out</span>`, "/email-logs/"+opted)
	b.get("/email-logs/"+opted).want(200).has("<td>Rejected</td>", "Recipient in suppression list. Reason: unsubscription", "suppressed")

	// A viewer reads the list, and can neither add nor remove.
	v := e.signIn("vic@example.com")
	v.get("/suppressions").want(200).has("<td>left@example.org</td>").lacks("Suppress an address", "Remove")
	v.post("/suppressions", url.Values{"email": {"x@example.org"}}).want(403).has("needs account admin access")
	v.post("/suppressions", url.Values{"email": {"x@example.org"}, "domain_id": {domain}}).want(403).has(`class="error" role="alert"`)
	v.post("/suppressions/"+leftID+"/delete", nil).want(403).has("needs account admin access")
	// Nor can another site, on Ann's behalf.
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Origin of another site":    {"Origin": {"http://evil.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/suppressions", "/suppressions/" + leftID + "/delete"} {
				req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader("email=evil%40example.org"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range h {
					req.Header[k] = v
				}
				b.do(req).want(403).has("came from another site")
			}
		})
	}
	b.get("/suppressions").want(200).has("<td>left@example.org</td>").lacks("evil@example.org")

	// Removed, it is gone; removing it again finds nothing.
	b.follow(b.post("/suppressions/"+leftID+"/delete", nil)).want(200).
		has("Removed the suppression of left@example.org: it receives live mail again.").lacks("<td>left@example.org</td>")
	b.post("/suppressions/"+leftID+"/delete", nil).want(404)
	b.get("/suppressions").has(`action="/suppressions/` + bounceID + `/delete"`)
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(25 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
	}
}
