package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/testutil"
)

type sent struct {
	Success    bool     `json:"success"`
	MessageIDs []string `json:"message_ids"`
}

type sendErrors struct {
	Success bool     `json:"success"`
	Errors  []string `json:"errors"`
}

type emailLog struct {
	MessageID      string  `json:"message_id"`
	Status         string  `json:"status"`
	DeliveryStatus string  `json:"delivery_status"`
	LastError      *string `json:"last_error"`
	To             string  `json:"to"`
	SandboxID      *int64  `json:"sandbox_id"`
}

type capturedMessage struct {
	ID        int64  `json:"id"`
	InboxID   int64  `json:"inbox_id"`
	SandboxID int64  `json:"sandbox_id"`
	Subject   string `json:"subject"`
	FromEmail string `json:"from_email"`
	ToEmail   string `json:"to_email"`
	IsRead    bool   `json:"is_read"`
	EmailSize int    `json:"email_size"`
}

func bearerHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// createTestToken creates a test key as caller and returns its value.
func (e *env) createTestToken(caller, name string, perms ...map[string]any) string {
	e.t.Helper()
	var t apiToken
	e.post("/api/api_tokens", caller, map[string]any{"name": name, "environment": "test", "resources": perms}).want(200).decode(&t)
	e.secrets.add(t.Token)
	return t.Token
}

func addr(email string) map[string]any { return map[string]any{"email": email} }

// email is a valid send body from from to the given recipients.
func email(from string, to ...string) map[string]any {
	list := make([]any, len(to))
	for i, t := range to {
		list[i] = addr(t)
	}
	return map[string]any{"from": addr(from), "to": list, "subject": "Hello", "text": "Hello there"}
}

// domainRecord creates a sending domain, verified (its records published in
// the test DNS server), and returns its id and DKIM record.
func (e *env) domainRecord(token, name string) (int64, string, string) {
	e.t.Helper()
	var d struct {
		ID         int64 `json:"id"`
		DNSRecords []struct {
			Key, Domain, Value string
		} `json:"dns_records"`
		APIToken apiToken `json:"api_token"`
	}
	e.post(e.path("/api/accounts/%d/sending_domains", e.acme), token,
		map[string]any{"sending_domain": map[string]any{"domain_name": name}}).want(200).decode(&d)
	e.secrets.add(d.APIToken.Token)
	// Published and verified outside the API: tests count their requests.
	for _, r := range d.DNSRecords {
		e.dns.AddTXT(r.Domain, r.Value)
	}
	if v, err := e.domains.VerifyAsOperator(context.Background(), d.ID, "test"); err != nil || v.DNSState.VerifiedAt == nil {
		e.t.Fatalf("domain %s not verified with every record published: %v %+v", name, err, v)
	}
	for _, r := range d.DNSRecords {
		if r.Key == "dkim" {
			return d.ID, r.Domain, r.Value
		}
	}
	e.t.Fatalf("domain %s has no DKIM record: %+v", name, d.DNSRecords)
	return 0, "", ""
}

func (e *env) emailLog(token, id string) emailLog {
	e.t.Helper()
	var l emailLog
	e.get("/api/email_logs/"+id, token).want(200).decode(&l)
	return l
}

func TestLiveSendIsDeliveredSignedToEachRecipient(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRelay(r))
	_, dkimName, dkimValue := e.domainRecord(e.admin, "mail.example.com")
	body := map[string]any{
		"from": map[string]any{"email": "news@mail.example.com", "name": "Example News"},
		"to":   []any{map[string]any{"email": "ann@example.org", "name": "Ann"}}, "cc": []any{addr("bob@example.org")},
		"bcc": []any{addr("secret@example.org")}, "reply_to": addr("help@mail.example.com"),
		"subject": "Your order", "text": "Thanks!", "html": "<p>Thanks!</p>",
		"headers":     map[string]string{"X-Order": "1234"},
		"attachments": []any{map[string]any{"filename": "invoice.pdf", "content": base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 x")), "type": "application/pdf"}},
	}
	var s sent
	e.post("/api/send", e.admin, body).want(200).decode(&s)
	if !s.Success || len(s.MessageIDs) != 3 {
		t.Fatalf("send answered %+v, want 3 message ids (to, cc, bcc)", s)
	}
	mails := relay.WaitMails(t, 3, 10*time.Second)
	byRcpt := map[string]testutil.Mail{}
	for _, m := range mails {
		if m.From != "news@mail.example.com" || len(m.To) != 1 {
			t.Fatalf("envelope %s → %v, want one recipient per delivery from the sender", m.From, m.To)
		}
		byRcpt[m.To[0]] = m
	}
	for i, rcpt := range []string{"ann@example.org", "bob@example.org", "secret@example.org"} {
		m, ok := byRcpt[rcpt]
		if !ok {
			t.Fatalf("nothing delivered to %s; got %v", rcpt, byRcpt)
		}
		if want := "Message-ID: <" + s.MessageIDs[i] + "@mail.example.com>"; !bytes.Contains(m.Data, []byte(want)) {
			t.Errorf("%s: no %q in\n%s", rcpt, want, m.Data)
		}
		if bytes.Contains(m.Data, []byte("secret@example.org")) {
			t.Errorf("%s: the Bcc recipient shows in the message", rcpt)
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
			if name != dkimName {
				return nil, fmt.Errorf("looked up %s, the domain publishes %s", name, dkimName)
			}
			return []string{dkimValue}, nil
		}})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "mail.example.com" {
			t.Errorf("%s: DKIM does not verify against the published record: %v %+v", rcpt, err, vs)
		}
		p, err := mail.Parse(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if subj, _ := p.Header.Subject(); subj != "Your order" || p.Text != "Thanks!" || p.HTML != "<p>Thanks!</p>" ||
			p.Header.Get("X-Order") != "1234" || p.Header.Get("Reply-To") != "<help@mail.example.com>" ||
			len(p.Attachments) != 1 || string(p.Attachments[0].Content) != "%PDF-1.4 x" {
			t.Errorf("%s: delivered message lost content: subject %q text %q html %q headers %v attachments %d",
				rcpt, subj, p.Text, p.HTML, p.Header.Map(), len(p.Attachments))
		}
	}
	waitFor(t, 5*time.Second, "every message delivered", func() bool {
		for _, id := range s.MessageIDs {
			if e.emailLog(e.admin, id).DeliveryStatus != "delivered" {
				return false
			}
		}
		return true
	})
	if l := e.emailLog(e.admin, s.MessageIDs[1]); l.Status != "delivered" || l.To != "bob@example.org" {
		t.Errorf("email log = %+v", l)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
	}
}

