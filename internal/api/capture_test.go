package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/testutil"
)

// captured lists every email captured in sandbox, newest first, page by page.
func (e *env) captured(sandbox int64) []capturedMessage {
	e.t.Helper()
	var all []capturedMessage
	for page := 1; ; page++ {
		var list []capturedMessage
		e.get(e.path("/api/sandboxes/%d/messages?page=%d", sandbox, page), e.admin).want(200).decode(&list)
		all = append(all, list...)
		if len(list) < tokend.SandboxPageSize {
			return all
		}
	}
}

func subjectsOf(list []capturedMessage) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.Subject
	}
	return out
}

// testKeySandbox is the account's "Test key sends" sandbox, where message id
// (a test key's) was captured.
func (e *env) testKeySandbox(messageID string) int64 {
	e.t.Helper()
	l := e.emailLog(e.admin, messageID)
	if l.SandboxID == nil {
		e.t.Fatalf("message %s was not captured: %+v", messageID, l)
	}
	return *l.SandboxID
}

// Past its message quota a sandbox deletes its oldest emails: test-key sends
// and sandbox sends (single and batch) alike keep the newest N, and the API
// lists exactly those; what was evicted is gone from the email logs too.
func TestSandboxKeepsTheNewestWithinItsMessageQuota(t *testing.T) {
	e := newEnv(t, withSandboxQuota(tokend.SandboxQuota{Emails: 3, Bytes: 1 << 20}))
	e.domainRecord(e.admin, "example.com")
	testKey := e.createTestToken(e.admin, "ci", perm("account", e.acme, 100))
	var ids []string
	for i := 1; i <= 5; i++ {
		body := email("app@example.com", "user@example.org")
		body["subject"] = fmt.Sprintf("m%d", i)
		var s sent
		e.post("/api/send", testKey, body).want(200).decode(&s)
		ids = append(ids, s.MessageIDs[0])
	}
	captureBox := e.testKeySandbox(ids[4])
	if got := subjectsOf(e.captured(captureBox)); !slices.Equal(got, []string{"m5", "m4", "m3"}) {
		t.Errorf("the test-key sandbox lists %v, want the newest 3: m5 m4 m3", got)
	}
	e.get("/api/email_logs/"+ids[0], e.admin).want(404)
	e.get("/api/email_logs/"+ids[2], e.admin).want(200)

	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	for i := 1; i <= 2; i++ {
		body := email("qa@anywhere.test", "user@example.org")
		body["subject"] = fmt.Sprintf("s%d", i)
		e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
	}
	batch := map[string]any{"base": map[string]any{"from": addr("qa@anywhere.test"), "text": "hi"}, "requests": []any{
		map[string]any{"to": []any{addr("a@example.org")}, "subject": "b1"},
		map[string]any{"to": []any{addr("a@example.org")}, "subject": "b2"},
		map[string]any{"to": []any{addr("bad@")}, "subject": "refused, so it takes no room"},
	}}
	e.post(e.path("/api/batch/%d", sb), e.admin, batch).want(200)
	if got := subjectsOf(e.captured(sb)); !slices.Equal(got, []string{"b2", "b1", "s2"}) {
		t.Errorf("sandbox %d lists %v, want b2 b1 s2", sb, got)
	}
	// The other sandbox kept its own.
	if got := subjectsOf(e.captured(captureBox)); !slices.Equal(got, []string{"m5", "m4", "m3"}) {
		t.Errorf("a send to another sandbox changed the test-key sandbox: %v", got)
	}
}

// The free plan keeps 100 emails per sandbox unless told otherwise.
func TestFreePlanSandboxKeeps100(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanFree, 0))
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	requests := make([]any, 60)
	for i := range requests {
		requests[i] = map[string]any{"to": []any{addr("a@example.org")}, "subject": fmt.Sprintf("n%d", i)}
	}
	batch := map[string]any{"base": map[string]any{"from": addr("qa@anywhere.test"), "text": "hi"}, "requests": requests}
	e.post(e.path("/api/batch/%d", sb), e.admin, batch).want(200)
	e.post(e.path("/api/batch/%d", sb), e.admin, batch).want(200)
	got := e.captured(sb)
	if len(got) != 100 || got[0].Subject != "n59" || got[99].Subject != "n20" {
		t.Fatalf("after 120 captures the sandbox holds %d, from %q to %q; want the newest 100 (n59 of the second batch to n20 of the first)",
			len(got), got[0].Subject, got[len(got)-1].Subject)
	}
	requests = append(requests, requests...)
	var body sendErrors
	e.post(e.path("/api/batch/%d", sb), e.admin, map[string]any{"base": batch["base"], "requests": requests[:101]}).want(413).decode(&body)
	if len(body.Errors) != 1 || !strings.Contains(body.Errors[0], "at most 100") || !strings.Contains(body.Errors[0], "free plan") {
		t.Errorf("a batch of 101 into a free sandbox answered %+v", body)
	}
}

