package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// sdkMessage is a sandbox message as the SDK returned it (Mailtrap's
// older, inbox_id form).
type sdkMessage struct {
	ID        int64  `json:"id"`
	InboxID   int64  `json:"inbox_id"`
	Subject   string `json:"subject"`
	FromEmail string `json:"from_email"`
	FromName  string `json:"from_name"`
	ToEmail   string `json:"to_email"`
	ToName    string `json:"to_name"`
	IsRead    bool   `json:"is_read"`
	HTMLPath  string `json:"html_path"`
}

// sdkError is what run.js saw thrown by a call that had to fail.
type sdkError struct {
	Threw           bool            `json:"threw"`
	IsMailtrapError bool            `json:"isMailtrapError"`
	Message         string          `json:"message"`
	Status          int             `json:"status"`
	Body            json.RawMessage `json:"body"`
	Result          json.RawMessage `json:"result"`
}

type sdkSent struct {
	Success    bool     `json:"success"`
	MessageIDs []string `json:"message_ids"`
}

type sdkBatch struct {
	Success   bool      `json:"success"`
	Responses []sdkSent `json:"responses"`
}

// sdkSummary is the JSON run.js prints.
type sdkSummary struct {
	SDKVersion     string   `json:"sdkVersion"`
	Asked          []string `json:"asked"` // the origins the SDK asked for, before useTokend
	AttachmentSize int      `json:"attachmentSize"`
	Send           sdkSent  `json:"send"`
	Batch          sdkBatch `json:"batch"`
	SandboxSend    sdkSent  `json:"sandboxSend"`
	SandboxBatch   sdkBatch `json:"sandboxBatch"`
	Errors         struct {
		ForeignDomain     sdkError `json:"foreignDomain"`
		WrongToken        sdkError `json:"wrongToken"`
		WrongTokenTesting sdkError `json:"wrongTokenTesting"`
		ShowDeleted       sdkError `json:"showDeleted"`
		MissingHTML       sdkError `json:"missingHtml"`
	} `json:"errors"`
	List        []sdkMessage `json:"list"`
	MessageID   int64        `json:"messageId"`
	Shown       sdkMessage   `json:"shown"`
	HTML        string       `json:"html"`
	HTMLSource  string       `json:"htmlSource"`
	Text        string       `json:"text"`
	Raw         string       `json:"raw"`
	EML         string       `json:"eml"`
	MailHeaders struct {
		Headers map[string]string `json:"headers"`
	} `json:"mailHeaders"`
	Updated          sdkMessage `json:"updated"`
	ShownAfterUpdate sdkMessage `json:"shownAfterUpdate"`
	Attachments      []struct {
		ID             int64  `json:"id"`
		MessageID      int64  `json:"message_id"`
		Filename       string `json:"filename"`
		ContentType    string `json:"content_type"`
		AttachmentSize int    `json:"attachment_size"`
	} `json:"attachments"`
	Attachment struct {
		Filename string `json:"filename"`
	} `json:"attachment"`
	Deleted         sdkMessage   `json:"deleted"`
	ListAfterDelete []sdkMessage `json:"listAfterDelete"`
	Domains         struct {
		List struct {
			Data []struct {
				ID         int64  `json:"id"`
				DomainName string `json:"domain_name"`
			} `json:"data"`
		} `json:"list"`
		Created struct {
			ID         int64  `json:"id"`
			DomainName string `json:"domain_name"`
		} `json:"created"`
		Got struct {
			DomainName string `json:"domain_name"`
		} `json:"got"`
		Updated struct {
			OpenTracking *bool `json:"open_tracking_enabled"`
		} `json:"updated"`
		TrackingRefused sdkError `json:"trackingRefused"`
		Gone            sdkError `json:"gone"`
	} `json:"domains"`
	Webhooks struct {
		Created struct {
			Data struct {
				ID            int64    `json:"id"`
				URL           string   `json:"url"`
				Active        bool     `json:"active"`
				EventTypes    []string `json:"event_types"`
				SigningSecret string   `json:"signing_secret"`
			} `json:"data"`
		} `json:"created"`
		List struct {
			Data []struct {
				ID int64 `json:"id"`
			} `json:"data"`
		} `json:"list"`
		Got struct {
			Data map[string]any `json:"data"`
		} `json:"got"`
		Updated struct {
			Data struct {
				EventTypes []string `json:"event_types"`
			} `json:"data"`
		} `json:"updated"`
		Invalid sdkError `json:"invalid"`
		Deleted struct {
			Data struct {
				URL string `json:"url"`
			} `json:"data"`
		} `json:"deleted"`
	} `json:"webhooks"`
	Suppressions struct {
		Created struct {
			Data struct {
				ID    string `json:"id"`
				Email string `json:"email"`
				Type  string `json:"type"`
			} `json:"data"`
		} `json:"created"`
		List []struct {
			ID string `json:"id"`
		} `json:"list"`
		Deleted struct {
			ID string `json:"id"`
		} `json:"deleted"`
	} `json:"suppressions"`
	LiveSend sdkSent `json:"liveSend"`
	Logs     struct {
		All        sdkLogList `json:"all"`
		Filtered   sdkLogList `json:"filtered"`
		Suppressed sdkLogList `json:"suppressed"`
		One        sdkLog     `json:"one"`
		Page       sdkLogList `json:"page"`
		BadFilter  sdkError   `json:"badFilter"`
	} `json:"logs"`
}