// A test key and a sandbox send never reach the relay; a live send made
// after them does, so the relay is known to be working when the count is read.
func TestTestKeysAndSandboxSendsNeverDeliver(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, _ := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	e := newEnv(t, withRelay(r))
	e.domainRecord(e.admin, "example.com")
	testKey := e.createTestToken(e.admin, "ci", perm("account", e.acme, 100))
	p := e.createProject(e.admin, "QA")
	sb := e.createSandbox(e.admin, p, "Staging")

	var testSent, liveToSandbox, live sent
	e.post("/api/send", testKey, email("app@example.com", "user@example.org")).want(200).decode(&testSent)
	e.post(e.path("/api/send/%d", sb), e.admin, email("qa@anywhere.test", "user@example.org")).want(200).decode(&liveToSandbox)
	e.post("/api/send", e.admin, email("app@example.com", "real@example.org")).want(200).decode(&live)
	if len(testSent.MessageIDs) != 1 || !testSent.Success {
		t.Fatalf("a test key's answer %+v differs from a live send's", testSent)
	}
	relay.WaitMails(t, 1, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // time for a wrong delivery to show
	if mails := relay.Mails(); len(mails) != 1 || mails[0].To[0] != "real@example.org" {
		t.Fatalf("the relay got %d messages (%v), want only the live one", len(mails), mails)
	}

	// The test key's mail is in the account's test-key sandbox.
	l := e.emailLog(e.admin, testSent.MessageIDs[0])
	if l.DeliveryStatus != "captured" || l.SandboxID == nil {
		t.Fatalf("test key message log = %+v, want captured in a sandbox", l)
	}
	var sandboxes []struct {
		ID        int64  `json:"id"`
		Name      string `json:"name"`
		ProjectID int64  `json:"project_id"`
	}
	e.get(e.path("/api/accounts/%d/inboxes", e.acme), e.admin).want(200).decode(&sandboxes)
	found := false
	for _, s := range sandboxes {
		found = found || s.ID == *l.SandboxID && s.Name == "Test key sends"
	}
	if !found {
		t.Errorf("sandbox %d is not the account's \"Test key sends\": %+v", *l.SandboxID, sandboxes)
	}
	var msgs []capturedMessage
	e.get(e.path("/api/accounts/%d/inboxes/%d/messages", e.acme, *l.SandboxID), e.admin).want(200).decode(&msgs)
	if len(msgs) != 1 || msgs[0].ToEmail != "user@example.org" || msgs[0].FromEmail != "app@example.com" || msgs[0].Subject != "Hello" {
		t.Errorf("test-key sandbox holds %+v", msgs)
	}
	// A second test send goes to the same sandbox.
	var again sent
	e.post("/api/send", testKey, email("app@example.com", "other@example.org")).want(200).decode(&again)
	if l2 := e.emailLog(e.admin, again.MessageIDs[0]); *l2.SandboxID != *l.SandboxID {
		t.Errorf("second test send went to sandbox %d, first to %d", *l2.SandboxID, *l.SandboxID)
	}
	// The sandbox send is in the sandbox named.
	e.get(e.path("/api/sandboxes/%d/messages", sb), e.admin).want(200).decode(&msgs)
	if len(msgs) != 1 || msgs[0].SandboxID != sb || msgs[0].InboxID != sb {
		t.Errorf("sandbox %d holds %+v", sb, msgs)
	}
}

func TestSendingNeedsAdminOnTheSendersDomain(t *testing.T) {
	e := newEnv(t)
	d, _, _ := e.domainRecord(e.admin, "example.com")
	e.domainRecord(e.admin, "other.example.com")
	domainAdmin := e.createToken(e.admin, "domain admin", perm("domain", d, 100))
	domainViewer := e.createToken(e.admin, "domain viewer", perm("domain", d, 10))
	testDomainAdmin := e.createTestToken(e.admin, "test domain admin", perm("domain", d, 100))
	testViewer := e.createTestToken(e.admin, "test viewer", perm("account", e.acme, 10))
	tests := []struct {
		name, token, from string
		want              int
	}{
		{"account admin", e.admin, "a@example.com", 200},
		{"domain admin", domainAdmin.Token, "a@example.com", 200},
		{"domain admin, case of the domain", domainAdmin.Token, "a@EXAMPLE.com", 200},
		{"domain admin, another domain of the account", domainAdmin.Token, "a@other.example.com", 403},
		{"domain viewer", domainViewer.Token, "a@example.com", 403},
		{"a domain the account does not have", e.admin, "a@nowhere.example", 403},
		{"a subdomain of the domain", e.admin, "a@sub.example.com", 403},
		{"another account's admin", e.otherAdmin, "a@example.com", 403},
		{"test key, domain admin", testDomainAdmin, "a@example.com", 200},
		{"test key, viewer", testViewer, "a@example.com", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			res := e.post("/api/send", tt.token, email(tt.from, "u@example.org")).want(tt.want)
			if tt.want == 403 {
				var body sendErrors
				res.decode(&body)
				domain := strings.ToLower(tt.from[strings.Index(tt.from, "@")+1:])
				if body.Success || len(body.Errors) != 1 || !strings.Contains(body.Errors[0], domain) {
					t.Errorf("403 body %s does not name the domain %s", res.Body, domain)
				}
			}
		})
	}
	// The same answer whether the domain is another account's or missing.
	a := e.post("/api/send", e.otherAdmin, email("a@example.com", "u@example.org")).Body
	b := e.post("/api/send", e.otherAdmin, email("a@example.net", "u@example.org")).Body
	if string(a) != strings.ReplaceAll(string(b), "example.net", "example.com") {
		t.Errorf("another account's domain answers %s, a missing one %s", a, b)
	}
}