// Past its byte quota a sandbox deletes its oldest emails too, and holds no
// more bytes than its quota.
func TestSandboxKeepsTheNewestWithinItsByteQuota(t *testing.T) {
	var quota atomic.Int64
	quota.Store(1 << 30)
	e := newEnv(t, func(c *envConfig) {
		c.opts.SandboxQuota = func(tokend.Plan) tokend.SandboxQuota { return tokend.SandboxQuota{Emails: 100, Bytes: quota.Load()} }
	})
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	send := func(subject string) {
		body := email("qa@anywhere.test", "user@example.org")
		body["subject"], body["text"] = subject, strings.Repeat("x", 2000)
		e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
	}
	send("m1")
	size := int64(e.captured(sb)[0].EmailSize)
	quota.Store(3*size + size/2) // room for three
	for i := 2; i <= 5; i++ {
		send(fmt.Sprintf("m%d", i))
	}
	got := e.captured(sb)
	if !slices.Equal(subjectsOf(got), []string{"m5", "m4", "m3"}) {
		t.Errorf("sandbox lists %v, want the newest 3: m5 m4 m3", subjectsOf(got))
	}
	var total int64
	for _, m := range got {
		total += int64(m.EmailSize)
	}
	if total > quota.Load() {
		t.Errorf("sandbox holds %d bytes, over its quota of %d", total, quota.Load())
	}
}

// A request larger than the whole quota is refused with 413 in the route's
// shape, and neither stores anything nor evicts anything.
func TestRequestLargerThanTheQuotaIsRefused(t *testing.T) {
	e := newEnv(t, withSandboxQuota(tokend.SandboxQuota{Emails: 2, Bytes: 20_000}))
	e.domainRecord(e.admin, "example.com")
	testKey := e.createTestToken(e.admin, "ci", perm("account", e.acme, 100))
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	for _, s := range []string{"kept1", "kept2"} {
		body := email("qa@anywhere.test", "user@example.org")
		body["subject"] = s
		e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
	}
	var first sent
	e.post("/api/send", testKey, email("app@example.com", "user@example.org")).want(200).decode(&first)
	captureBox := e.testKeySandbox(first.MessageIDs[0])

	big := email("app@example.com", "user@example.org")
	big["text"] = strings.Repeat("x", 30_000)
	three := map[string]any{"base": map[string]any{"from": addr("app@example.com"), "subject": "s", "text": "hi"}, "requests": []any{
		map[string]any{"to": []any{addr("a@example.org")}}, map[string]any{"to": []any{addr("b@example.org")}}, map[string]any{"to": []any{addr("c@example.org")}},
	}}
	for _, tt := range []struct {
		name, path, token string
		body              map[string]any
		want              string
	}{
		{"sandbox send over the byte quota", e.path("/api/send/%d", sb), e.admin, big, "keeps at most 20000 bytes"},
		{"sandbox batch over the message quota", e.path("/api/batch/%d", sb), e.admin, three, "keeps at most 2 (the enterprise plan's quota)"},
		{"test-key send over the byte quota", "/api/send", testKey, big, "keeps at most 20000 bytes"},
		{"test-key batch over the message quota", "/api/batch", testKey, three, "would capture 3 emails"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var body sendErrors
			e.post(tt.path, tt.token, tt.body).want(413).decode(&body)
			if body.Success || len(body.Errors) != 1 || !strings.Contains(body.Errors[0], tt.want) {
				t.Errorf("413 body %+v, want an error saying %q", body, tt.want)
			}
		})
	}
	// MailSage's route says it in its own shape.
	res := e.post("/api/v1/emails/send", testKey, map[string]any{"recipient": addr("u@example.org"), "subject": "s",
		"body": strings.Repeat("x", 30_000), "from": "app@example.com"}).want(413).object()
	if res["code"] != "payload_too_large" || !strings.Contains(res["error"].(string), "keeps at most 20000 bytes") {
		t.Errorf("MailSage 413 = %v", res)
	}
	if got := subjectsOf(e.captured(sb)); !slices.Equal(got, []string{"kept2", "kept1"}) {
		t.Errorf("after refused requests the sandbox lists %v, want what it had", got)
	}
	if got := e.captured(captureBox); len(got) != 1 {
		t.Errorf("after refused requests the test-key sandbox holds %d emails, want the 1 it had", len(got))
	}
}