type sdkLog struct {
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
	To        string `json:"to"`
	Captured  bool   `json:"captured"`
	Events    []struct {
		EventType string `json:"event_type"`
	} `json:"events"`
}

type sdkLogList struct {
	Messages       []sdkLog `json:"messages"`
	TotalCount     int      `json:"total_count"`
	NextPageCursor *string  `json:"next_page_cursor"`
}

// hookReceiver is a webhook endpoint on loopback that keeps every delivery.
type hookReceiver struct {
	URL  string
	mu   sync.Mutex
	got  []hookDelivery
	seen chan struct{}
}

type hookDelivery struct {
	Header http.Header
	Body   []byte
}

func startHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{seen: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, hookDelivery{Header: r.Header.Clone(), Body: body})
		h.mu.Unlock()
		select {
		case h.seen <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

// wait returns the first delivery whose body contains want, or fails after limit.
func (h *hookReceiver) wait(t *testing.T, want string, limit time.Duration) hookDelivery {
	t.Helper()
	deadline := time.After(limit)
	for {
		h.mu.Lock()
		for _, d := range h.got {
			if strings.Contains(string(d.Body), want) {
				h.mu.Unlock()
				return d
			}
		}
		h.mu.Unlock()
		select {
		case <-h.seen:
		case <-deadline:
			t.Fatalf("no webhook delivery containing %q within %v", want, limit)
		}
	}
}

// TestMailtrapNodeSDK drives Mailtrap's official Node SDK, unmodified,
// against the real binary through the recipe users copy
// (examples/mailtrap-node: useTokend of tokend.js, and send.js as it is):
// a test key's transactional and batch sends, sandbox sends, the errors the
// SDK turns into MailtrapError, and the testing API reading, marking and
// deleting captured mail. It needs node and npm, and the npm registry (or a
// warm npm cache) for the install.
func TestMailtrapNodeSDK(t *testing.T) {
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		t.Fatalf("TestMailtrapNodeSDK needs node and npm on PATH (node: %v, npm: %v); scripts/test installs them (apt-get install nodejs npm)", nodeErr, npmErr)
	}

	// The example as users copy it, with the SDK pinned by its package.json
	// and package-lock.json, and run.js beside it.
	sdkDir := t.TempDir()
	example := filepath.Join(root, "examples", "mailtrap-node")
	for _, f := range []string{
		filepath.Join(example, "package.json"), filepath.Join(example, "package-lock.json"),
		filepath.Join(example, "tokend.js"), filepath.Join(example, "send.js"),
		filepath.Join("testdata", "mailtrap-sdk", "run.js"), filepath.Join("testdata", "mailtrap-sdk", "verify.js"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sdkDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	installCtx, cancelInstall := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancelInstall()
	install := exec.CommandContext(installCtx, npm, "ci", "--no-audit", "--no-fund", "--silent")
	install.Dir = sdkDir
	install.Env = append(os.Environ(), "NPM_CONFIG_UPDATE_NOTIFIER=false")
	install.WaitDelay = 5 * time.Second
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in a copy of examples/mailtrap-node (%s): %v (context: %v)\n%s", sdkDir, err, installCtx.Err(), out)
	}

	// An account, tokend serving it, and through tokend's API: a sending
	// domain, a project with a sandbox, and a test key with account admin.
	db := filepath.Join(t.TempDir(), "tokend.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	// A relay to deliver the live send to, and a webhook receiver on
	// loopback (which --webhook-allow-http lets webhooks reach).
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	hooks := startHookReceiver(t)
	s := tokend.Serve(t, nil, "--db", db, "--smtp-relay", "smtp://"+relay.Addr, "--webhook-allow-http")
	api := func(method, path, token, body string, want int, into any) {
		t.Helper()
		code, got := call(t, method, s.URL+path, token, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, got, want)
		}
		if into != nil {
			if err := json.Unmarshal([]byte(got), into); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, got)
			}
		}
	}
	accountPath := fmt.Sprintf("/api/accounts/%d", account)
	const domain = "sdk.example.com"
	var dom, project, inbox struct{ ID int64 }
	api("POST", accountPath+"/sending_domains", admin, `{"sending_domain":{"domain_name":"`+domain+`"}}`, 200, &dom)
	api("POST", accountPath+"/projects", admin, `{"project":{"name":"P"}}`, 200, &project)
	api("POST", fmt.Sprintf("%s/projects/%d/inboxes", accountPath, project.ID), admin, `{"inbox":{"name":"S"}}`, 200, &inbox)
	var testKey struct {
		Token       string
		Environment string
	}
	api("POST", "/api/api_tokens", admin, fmt.Sprintf(`{"name":"sdk test key","environment":"test","resources":[{"resource_type":"account","resource_id":%d,"access_level":100}]}`, account), 200, &testKey)
	if dom.ID == 0 || project.ID == 0 || inbox.ID == 0 || !strings.HasPrefix(testKey.Token, "tk_test_") || testKey.Environment != "test" {
		t.Fatalf("setup: domain %d, project %d, inbox %d, test key %q (%s)", dom.ID, project.ID, inbox.ID, testKey.Token, testKey.Environment)
	}
	// The live key sends from the domain: an operator trusts it (no DNS here).
	if r := tokend.Run(t, nil, "domain", "trust", strconv.FormatInt(dom.ID, 10), "--db", db); r.Code != 0 {
		t.Fatalf("tokend domain trust: %d %s", r.Code, r.Stderr)
	}

	// runNode runs a script of sdkDir, on loopback only (no proxy may take the
	// SDK's requests), and returns what it printed.
	runNode := func(script string, env ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		run := exec.CommandContext(ctx, node, script)
		run.Dir = sdkDir
		run.WaitDelay = 5 * time.Second
		for _, kv := range os.Environ() {
			name, _, _ := strings.Cut(kv, "=")
			if !strings.HasSuffix(strings.ToLower(name), "_proxy") {
				run.Env = append(run.Env, kv)
			}
		}
		run.Env = append(append(run.Env, "NO_PROXY=*", "no_proxy=*"), env...)
		var stdout, stderr bytes.Buffer
		run.Stdout, run.Stderr = &stdout, &stderr
		if err := run.Run(); err != nil {
			t.Fatalf("node %s: %v (context: %v)\nstderr:\n%s\nstdout:\n%s\ntokend:\n%s", script, err, ctx.Err(), &stderr, &stdout, s.Stderr.String())
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s printed:\n%s\nstderr:\n%s", script, &stdout, &stderr)
			}
		})
		return stdout.Bytes()
	}

	// The example, as its comment says to run it, with the test key.
	out := runNode("send.js", "TOKEND_URL="+s.URL, "MAILTRAP_TOKEN="+testKey.Token, "MAIL_FROM=hello@"+domain, "MAIL_TO=you@example.org")
	var exampleSent sdkSent
	if err := json.Unmarshal(out, &exampleSent); err != nil || !exampleSent.Success || len(exampleSent.MessageIDs) != 1 {
		t.Fatalf("node send.js printed %s (%v), want success with 1 message id", out, err)
	}

	// run.js: every call of the SDK that tokend serves.
	out = runNode("run.js",
		"TOKEND_URL="+s.URL, "TOKEND_TEST_KEY="+testKey.Token, "TOKEND_ADMIN_KEY="+admin,
		"TOKEND_ACCOUNT_ID="+strconv.FormatInt(account, 10), "TOKEND_INBOX_ID="+strconv.FormatInt(inbox.ID, 10),
		"TOKEND_DOMAIN="+domain, "TOKEND_DOMAIN_ID="+strconv.FormatInt(dom.ID, 10), "TOKEND_HOOK_URL="+hooks.URL)
	var got sdkSummary
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("run.js output: %v\n%s", err, out)
	}
	if got.SDKVersion != "4.10.0" {
		t.Errorf("SDK version %q, want the pinned 4.10.0", got.SDKVersion)
	}
	// The SDK asked for Mailtrap's own hosts, and useTokend took each
	// request to tokend (run.js refuses any HTTPS request).
	if want := []string{"https://mailtrap.io", "https://sandbox.api.mailtrap.io", "https://send.api.mailtrap.io"}; !slices.Equal(got.Asked, want) {
		t.Errorf("the SDK asked for %q, want Mailtrap's hosts %q", got.Asked, want)
	}

	// (a) The test key's send: one message id per recipient (to, cc).
	if !got.Send.Success || len(got.Send.MessageIDs) != 2 || got.Send.MessageIDs[0] == got.Send.MessageIDs[1] {
		t.Errorf("send = %+v, want success with 2 distinct message ids", got.Send)
	}
	// (b) The batch: two items, each accepted with its own id.
	if !got.Batch.Success || len(got.Batch.Responses) != 2 {
		t.Errorf("batchSend = %+v, want success with 2 responses", got.Batch)
	}
	for i, res := range got.Batch.Responses {
		if !res.Success || len(res.MessageIDs) != 1 {
			t.Errorf("batchSend responses[%d] = %+v, want success with 1 message id", i, res)
		}
	}
	// (c) The sandbox sends.
	if !got.SandboxSend.Success || len(got.SandboxSend.MessageIDs) != 1 {
		t.Errorf("sandbox send = %+v, want success with 1 message id", got.SandboxSend)
	}
	if !got.SandboxBatch.Success || len(got.SandboxBatch.Responses) != 1 || !got.SandboxBatch.Responses[0].Success {
		t.Errorf("sandbox batchSend = %+v, want one successful response", got.SandboxBatch)
	}

	// (d) Errors reach the caller as MailtrapError with tokend's message and status.
	checkErr := func(what string, e sdkError, status int, contains string) {
		t.Helper()
		if !e.Threw || !e.IsMailtrapError || e.Status != status || !strings.Contains(e.Message, contains) {
			t.Errorf("%s: %+v, want a MailtrapError with status %d and a message containing %q", what, e, status, contains)
		}
	}
	checkErr("send from a domain the account lacks", got.Errors.ForeignDomain, 403, "not-ours.example")
	checkErr("send with a wrong token", got.Errors.WrongToken, 401, "")
	checkErr("testing API with a wrong token", got.Errors.WrongTokenTesting, 401, "")
	checkErr("show a deleted message", got.Errors.ShowDeleted, 404, "Not Found")
	checkErr("HTML of a text-only message", got.Errors.MissingHTML, 409, "HTML body does not exist")
	if got.Errors.WrongToken.Message == "" || got.Errors.WrongToken.Message == "Request failed with status code 401" {
		t.Errorf("wrong token: the SDK found no message in tokend's 401 body %s", got.Errors.WrongToken.Body)
	}

	// (e) The testing API: list, show, bodies, mark read, attachments, delete.
	if len(got.List) != 2 {
		t.Errorf("messages.get listed %d messages, want the 2 sandbox sends: %+v", len(got.List), got.List)
	}
	m := got.Shown
	if m.ID != got.MessageID || m.InboxID != inbox.ID || m.Subject != "SDK sandbox" || m.FromEmail != "qa@anywhere.test" ||
		m.FromName != "QA Bot" || m.ToEmail != "mary@example.org" || m.ToName != "Mary" || m.IsRead {
		t.Errorf("showEmailMessage = %+v, want the unread sandbox send (id %d) from QA Bot <qa@anywhere.test> to Mary <mary@example.org>", m, got.MessageID)
	}
	if got.Text != "Sandbox text body." {
		t.Errorf("getTextMessage = %q, want the text sent", got.Text)
	}
	if got.HTML != "<h1>Sandbox HTML body</h1>" || got.HTMLSource != "<h1>Sandbox HTML body</h1>" {
		t.Errorf("getHtmlMessage = %q, getMessageHtmlSource = %q, want the HTML sent", got.HTML, got.HTMLSource)
	}
	for name, src := range map[string]string{"getRawMessage": got.Raw, "getMessageAsEml": got.EML} {
		// Header names are case-insensitive (tokend writes X-Sdk-Test).
		for _, want := range []string{"subject: sdk sandbox", "x-sdk-test: sandbox", "notes.txt", "mary@example.org", "sandbox text body."} {
			if !strings.Contains(strings.ToLower(src), want) {
				t.Errorf("%s lacks %q:\n%s", name, want, src)
			}
		}
	}
	if h := got.MailHeaders.Headers; h["subject"] != "SDK sandbox" || !strings.Contains(h["to"], "mary@example.org") {
		t.Errorf("getMailHeaders = %v", h)
	}
	if !got.Updated.IsRead || !got.ShownAfterUpdate.IsRead || got.Updated.ID != got.MessageID {
		t.Errorf("after updateMessage({isRead: true}): answer %+v, then shown %+v; want is_read true", got.Updated, got.ShownAfterUpdate)
	}
	if len(got.Attachments) != 1 || got.Attachments[0].Filename != "notes.txt" || got.Attachments[0].MessageID != got.MessageID || got.Attachments[0].ContentType != "text/plain" ||
		got.Attachments[0].AttachmentSize != got.AttachmentSize || got.Attachment.Filename != "notes.txt" {
		t.Errorf("attachments.getList = %+v, get = %+v; want notes.txt of %d bytes", got.Attachments, got.Attachment, got.AttachmentSize)
	}
	if got.Deleted.ID != got.MessageID || got.Deleted.Subject != "SDK sandbox" {
		t.Errorf("deleteMessage answered %+v, want the deleted message", got.Deleted)
	}
	if len(got.ListAfterDelete) != len(got.List)-1 || slices.ContainsFunc(got.ListAfterDelete, func(x sdkMessage) bool { return x.ID == got.MessageID }) {
		t.Errorf("after deleteMessage the list is %+v, want the %d others", got.ListAfterDelete, len(got.List)-1)
	}

	// (f) Sending domains: list, create, get, update (tracking stays off), setup
	// instructions, delete.
	if len(got.Domains.List.Data) != 1 || got.Domains.List.Data[0].DomainName != domain || got.Domains.Created.DomainName != "sdk2.example.com" ||
		got.Domains.Got.DomainName != "sdk2.example.com" || got.Domains.Updated.OpenTracking == nil || *got.Domains.Updated.OpenTracking {
		t.Errorf("sendingDomains: list %+v, created %+v, got %+v, updated %+v", got.Domains.List, got.Domains.Created, got.Domains.Got, got.Domains.Updated)
	}
	checkErr("turn open tracking on", got.Domains.TrackingRefused, 422, "open_tracking_enabled")
	checkErr("get a deleted domain", got.Domains.Gone, 404, "Not Found")
	// Webhooks: {"data": ...} as Mailtrap answers, the secret once.
	wh := got.Webhooks
	if wh.Created.Data.ID == 0 || wh.Created.Data.URL != hooks.URL || !wh.Created.Data.Active || len(wh.Created.Data.SigningSecret) != 64 ||
		len(wh.List.Data) != 1 || wh.Got.Data["signing_secret"] != nil || !slices.Equal(wh.Updated.Data.EventTypes, []string{"delivery", "soft_bounce", "bounce", "reject"}) ||
		wh.Deleted.Data.URL != hooks.URL+"/doomed" {
		t.Errorf("webhooks: %+v", wh)
	}
	checkErr("a webhook to ftp://", wh.Invalid, 422, "url")
	// Suppressions: the live send's blocked recipient was not relayed.
	if sp := got.Suppressions; sp.Created.Data.Email != "blocked@example.org" || sp.Created.Data.Type != "manual import" || len(sp.List) != 1 ||
		sp.List[0].ID != sp.Created.Data.ID || sp.Deleted.ID != sp.Created.Data.ID {
		t.Errorf("suppressions: %+v", sp)
	}
	if !got.LiveSend.Success || len(got.LiveSend.MessageIDs) != 2 {
		t.Fatalf("the live send = %+v", got.LiveSend)
	}
	// Email logs: the list (test-key mail captured, the live send), filters,
	// one message with its events, a page after a cursor, a bad filter.
	logs := got.Logs
	if logs.All.TotalCount < 7 || len(logs.All.Messages) != logs.All.TotalCount || logs.All.Messages[0].To != "blocked@example.org" && logs.All.Messages[0].To != "reader@example.org" {
		t.Errorf("emailLogs.getList() = %d of %d, newest %+v", len(logs.All.Messages), logs.All.TotalCount, logs.All.Messages[:min(1, len(logs.All.Messages))])
	}
	if !slices.ContainsFunc(logs.All.Messages, func(l sdkLog) bool { return l.Captured && l.Status == "captured" }) {
		t.Error("the test key's sends are not in the logs as captured")
	}
	if len(logs.Filtered.Messages) != 1 || logs.Filtered.Messages[0].MessageID != got.LiveSend.MessageIDs[0] {
		t.Errorf("filtered by recipient and domain: %+v", logs.Filtered)
	}
	if len(logs.Suppressed.Messages) != 1 || logs.Suppressed.Messages[0].To != "blocked@example.org" {
		t.Errorf("status opted_out: %+v", logs.Suppressed)
	}
	if logs.One.MessageID != got.LiveSend.MessageIDs[0] || len(logs.One.Events) == 0 || logs.One.Events[0].EventType != "accepted" {
		t.Errorf("emailLogs.get = %+v", logs.One)
	}
	if len(logs.Page.Messages) != logs.All.TotalCount-1 || logs.Page.NextPageCursor != nil {
		t.Errorf("the page after the newest: %d messages, want %d", len(logs.Page.Messages), logs.All.TotalCount-1)
	}
	checkErr("a status that does not exist", logs.BadFilter, 422, "filters[status][value]")
	// The webhook got the live send's delivery, and the SDK's own verifier
	// accepts tokend's Mailtrap-Signature (and refuses a tampered body).
	d := hooks.wait(t, got.LiveSend.MessageIDs[0], 30*time.Second)
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, d.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	var verified struct{ Valid, Tampered bool }
	out = runNode("verify.js", "HOOK_BODY_FILE="+bodyFile, "HOOK_SIGNATURE="+d.Header.Get("Mailtrap-Signature"), "HOOK_SECRET="+wh.Created.Data.SigningSecret)
	if err := json.Unmarshal(out, &verified); err != nil || !verified.Valid || verified.Tampered {
		t.Errorf("verifyWebhookSignature: %s (%v), want the delivery valid and a tampered body not", out, err)
	}

	// Through tokend's own API: the test key's mail is in the account's
	// "Test key sends" sandbox, and its log says captured, never delivered.
	var sandboxes []struct {
		ID   int64
		Name string
	}
	api("GET", accountPath+"/inboxes", admin, "", 200, &sandboxes)
	var capture int64
	for _, sb := range sandboxes {
		if sb.Name == "Test key sends" {
			capture = sb.ID
		}
	}
	if capture == 0 || capture == inbox.ID {
		t.Fatalf("no \"Test key sends\" sandbox among %+v", sandboxes)
	}
	var captured []sdkMessage
	api("GET", fmt.Sprintf("%s/inboxes/%d/messages", accountPath, capture), admin, "", 200, &captured)
	var subjects []string
	var transactional int64
	for _, c := range captured {
		subjects = append(subjects, c.Subject)
		if c.Subject == "SDK transactional" {
			transactional = c.ID
			if c.FromEmail != "x@"+domain || c.FromName != "SDK Sender" || c.ToEmail != "to@example.org" {
				t.Errorf("captured transactional send = %+v", c)
			}
		}
	}
	slices.Sort(subjects)
	if want := []string{"Hello from tokend", "SDK batch", "SDK batch override", "SDK transactional"}; !slices.Equal(subjects, want) {
		t.Errorf("\"Test key sends\" holds %q, want %q", subjects, want)
	}
	if transactional != 0 {
		code, raw := call(t, "GET", fmt.Sprintf("%s%s/inboxes/%d/messages/%d/body.raw", s.URL, accountPath, capture, transactional), admin, "")
		for _, want := range []string{"cc@example.org", "x-sdk-test: transactional", "report.csv", "plain text from the sdk.", "<b>sdk</b>"} {
			if code != 200 || !strings.Contains(strings.ToLower(raw), want) {
				t.Errorf("the captured transactional send lacks %q:\n%s", want, raw)
			}
		}
	}
	ids := append(slices.Clone(got.Send.MessageIDs), got.Batch.Responses[0].MessageIDs...)
	for i, id := range ids {
		var l struct {
			Status          string            `json:"status"`
			DeliveryStatus  string            `json:"delivery_status"`
			Category        *string           `json:"category"`
			CustomVariables map[string]string `json:"custom_variables"`
			SandboxID       *int64            `json:"sandbox_id"`
		}
		api("GET", fmt.Sprintf("%s/email_logs/%s", accountPath, id), admin, "", 200, &l)
		if l.DeliveryStatus != "captured" || l.SandboxID == nil || *l.SandboxID != capture {
			t.Errorf("email log of %s = %+v, want captured in sandbox %d", id, l, capture)
		}
		wantCategory := "sdk-test"
		if i >= len(got.Send.MessageIDs) {
			wantCategory = "sdk-batch"
		} else if l.CustomVariables["user_id"] != "45982" || l.CustomVariables["batch_id"] != "PSJ-12" {
			t.Errorf("email log of %s has custom_variables %v", id, l.CustomVariables)
		}
		if l.Category == nil || *l.Category != wantCategory {
			t.Errorf("email log of %s has category %v, want %q", id, l.Category, wantCategory)
		}
	}
	var exampleLog struct {
		DeliveryStatus string `json:"delivery_status"`
		SandboxID      *int64 `json:"sandbox_id"`
	}
	api("GET", fmt.Sprintf("%s/email_logs/%s", accountPath, exampleSent.MessageIDs[0]), admin, "", 200, &exampleLog)
	if exampleLog.DeliveryStatus != "captured" || exampleLog.SandboxID == nil || *exampleLog.SandboxID != capture {
		t.Errorf("email log of send.js's message = %+v, want captured in sandbox %d", exampleLog, capture)
	}

	// The SDK's requests reached tokend at the routes Mailtrap's hosts serve.
	s.Stop(t)
	seen := map[string]bool{}
	for _, line := range strings.Split(s.Stderr.String(), "\n") {
		var e struct {
			Msg    string
			Route  string
			Status int
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "request" {
			seen[fmt.Sprintf("%s %d", e.Route, e.Status)] = true
		}
	}
	msgs := "/api/accounts/{account_id}/inboxes/{inbox_id}/messages"
	for _, want := range []string{
		"POST /api/send 200", "POST /api/send 403", "POST /api/send 401", "POST /api/batch 200",
		"POST /api/send/{inbox_id} 200", "POST /api/batch/{inbox_id} 200",
		"GET " + msgs + " 200", "GET " + msgs + " 401", "GET " + msgs + "/{id} 200", "GET " + msgs + "/{id} 404",
		"PATCH " + msgs + "/{id} 200", "DELETE " + msgs + "/{id} 200",
		"GET " + msgs + "/{id}/body.html 200", "GET " + msgs + "/{id}/body.html 409", "GET " + msgs + "/{id}/body.htmlsource 200",
		"GET " + msgs + "/{id}/body.txt 200", "GET " + msgs + "/{id}/body.raw 200", "GET " + msgs + "/{id}/body.eml 200",
		"GET " + msgs + "/{id}/mail_headers 200", "GET " + msgs + "/{id}/attachments 200",
		"GET " + msgs + "/{id}/attachments/{attachment_id} 200",
	} {
		if !seen[want] {
			t.Errorf("tokend's access log has no %q", want)
		}
	}
	if seen["unmatched 404"] {
		t.Errorf("the SDK called a route tokend does not have; access log:\n%s", s.Stderr.String())
	}
}