func TestInvalidEmailsAre400NamingTheField(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	with := func(change func(m map[string]any)) map[string]any {
		m := email("a@example.com", "u@example.org")
		change(m)
		return m
	}
	many := make([]any, 1001)
	for i := range many {
		many[i] = addr(fmt.Sprintf("u%d@example.org", i))
	}
	tests := []struct {
		name string
		body any
		want string // in one of the errors
	}{
		{"no from", with(func(m map[string]any) { delete(m, "from") }), "'from' is required"},
		{"from not an address", with(func(m map[string]any) { m["from"] = addr("not-an-address") }), "'from.email' address is invalid"},
		{"from with a display name inside", with(func(m map[string]any) { m["from"] = addr("A <a@example.com>") }), "'from.email' address is invalid"},
		{"no recipient", with(func(m map[string]any) { delete(m, "to") }), "'to' or 'cc' or 'bcc' address is required"},
		{"bad recipient", with(func(m map[string]any) { m["cc"] = []any{addr("bad@")} }), "'cc[0].email' address is invalid"},
		{"too many recipients", with(func(m map[string]any) { m["to"] = many }), "'to' has too many addresses"},
		{"no subject", with(func(m map[string]any) { delete(m, "subject") }), "'subject' is required"},
		{"subject with a line break", with(func(m map[string]any) { m["subject"] = "a\r\nBcc: x@evil.test" }), "'subject' must not contain control characters"},
		{"no body", with(func(m map[string]any) { delete(m, "text") }), "'text' or 'html' is required"},
		{"name with a line break", with(func(m map[string]any) { m["from"] = map[string]any{"email": "a@example.com", "name": "x\nBcc: y"} }), "'from.name'"},
		{"reserved header", with(func(m map[string]any) { m["headers"] = map[string]string{"Bcc": "x@evil.test"} }), "'headers.Bcc' is a reserved header"},
		{"header value with a line break", with(func(m map[string]any) { m["headers"] = map[string]string{"X-A": "1\r\nBcc: x"} }), "'headers.X-A'"},
		{"attachment not base64", with(func(m map[string]any) {
			m["attachments"] = []any{map[string]any{"filename": "a.txt", "content": "%%%"}}
		}), "'attachments[0].content' must be base64"},
		{"attachment without a name", with(func(m map[string]any) { m["attachments"] = []any{map[string]any{"content": "aGk="}} }), "'attachments[0].filename' is required"},
		{"attachment disposition", with(func(m map[string]any) {
			m["attachments"] = []any{map[string]any{"filename": "a", "content": "aGk=", "disposition": "sideways"}}
		}), "'attachments[0].disposition'"},
		{"attachment multipart", attachmentType("multipart/mixed; boundary=XB"), "'attachments[0].type' must not be a multipart or message type"},
		{"attachment multipart, any case", attachmentType("Multipart/Related"), "'attachments[0].type' must not be a multipart or message type"},
		{"attachment message", attachmentType("message/rfc822"), "'attachments[0].type' must not be a multipart or message type"},
		{"attachment message partial", attachmentType("message/partial; id=x; number=1"), "'attachments[0].type' must not be a multipart or message type"},
		{"attachment type without subtype", attachmentType("text/"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type without slash", attachmentType("foo"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type parameter without name", attachmentType("text/plain; =x"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type parameter twice", attachmentType("text/plain; charset=utf-8; charset=ascii"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type with a NUL", attachmentType("text/plain\x00"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type with a line break", attachmentType("text/plain\r\nBcc: x@evil.test"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type parameter encoding a line break", attachmentType("text/plain; x*=utf-8''a%0D%0Ab"), "'attachments[0].type' is not a valid MIME type"},
		{"attachment type too long", attachmentType("text/plain; x=" + strings.Repeat("y", 1000)), "'attachments[0].type' is too long"},
		{"custom variables too large", with(func(m map[string]any) { m["custom_variables"] = map[string]string{"k": strings.Repeat("v", 1000)} }), "'custom_variables' is too large"},
		{"template", with(func(m map[string]any) { m["template_uuid"] = "b81aabcd-1a1e-41cf-91b6-eca0254b3d96" }), "'template_uuid' is not supported"},
		{"non-ASCII address", with(func(m map[string]any) { m["to"] = []any{addr("jösé@example.org")} }), "'to[0].email' address is invalid"},
		{"custom variable an object", with(func(m map[string]any) { m["custom_variables"] = map[string]any{"k": map[string]any{}} }), `'custom_variables' "k" must be a string, a number or a boolean`},
		{"wrong type", with(func(m map[string]any) { m["to"] = "u@example.org" }), "'to' to must be an array"},
		{"not JSON", "{from:", "request body is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var body sendErrors
			e.post("/api/send", e.admin, tt.body).want(400).decode(&body)
			if body.Success || !slicesContain(body.Errors, tt.want) {
				t.Errorf("errors %q do not include %q", body.Errors, tt.want)
			}
		})
	}
}

// attachmentType is a valid send body with one attachment of type typ.
func attachmentType(typ string) map[string]any {
	m := email("a@example.com", "u@example.org")
	m["attachments"] = []any{map[string]any{"filename": "a.txt", "content": "aGk=", "type": typ}}
	return m
}

func slicesContain(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Header fields that receiving servers add and trust (trace, authentication
// results, signatures, resent fields), and those tokend writes, are refused
// whatever their case, as are names that are not field names and values with
// control characters; others go out as given, but a Content-Transfer-Encoding,
// which tokend picks for each part.
func TestSendChecksHeadersByName(t *testing.T) {
	e := newEnv(t)
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Headers")
	const trusted = "is a reserved header that mail servers add and receivers trust"
	tests := []struct {
		name, value string
		want        string // in one of the errors; "" for accepted
	}{
		{"Authentication-Results", "mx.example.org; dkim=pass", trusted},
		{"authentication-results", "mx.example.org; spf=pass", trusted},
		{"ARC-Seal", "i=1; a=rsa-sha256; cv=none", trusted},
		{"ARC-Message-Signature", "i=1", trusted},
		{"ARC-Authentication-Results", "i=1; mx.example.org; dkim=pass", trusted},
		{"Arc-Future-Field", "i=1", trusted},
		{"DomainKey-Signature", "a=rsa-sha1", trusted},
		{"Received", "from mx.example.org by mx.example.org", trusted},
		{"RECEIVED", "from x", trusted},
		{"Received-SPF", "pass", trusted},
		{"Return-Path", "<ceo@example.org>", trusted},
		{"Delivered-To", "ceo@example.org", trusted},
		{"X-Original-To", "ceo@example.org", trusted},
		{"Resent-From", "ceo@example.org", trusted},
		{"resent-message-id", "<x@example.org>", trusted},
		{"Resent-Date", "Tue, 1 Dec 2026 10:00:00 +0000", trusted},
		{"X-Tokend-Account-Id", "1", "is a reserved header (X-Tokend-* fields are tokend's own)"},
		{"DKIM-Signature", "v=1; d=example.org", "is a reserved header that tokend sets itself"},
		{"Message-Id", "<x@example.org>", "is a reserved header that tokend sets itself"},
		{"X A", "1", `'headers' "X A" is not a valid header name`},
		{"X:A", "1", `'headers' "X:A" is not a valid header name`},
		{"X-Ünï", "1", `is not a valid header name`},
		{"X-\x7f", "1", `is not a valid header name`},
		{"", "1", `'headers' "" is not a valid header name`},
		{"X-Nul", "a\x00b", "'headers.X-Nul' must be valid UTF-8 without control characters"},
		{"X-Lf", "a\nb", "'headers.X-Lf' must be valid UTF-8 without control characters"},
		{"X-Cr", "a\r.\r", "'headers.X-Cr' must be valid UTF-8 without control characters"},
		{"X-Campaign", "winter", ""},
		{"List-Unsubscribe", "<https://example.com/u>", ""},
		{"X-Received-Count", "2", ""},
		{"X-Archive", "arc", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			body := email("a@example.com", "u@example.org")
			body["headers"] = map[string]string{tt.name: tt.value}
			if tt.want != "" {
				var res sendErrors
				e.post(e.path("/api/send/%d", sb), e.admin, body).want(400).decode(&res)
				if res.Success || !slicesContain(res.Errors, tt.want) {
					t.Errorf("errors %q do not include %q", res.Errors, tt.want)
				}
				return
			}
			e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
			if raw := e.lastCaptured(sb); !bytes.Contains(raw, []byte("\r\n"+tt.name+": "+tt.value+"\r\n")) {
				t.Errorf("%s: %s is not in\n%s", tt.name, tt.value, raw)
			}
		})
	}
	// A Content-Transfer-Encoding is dropped: tokend picks each part's.
	body := email("a@example.com", "u@example.org")
	body["headers"] = map[string]string{"Content-Transfer-Encoding": "8bit"}
	e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
	if raw := e.lastCaptured(sb); bytes.Contains(raw, []byte("8bit")) {
		t.Errorf("the caller's Content-Transfer-Encoding is in\n%s", raw)
	}
}

// lastCaptured returns the raw message sandbox sb captured last.
func (e *env) lastCaptured(sb int64) []byte {
	e.t.Helper()
	var list []capturedMessage
	e.get(e.path("/api/sandboxes/%d/messages", sb), e.admin).want(200).decode(&list)
	if len(list) == 0 {
		e.t.Fatalf("sandbox %d holds nothing", sb)
	}
	return e.get(e.path("/api/sandboxes/%d/messages/%d/body.raw", sb, list[0].ID), e.admin).want(200).Body
}

// An attachment goes out in base64 whatever its type, with the type as given:
// its parameters kept, quoted where they need it, and the file's name added.
// A type derived from the file name is never a multipart or message type.
func TestSendPutsAttachmentsInBase64WithTheirType(t *testing.T) {
	mime.AddExtensionType(".eml", "message/rfc822") // as /etc/mime.types has it on many systems
	e := newEnv(t)
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Types")
	content := []byte("c\r.\r\n--XB\r\nContent-Type: text/html\r\n\r\n<b>x</b>\n.\nend\r")
	tests := []struct {
		name, typ, filename, want string
	}{
		{"text", "text/plain", "a.txt", "text/plain; name=a.txt"},
		{"text with a charset", "text/plain; charset=utf-8", "a.txt", "text/plain; charset=utf-8; name=a.txt"},
		{"text in another charset", "text/plain; charset=iso-8859-1", "a.txt", "text/plain; charset=iso-8859-1; name=a.txt"},
		{"case and quotes", `Text/CSV; Charset="UTF-8"; Header=present`, "a.csv", "text/csv; charset=UTF-8; header=present; name=a.csv"},
		{"a parameter that needs quotes", `application/x-thing; note="a;b c"`, "a.bin", `application/x-thing; name=a.bin; note="a;b c"`},
		{"html", "text/html", "a.html", "text/html; name=a.html"},
		{"image", "image/png", "a.png", "image/png; name=a.png"},
		{"derived from the name", "", "a.pdf", "application/pdf; name=a.pdf"},
		{"derived from the name as a message type", "", "a.eml", "application/octet-stream; name=a.eml"},
		{"no type known for the name", "", "a.nosuchtype", "application/octet-stream; name=a.nosuchtype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			body := email("a@example.com", "u@example.org")
			body["attachments"] = []any{map[string]any{"filename": tt.filename, "type": tt.typ, "content": base64.StdEncoding.EncodeToString(content)}}
			e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
			raw := e.lastCaptured(sb)
			for _, p := range mailtest.WireProblems(raw) {
				t.Errorf("%s in\n%q", p, raw)
			}
			unfolded := bytes.ReplaceAll(raw, []byte("\r\n "), []byte(" "))
			if want := "\r\nContent-Type: " + tt.want + "\r\n"; !bytes.Contains(unfolded, []byte(want)) {
				t.Errorf("no %q in\n%s", want, raw)
			}
			p, err := mail.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Attachments) != 1 || !bytes.Equal(p.Attachments[0].Content, content) || p.Attachments[0].TransferEncoding != "base64" {
				t.Errorf("attachments %+v, want %q in base64", p.Attachments, content)
			}
		})
	}
}

// The bytes a relay receives hold CRLF pairs only, whatever line breaks the
// text, the HTML and the files hold, and every attachment in base64: nothing a
// caller sends can end the SMTP data early (SMTP smuggling). An attachment
// typed to carry MIME parts of its own is refused, so never reaches it.
func TestSendDeliversOnlyCRLF(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRelay(r))
	e.domainRecord(e.admin, "example.com")
	smuggled := "c\r.\r\nMAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: forged\r\n\r\nx\r\n.\r\n"
	file := base64.StdEncoding.EncodeToString([]byte(smuggled))
	attack := email("a@example.com", "attacked@example.org")
	attack["attachments"] = []any{map[string]any{"filename": "x", "type": "multipart/mixed; boundary=XB", "content": file}}
	attackStatus := e.post("/api/send", e.admin, attack).Status

	breaks := "a\rb\nc\r.\r\nd\n.\ne\r\n.\r\nf\r"
	body := email("a@example.com", "u@example.org")
	body["text"], body["html"] = breaks, "<p>"+breaks+"</p>"
	body["attachments"] = []any{
		map[string]any{"filename": "a.txt", "type": "text/plain", "content": file},
		map[string]any{"filename": "b.txt", "type": "text/plain; charset=iso-8859-1", "content": file},
		map[string]any{"filename": "c.bin", "content": file},
		map[string]any{"filename": "d.html", "type": "text/html", "disposition": "inline", "content_id": "d", "content": file},
	}
	var s sent
	e.post("/api/send", e.admin, body).want(200).decode(&s)
	waitFor(t, 10*time.Second, "the message delivered", func() bool { return e.emailLog(e.admin, s.MessageIDs[0]).DeliveryStatus == "delivered" })
	mails := relay.Mails()
	if attackStatus == 200 {
		mails = relay.WaitMails(t, 2, 10*time.Second)
	}
	for _, m := range mails {
		for _, p := range mailtest.WireProblems(m.Data) {
			t.Errorf("to %v: %s", m.To, p)
		}
		if bytes.Contains(m.Data, []byte("RCPT TO:")) {
			t.Errorf("to %v: the file's SMTP commands are in the message in clear:\n%q", m.To, m.Data)
		}
		if m.To[0] != "u@example.org" {
			continue
		}
		p, err := mail.Parse(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		normalized := "a\r\nb\r\nc\r\n.\r\nd\r\n.\r\ne\r\n.\r\nf\r\n"
		if p.Text != normalized || p.HTML != "<p>"+normalized+"</p>" || len(p.Attachments) != 4 {
			t.Errorf("delivered text %q, html %q, %d attachments", p.Text, p.HTML, len(p.Attachments))
		}
		for _, a := range p.Attachments {
			if string(a.Content) != smuggled || a.TransferEncoding != "base64" {
				t.Errorf("attachment %s: %q in %q", a.Filename, a.Content, a.TransferEncoding)
			}
		}
	}
	if attackStatus != 400 {
		t.Errorf("a multipart attachment answered %d, want 400", attackStatus)
	}
}

func TestOversizeEmailsAre413(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	big := func(n int) map[string]any {
		m := email("a@example.com", "u@example.org")
		m["attachments"] = []any{map[string]any{"filename": "big.bin", "content": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n))}}
		return m
	}
	// Under 10 MiB as delivered: accepted.
	e.post("/api/send", e.admin, big(7<<20)).want(200)
	// Over 10 MiB once encoded, though the body is under the route's bound.
	var body sendErrors
	e.post("/api/send", e.admin, big(8<<20)).want(413).decode(&body)
	if len(body.Errors) != 1 || !strings.Contains(body.Errors[0], "10 MiB") {
		t.Errorf("413 body %+v", body)
	}
	// A body over the route's bound is refused before it is read whole.
	e.post("/api/send", e.admin, big(13<<20)).want(413)
	// The management API keeps its own 1 MiB bound.
	e.post("/api/api_tokens", e.admin, map[string]any{"name": strings.Repeat("x", 2<<20)}).want(413)
}