// Captured mail older than the retention is pruned (by the purge job in a
// server); newer mail stays.
func TestCaptureRetentionPrunesOldMail(t *testing.T) {
	e := newEnv(t, withCaptureRetention(24*time.Hour))
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	capture := func(subject string) string {
		body := email("qa@anywhere.test", "user@example.org")
		body["subject"] = subject
		var s sent
		e.post(e.path("/api/send/%d", sb), e.admin, body).want(200).decode(&s)
		return s.MessageIDs[0]
	}
	old := capture("old")
	e.clock.Advance(12 * time.Hour)
	recent := capture("recent")
	prune := func() int64 {
		n, err := e.mailer.PruneCaptured(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := prune(); n != 0 {
		t.Errorf("pruned %d emails within the retention", n)
	}
	e.clock.Advance(12*time.Hour + time.Second)
	if n := prune(); n != 1 {
		t.Errorf("pruned %d emails, want the 1 past the retention", n)
	}
	if got := subjectsOf(e.captured(sb)); !slices.Equal(got, []string{"recent"}) {
		t.Errorf("after pruning the sandbox lists %v, want only the recent email", got)
	}
	e.get("/api/email_logs/"+old, e.admin).want(404)
	e.get("/api/email_logs/"+recent, e.admin).want(200)
}

// heldSend is a send whose body is held open after its first bytes, so that
// once admitted it stays in flight until released.
type heldSend struct {
	body   *io.PipeWriter
	rest   string
	answer chan *http.Response
}

// holdSend starts a POST of body to path as token, and holds it after its
// first bytes.
func (e *env) holdSend(path, token string, body string) *heldSend {
	e.t.Helper()
	r, w := io.Pipe()
	h := &heldSend{body: w, rest: body[1:], answer: make(chan *http.Response, 1)}
	req, err := http.NewRequest("POST", e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Api-Token", token)
	req.Header.Set("Content-Type", "application/json")
	go func() {
		res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			e.t.Errorf("held send: %v", err)
			res = &http.Response{StatusCode: 0, Body: http.NoBody}
		}
		h.answer <- res
	}()
	go w.Write([]byte(body[:1]))
	e.t.Cleanup(func() { w.Close() })
	return h
}

// release sends the rest of the body.
func (h *heldSend) release() {
	go func() {
		h.body.Write([]byte(h.rest))
		h.body.Close()
	}()
}

// anyAnswer waits for the first of sends to be answered, and returns its
// index, response and body.
func anyAnswer(t *testing.T, sends []*heldSend) (int, *http.Response, []byte) {
	t.Helper()
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(time.After(20 * time.Second))}}
	for _, s := range sends {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.answer)})
	}
	i, v, _ := reflect.Select(cases)
	if i == 0 {
		t.Fatal("no send was answered")
	}
	res := v.Interface().(*http.Response)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return i - 1, res, b
}

// Sends in flight are bounded per account and in all: the send beyond the
// account's bound gets 429, the one beyond the server's 503, both with
// Retry-After in the sending routes' shapes, while the sends admitted (as
// many as the bounds allow, and no more) run to completion.
func TestConcurrentSendsBeyondTheBoundAreRefused(t *testing.T) {
	e := newEnv(t, withSendLimits(api.SendLimits{PerAccount: 2, Total: 3, Wait: 50 * time.Millisecond}))
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")
	var op struct{ ID int64 }
	e.post(e.path("/api/accounts/%d/projects", e.other), e.otherAdmin, map[string]any{"project": map[string]any{"name": "P"}}).want(200).decode(&op)
	var osb struct{ ID int64 }
	e.post(e.path("/api/accounts/%d/projects/%d/inboxes", e.other, op.ID), e.otherAdmin, map[string]any{"inbox": map[string]any{"name": "S"}}).want(200).decode(&osb)
	body := `{"from": {"email": "qa@anywhere.test"}, "to": [{"email": "u@example.org"}], "subject": "Held", "text": "hi"}`

	// Three sends of one account: two are admitted and held, the third is refused.
	acme := []*heldSend{
		e.holdSend(e.path("/api/send/%d", sb), e.admin, body),
		e.holdSend(e.path("/api/send/%d", sb), e.admin, body),
		e.holdSend(e.path("/api/send/%d", sb), e.admin, body),
	}
	i, res, raw := anyAnswer(t, acme)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(raw), `"success":false`) ||
		!strings.Contains(string(raw), "2 sends in flight") {
		t.Fatalf("the third send of an account answered %d %s (Retry-After %q), want 429 with Retry-After", res.StatusCode, raw, res.Header.Get("Retry-After"))
	}
	admitted := slices.Delete(slices.Clone(acme), i, i+1)
	// MailSage's route is bounded with the others, and answers in its shape.
	ms := e.post("/api/v1/emails/send", e.admin, map[string]any{"recipient": addr("u@example.org"), "subject": "s", "body": "b"}).want(429)
	if m := ms.object(); m["code"] != "too_many_sends" || ms.Header.Get("Retry-After") == "" {
		t.Errorf("MailSage send beyond the account's bound answered %s", ms.Body)
	}

	// Two sends of another account: the server has room for one more only.
	other := []*heldSend{
		e.holdSend(e.path("/api/send/%d", osb.ID), e.otherAdmin, body),
		e.holdSend(e.path("/api/send/%d", osb.ID), e.otherAdmin, body),
	}
	i, res, raw = anyAnswer(t, other)
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(raw), "busy with other sends") {
		t.Fatalf("a send beyond the server's bound answered %d %s (Retry-After %q), want 503 with Retry-After", res.StatusCode, raw, res.Header.Get("Retry-After"))
	}
	admitted = append(admitted, other[1-i])

	// The three admitted complete once their bodies arrive.
	for _, h := range admitted {
		h.release()
	}
	for _, h := range admitted {
		select {
		case res := <-h.answer:
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("an admitted send answered %d %s", res.StatusCode, b)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("an admitted send was not answered")
		}
	}
	if got := len(e.captured(sb)); got != 2 {
		t.Errorf("the sandbox captured %d emails, want the 2 admitted", got)
	}
	// Room again for everyone.
	e.post(e.path("/api/send/%d", sb), e.admin, email("qa@anywhere.test", "u@example.org")).want(200)
}