func TestBatchAnswersEachEmail(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	var res struct {
		Success   bool `json:"success"`
		Responses []struct {
			Success    bool     `json:"success"`
			MessageIDs []string `json:"message_ids"`
			Errors     []string `json:"errors"`
		} `json:"responses"`
	}
	e.post("/api/batch", e.admin, map[string]any{
		"base": map[string]any{"from": addr("news@example.com"), "subject": "Monthly", "text": "Base text"},
		"requests": []any{
			map[string]any{"to": []any{addr("a@example.org"), addr("b@example.org")}},
			map[string]any{"to": []any{addr("c@example.org")}, "subject": "Override"},
			map[string]any{"subject": "No recipients"},
			map[string]any{"to": []any{addr("d@example.org")}, "from": addr("x@elsewhere.example")},
			map[string]any{"to": []any{addr("e@example.org")}, "attachments": []any{map[string]any{"filename": "a", "content": "!!"}}},
			map[string]any{"to": []any{addr("f@example.org")}, "attachments": []any{map[string]any{"filename": "a", "content": "aGk=", "type": "multipart/mixed; boundary=XB"}}},
		},
	}).want(200).decode(&res)
	if !res.Success || len(res.Responses) != 6 {
		t.Fatalf("batch answered %+v", res)
	}
	want := []struct {
		ok    bool
		ids   int
		error string
	}{{true, 2, ""}, {true, 1, ""}, {false, 0, "'to' or 'cc' or 'bcc'"}, {false, 0, "elsewhere.example"}, {false, 0, "base64"},
		{false, 0, "'attachments[0].type' must not be a multipart or message type"}}
	for i, w := range want {
		got := res.Responses[i]
		if got.Success != w.ok || len(got.MessageIDs) != w.ids || w.error != "" && !slicesContain(got.Errors, w.error) {
			t.Errorf("item %d = %+v, want success %v, %d ids, error %q", i, got, w.ok, w.ids, w.error)
		}
	}
	// Only the accepted items are queued; the override applies to its item only.
	for i, subject := range map[int]string{0: "Monthly", 1: "Override"} {
		var l struct {
			Subject string `json:"subject"`
		}
		e.get("/api/email_logs/"+res.Responses[i].MessageIDs[0], e.admin).want(200).decode(&l)
		if l.Subject != subject {
			t.Errorf("item %d has subject %q, want %q", i, l.Subject, subject)
		}
	}
	requests := make([]any, 501)
	for i := range requests {
		requests[i] = map[string]any{"to": []any{addr("a@example.org")}}
	}
	var tooMany sendErrors
	e.post("/api/batch", e.admin, map[string]any{"base": email("news@example.com"), "requests": requests}).want(400).decode(&tooMany)
	if !slicesContain(tooMany.Errors, "'requests' has too many emails (maximum is 500)") {
		t.Errorf("501 requests: %v", tooMany.Errors)
	}
	e.post("/api/batch", e.admin, map[string]any{"requests": []any{}}).want(400)

	// A request that cannot be read fails alone.
	e.post("/api/batch", e.admin, map[string]any{"base": email("news@example.com"), "requests": []any{
		map[string]any{"to": "not a list"}, map[string]any{"to": []any{addr("ok@example.org")}}}}).want(200).decode(&res)
	if len(res.Responses) != 2 || res.Responses[0].Success || !slicesContain(res.Responses[0].Errors, "'to'") || !res.Responses[1].Success {
		t.Errorf("batch with an unreadable request = %+v", res.Responses)
	}
	// What one batch may queue is bounded: recipients, and bytes once rendered.
	many := make([]any, 1000)
	for i := range many {
		many[i] = addr(fmt.Sprintf("u%d@example.org", i))
	}
	requests = make([]any, 11)
	for i := range requests {
		requests[i] = map[string]any{"to": many}
	}
	e.post("/api/batch", e.admin, map[string]any{"base": email("news@example.com"), "requests": requests}).want(400).decode(&tooMany)
	if !slicesContain(tooMany.Errors, "maximum is 10000 a request") {
		t.Errorf("11,000 recipients: %v", tooMany.Errors)
	}
	base := email("news@example.com")
	base["attachments"] = []any{map[string]any{"filename": "big.bin", "content": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 6<<20))}}
	requests = make([]any, 7)
	for i := range requests {
		requests[i] = map[string]any{"to": []any{addr("a@example.org")}}
	}
	e.post("/api/batch", e.admin, map[string]any{"base": base, "requests": requests}).want(413)
	if n, _ := e.svc.Outbox().Pending(t.Context(), tokend.EmailJob); n != 4 {
		t.Errorf("%d deliveries queued, want the 4 recipients of the accepted items only", n)
	}
}