// Concurrent sends to one sandbox through two instances on one database
// never take it past its quota, not even for a moment: each send makes room
// in the transaction that stores it, under the account's lock.
func TestSandboxQuotaHoldsUnderConcurrentSendsOnTwoInstances(t *testing.T) {
	const quota = 5
	dbs, dump := testutil.Stores(t, 2)
	limits := api.SendLimits{PerAccount: 16, Total: 16}
	e := newEnv(t, withDB(dbs[0], dump), withSandboxQuota(tokend.SandboxQuota{Emails: quota, Bytes: 1 << 20}), withSendLimits(limits))
	second := e.instance(dbs[1])
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Staging")

	stop := make(chan struct{})
	var peak atomic.Int64
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/sandboxes/%d/messages", e.srv.URL, sb), nil)
			req.Header.Set("Api-Token", e.admin)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			var list []capturedMessage
			err = json.NewDecoder(res.Body).Decode(&list)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 {
				t.Errorf("listing the sandbox: %d %v", res.StatusCode, err)
				return
			}
			if n := int64(len(list)); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for _, base := range []string{e.srv.URL, second} {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 5 {
					body := fmt.Sprintf(`{"from": {"email": "qa@anywhere.test"}, "to": [{"email": "u@example.org"}], "subject": "w%d-%d", "text": "hi"}`, w, i)
					req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/send/%d", base, sb), strings.NewReader(body))
					req.Header.Set("Api-Token", e.admin)
					req.Header.Set("Content-Type", "application/json")
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						t.Errorf("a concurrent send answered %d %s", res.StatusCode, b)
						continue
					}
					sent.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	watcher.Wait()
	if sent.Load() != 40 {
		t.Fatalf("%d of 40 sends succeeded", sent.Load())
	}
	if got := len(e.captured(sb)); got != quota {
		t.Errorf("after 40 sends the sandbox holds %d emails, want its quota of %d", got, quota)
	}
	if peak.Load() > quota {
		t.Errorf("the sandbox was seen holding %d emails, over its quota of %d", peak.Load(), quota)
	}
	if err := e.store.Read(context.Background(), func(tx tokend.Tx) error {
		u, err := tx.SandboxUsage(context.Background(), sb)
		if u.Emails != quota {
			t.Errorf("the sandbox's usage counts %d emails, want %d", u.Emails, quota)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// instance starts a second server, as another tokend instance would be, over
// db (the same database as e's), and returns its URL.
func (e *env) instance(db tokend.Store) string {
	e.t.Helper()
	opts := e.cfg.opts
	opts.Store, opts.WrapStore, opts.Logger, opts.AlertResult = db, nil, nil, nil
	opts.Relay = testutil.Undelivered{} // live mail is queued; this instance delivers none
	cfg := e.cfg.app
	cfg.AlertWebhook = ""
	instance := testutil.App(e.t, func(c *app.Config) { *c = cfg }, opts)
	srv := httptest.NewServer(instance.Handler)
	e.t.Cleanup(srv.Close)
	return srv.URL
}