func TestCustomVariablesTakeScalars(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	body := email("a@example.com", "u@example.org")
	body["custom_variables"] = map[string]any{"user_id": 42, "vip": true, "plan": "pro", "ratio": 1.5}
	var s sent
	e.post("/api/send", e.admin, body).want(200).decode(&s)
	var l struct {
		CustomVariables map[string]string `json:"custom_variables"`
	}
	e.get("/api/email_logs/"+s.MessageIDs[0], e.admin).want(200).decode(&l)
	if fmt.Sprint(l.CustomVariables) != "map[plan:pro ratio:1.5 user_id:42 vip:true]" {
		t.Errorf("custom variables = %v", l.CustomVariables)
	}
}

func TestMailSageSend(t *testing.T) {
	e := newEnv(t)
	d, _, _ := e.domainRecord(e.admin, "example.com")
	domainAdmin := e.createToken(e.admin, "sender", perm("domain", d, 100))
	body := map[string]any{"recipient": map[string]any{"email": "user@example.org"}, "subject": "Hello!", "body": "Test email"}
	var ok struct {
		Success   bool   `json:"success"`
		MessageID string `json:"message_id"`
		Status    string `json:"status"`
	}
	res := e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader(domainAdmin.Token), body: body}).want(200)
	res.decode(&ok)
	if !ok.Success || ok.MessageID == "" || ok.Status != "accepted" {
		t.Fatalf("answer %s", res.Body)
	}
	var l struct {
		From string `json:"from"`
	}
	e.get("/api/email_logs/"+ok.MessageID, e.admin).want(200).decode(&l)
	if l.From != "no-reply@example.com" {
		t.Errorf("default sender %q, want no-reply@example.com", l.From)
	}
	// from as a plain address, and as an object.
	for _, from := range []any{"team@example.com", map[string]any{"email": "team@example.com", "name": "Team"}} {
		b := map[string]any{"recipient": addr("u@example.org"), "subject": "s", "body": "b", "from": from}
		e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader(domainAdmin.Token), body: b}).want(200)
	}
	// Several domains and no from: 422 naming from, in MailSage's shape.
	e.domainRecord(e.admin, "second.example.com")
	var fail struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader(e.admin), body: body}).want(422).decode(&fail)
	if fail.Status != 422 || fail.Code != "sender_required" || fail.Error != "'from' is required: this token is admin on 2 sending domains, so name the one to send from" {
		t.Errorf("several domains: %+v", fail)
	}
	// No domain at all: the same.
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10))
	e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader(viewer.Token), body: body}).want(422).decode(&fail)
	if fail.Error != "'from' is required: this token is not admin on any sending domain to send from" {
		t.Errorf("no domain: %q", fail.Error)
	}
	// Field names are MailSage's, and nothing else in the message is renamed.
	e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader(domainAdmin.Token),
		body: map[string]any{"recipient": addr("u@example.org"), "subject": strings.Repeat("s", 999)}}).want(400).decode(&fail)
	if fail.Error != "'subject' is too long (maximum is 998 characters); 'body' or 'html' is required: an email needs a text or an HTML body" {
		t.Errorf("invalid body: %q", fail.Error)
	}
	// Invalid: 400 naming MailSage's field; unauthenticated: its 401.
	e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader(domainAdmin.Token),
		body: map[string]any{"recipient": addr("nope"), "subject": "s", "body": "b"}}).want(400).decode(&fail)
	if fail.Code != "invalid_request" || !strings.Contains(fail.Error, "'recipient.email' address is invalid") {
		t.Errorf("invalid recipient: %+v", fail)
	}
	e.send(request{method: "POST", path: "/api/v1/emails/send", header: bearerHeader("ms_live_nope"), body: body}).want(401).decode(&fail)
	if fail.Status != 401 || fail.Code != "invalid_api_key" {
		t.Errorf("bad token: %+v", fail)
	}
}

func TestLiveSendWithoutRelayIs503(t *testing.T) {
	e := newEnv(t, withoutDelivery())
	e.domainRecord(e.admin, "example.com")
	var body sendErrors
	e.post("/api/send", e.admin, email("a@example.com", "u@example.org")).want(503).decode(&body)
	if len(body.Errors) != 1 || !strings.Contains(body.Errors[0], "--smtp-relay") {
		t.Errorf("503 body %+v does not say how to configure delivery", body)
	}
	// Nothing was queued.
	if n, err := e.svc.Outbox().Pending(t.Context(), tokend.EmailJob); err != nil || n != 0 {
		t.Errorf("%d jobs pending (%v), want none", n, err)
	}
	// Test keys and sandbox sends need no relay.
	testKey := e.createTestToken(e.admin, "ci", perm("account", e.acme, 100))
	e.post("/api/send", testKey, email("a@example.com", "u@example.org")).want(200)
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "P"), "S")
	e.post(e.path("/api/send/%d", sb), e.admin, email("a@anything.test", "u@example.org")).want(200)
}

// flakyRelay fails every delivery while down.
type flakyRelay struct {
	mail.Sender
	down func() bool
}

func (f flakyRelay) Send(ctx context.Context, from, to string, msg []byte) error {
	if f.down() {
		return errors.New("connection refused")
	}
	return f.Sender.Send(ctx, from, to, msg)
}

func TestRelayDownThenUpDeliversEverything(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, _ := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	relay.Stop()
	e := newEnv(t, withRelay(r))
	e.domainRecord(e.admin, "example.com")
	var ids []string
	for i := range 20 {
		var s sent
		e.post("/api/send", e.admin, email("a@example.com", fmt.Sprintf("u%d@example.org", i))).want(200).decode(&s)
		ids = append(ids, s.MessageIDs...)
	}
	waitFor(t, 5*time.Second, "a message deferred with the relay's error", func() bool {
		l := e.emailLog(e.admin, ids[0])
		return l.DeliveryStatus == "deferred" && l.Status == "enqueued" && l.LastError != nil && strings.Contains(*l.LastError, relay.Addr)
	})
	relay.Start(t)
	mails := relay.WaitMails(t, 20, 15*time.Second)
	seen := map[string]bool{}
	for _, m := range mails {
		seen[m.To[0]] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct recipients got mail, want 20", len(seen))
	}
	waitFor(t, 5*time.Second, "every message delivered", func() bool {
		for _, id := range ids {
			if e.emailLog(e.admin, id).DeliveryStatus != "delivered" {
				return false
			}
		}
		return true
	})
}

func TestRefusedMailFailsWithTheRelaysAnswer(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.Refuse(550, "mailbox unavailable")
	r, _ := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	e := newEnv(t, withRelay(r))
	e.domainRecord(e.admin, "example.com")
	var s sent
	e.post("/api/send", e.admin, email("a@example.com", "gone@example.org")).want(200).decode(&s)
	waitFor(t, 5*time.Second, "the message failed", func() bool { return e.emailLog(e.admin, s.MessageIDs[0]).DeliveryStatus == "failed" })
	l := e.emailLog(e.admin, s.MessageIDs[0])
	if l.Status != "not_delivered" || l.LastError == nil || !strings.Contains(*l.LastError, "550 ") || !strings.Contains(*l.LastError, "mailbox unavailable") {
		t.Errorf("failed message log = %+v", l)
	}
}

func TestSendingCountsAgainstThePlanLimit(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 3))
	e.domainRecord(e.admin, "example.com") // one request
	e.post("/api/send", e.admin, email("a@example.com", "u@example.org")).want(200)
	e.post("/api/send", e.admin, email("a@example.com", "u@example.org")).want(200)
	var body sendErrors
	res := e.post("/api/send", e.admin, email("a@example.com", "u@example.org")).want(429)
	res.decode(&body)
	if body.Success || len(body.Errors) != 1 || res.Header.Get("Retry-After") == "" {
		t.Errorf("429: %s, Retry-After %q", res.Body, res.Header.Get("Retry-After"))
	}
	// The sends are in the token's usage like any request.
	e.clock.Advance(time.Minute) // the limit is back for the usage request
	var u struct {
		Days []struct {
			Success     int `json:"success"`
			RateLimited int `json:"rate_limited"`
		} `json:"days"`
	}
	e.get(e.path("/api/api_tokens/%d/usage", e.adminID), e.admin).want(200).decode(&u)
	if len(u.Days) != 1 || u.Days[0].Success != 3 || u.Days[0].RateLimited != 1 {
		t.Errorf("usage = %+v, want 3 successes (a domain, two sends) and 1 rate-limited send", u.Days)
	}
}

func TestSendErrorsUseTheSendingShape(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name, token string
		want        int
	}{{"no token", "", 401}, {"bad token", "tk_live_tooshort", 401}} {
		t.Run(tt.name, func(t *testing.T) {
			var body sendErrors
			e.with(t).post("/api/send", tt.token, email("a@example.com", "u@example.org")).want(tt.want).decode(&body)
			if body.Success || len(body.Errors) != 1 || body.Errors[0] == "" {
				t.Errorf("body %+v", body)
			}
		})
	}
	e.post("/api/send/999999", e.admin, email("a@example.com", "u@example.org")).want(404)
}
