package api_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// recipients returns n addresses at example.org, starting at from.
func recipients(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@example.org", from+i)
	}
	return out
}

// assertMessageHeaders checks the message allowance's headers.
func assertMessageHeaders(t *testing.T, r *response, limit, remaining int) {
	t.Helper()
	if got := r.Header.Get("X-RateLimit-Messages-Limit"); got != strconv.Itoa(limit) {
		t.Errorf("X-RateLimit-Messages-Limit = %q, want %d", got, limit)
	}
	if got := r.Header.Get("X-RateLimit-Messages-Remaining"); got != strconv.Itoa(remaining) {
		t.Errorf("X-RateLimit-Messages-Remaining = %q, want %d", got, remaining)
	}
	if n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Messages-Reset")); err != nil || n < 0 || n > 60 {
		t.Errorf("X-RateLimit-Messages-Reset = %q, want whole seconds within a minute", r.Header.Get("X-RateLimit-Messages-Reset"))
	}
}

// assertMessagesLimited checks a Mailtrap-shaped 429 for a spent message
// allowance: its own message, Retry-After, both kinds of rate-limit headers.
func assertMessagesLimited(t *testing.T, r *response, limit, remaining int) {
	t.Helper()
	r.want(429)
	var body sendErrors
	r.decode(&body)
	if body.Success || len(body.Errors) != 1 || !strings.HasPrefix(body.Errors[0], "Message allowance exceeded") ||
		!strings.Contains(body.Errors[0], fmt.Sprintf("%d of the %d messages a minute this account's", remaining, limit)) {
		t.Errorf("429 body = %s", r.Body)
	}
	assertRetryAfter(t, r)
	assertMessageHeaders(t, r, limit, remaining)
	if r.Header.Get("X-RateLimit-Limit") == "" || r.Header.Get("X-RateLimit-Remaining") == "" {
		t.Errorf("the request limit's headers are missing beside the allowance's: %v", r.Header)
	}
}

func (e *env) pendingDeliveries() int {
	e.t.Helper()
	n, err := e.svc.Outbox().Pending(context.Background(), tokend.EmailJob)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(n)
}

// A free account sends its 1,000 messages a minute, however they are split
// into requests; the next recipient is 429 with the allowance's own answer,
// and nothing of it is queued, while other requests still pass.
func TestFreeAccountMessageAllowance(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanFree, 0))
	e.domainRecord(e.admin, "example.com")
	limit := tokend.PlanFree.DefaultMessageLimit()
	if limit != 1000 {
		t.Fatalf("the free plan's allowance is %d; this test sends 1,000", limit)
	}
	for i := range 4 {
		body := email("news@example.com", recipients(i*250, 200)...)
		body["cc"] = []any{addr(fmt.Sprintf("cc%d@example.org", i))}
		body["bcc"] = []any{}
		for _, a := range recipients(100_000+i*49, 49) {
			body["bcc"] = append(body["bcc"].([]any), addr(a))
		}
		r := e.post("/api/send", e.admin, body).want(200)
		assertMessageHeaders(t, r, limit, limit-(i+1)*250)
	}
	if n := e.pendingDeliveries(); n != 1000 {
		t.Fatalf("%d deliveries queued, want 1000", n)
	}
	// One more recipient is over the allowance: to, cc and bcc all count.
	assertMessagesLimited(t, e.post("/api/send", e.admin, email("news@example.com", "late@example.org")), limit, 0)
	more := email("news@example.com")
	more["bcc"] = []any{addr("hidden@example.org")}
	assertMessagesLimited(t, e.post("/api/send", e.admin, more), limit, 0)
	if n := e.pendingDeliveries(); n != 1000 {
		t.Errorf("%d deliveries queued after the refusals, want still 1000", n)
	}
	// Requests that send nothing are not held up, and carry no allowance headers.
	r := e.get("/api/accounts", e.admin).want(200)
	if r.Header.Get("X-RateLimit-Messages-Limit") != "" {
		t.Errorf("a request that sends nothing reports the message allowance: %v", r.Header)
	}
	e.get("/api/whoami", e.admin).want(200)
	// The other account has its own allowance.
	var od domainJSON
	e.post(e.path("/api/accounts/%d/sending_domains", e.other), e.otherAdmin,
		map[string]any{"sending_domain": map[string]any{"domain_name": "other.example"}}).want(200).decode(&od)
	e.publish(od)
	if _, err := e.domains.VerifyAsOperator(context.Background(), od.ID, "test"); err != nil {
		t.Fatal(err)
	}
	assertMessageHeaders(t, e.post("/api/send", e.otherAdmin, email("a@other.example", "u@example.org")).want(200), limit, limit-1)
	// One message comes back every 60 ms (1,000 a minute).
	e.clock.Advance(59 * time.Millisecond)
	assertMessagesLimited(t, e.post("/api/send", e.admin, email("news@example.com", "late@example.org")), limit, 0)
	e.clock.Advance(time.Millisecond)
	assertMessageHeaders(t, e.post("/api/send", e.admin, email("news@example.com", "late@example.org")).want(200), limit, 0)
	// MailSage's route spends the same allowance and answers in its own shape.
	var fail struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	res := e.send(request{method: "POST", path: "/api/v1/emails/send", token: e.admin,
		body: map[string]any{"recipient": addr("u@example.org"), "subject": "s", "body": "b", "from": "news@example.com"}}).want(429)
	res.decode(&fail)
	if fail.Status != 429 || fail.Code != "messages_limited" || !strings.HasPrefix(fail.Error, "Message allowance exceeded") {
		t.Errorf("MailSage 429 = %s", res.Body)
	}
	assertRetryAfter(t, res)
	assertMessageHeaders(t, res, limit, 0)
	// The refusals count as rate-limited in the token's usage and in the metric.
	e.clock.Advance(time.Minute)
	var u struct {
		Days []struct {
			RateLimited int `json:"rate_limited"`
		} `json:"days"`
	}
	e.get(e.path("/api/api_tokens/%d/usage", e.adminID), e.admin).want(200).decode(&u)
	if len(u.Days) != 1 || u.Days[0].RateLimited != 4 {
		t.Errorf("usage = %+v, want 4 rate-limited sends", u.Days)
	}
	if m := string(e.get("/metrics", "").Body); !strings.Contains(m, `tokend_rate_limited_total{scope="messages"} 4`) {
		t.Errorf("metrics do not count 4 refusals for the message allowance")
	}
}

// A batch spends all its accepted recipients at once: when they do not fit,
// the whole batch is 429 and nothing of it is written; the recipients of
// items the rules refuse are given back.
func TestBatchSpendsItsAcceptedRecipients(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 1000), withMessageLimit(10))
	e.domainRecord(e.admin, "example.com")
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Inbox")
	batch := func(items ...map[string]any) map[string]any {
		list := make([]any, len(items))
		for i, it := range items {
			list[i] = it
		}
		return map[string]any{"requests": list}
	}
	// 5 of 10 spent, then a batch of 2 × 4 does not fit in the 5 left.
	assertMessageHeaders(t, e.post("/api/send", e.admin, email("a@example.com", recipients(0, 5)...)).want(200), 10, 5)
	assertMessagesLimited(t, e.post("/api/batch", e.admin,
		batch(email("a@example.com", recipients(10, 4)...), email("a@example.com", recipients(20, 4)...))), 10, 5)
	assertMessagesLimited(t, e.post(e.path("/api/batch/%d", sb), e.admin,
		batch(email("a@example.com", recipients(10, 4)...), email("a@example.com", recipients(20, 4)...))), 10, 5)
	if n := e.pendingDeliveries(); n != 5 {
		t.Errorf("%d deliveries queued, want the first send's 5", n)
	}
	var msgs []capturedMessage
	e.get(e.path("/api/accounts/%d/inboxes/%d/messages", e.acme, sb), e.admin).want(200).decode(&msgs)
	if len(msgs) != 0 {
		t.Errorf("the refused sandbox batch captured %d emails", len(msgs))
	}
	// Exactly what is left fits.
	assertMessageHeaders(t, e.post("/api/batch", e.admin,
		batch(email("a@example.com", recipients(30, 2)...), email("a@example.com", recipients(40, 3)...))).want(200), 10, 0)

	// Rested: a batch whose second item the rules refuse (a domain the
	// account does not have) and whose third does not validate spends only
	// the first item's 3 recipients.
	e.clock.Advance(time.Minute)
	var out struct {
		Responses []struct {
			Success bool `json:"success"`
		} `json:"responses"`
	}
	r := e.post("/api/batch", e.admin, batch(email("a@example.com", recipients(50, 3)...),
		email("a@nowhere.example", recipients(60, 3)...), email("", recipients(70, 3)...))).want(200)
	r.decode(&out)
	if len(out.Responses) != 3 || !out.Responses[0].Success || out.Responses[1].Success || out.Responses[2].Success {
		t.Fatalf("batch answers %s", r.Body)
	}
	assertMessageHeaders(t, r, 10, 7)
	assertMessageHeaders(t, e.post("/api/send", e.admin, email("a@example.com", recipients(80, 7)...)).want(200), 10, 0)

	// A sandbox that cannot be written to gives everything back.
	e.clock.Advance(time.Minute)
	viewer := e.createToken(e.admin, "viewer", perm("sandbox", sb, 10))
	e.post(e.path("/api/send/%d", sb), viewer.Token, email("a@example.com", recipients(90, 4)...)).want(403)
	assertMessageHeaders(t, e.post(e.path("/api/send/%d", sb), e.admin, email("a@example.com", recipients(90, 10)...)).want(200), 10, 0)
}

// A request with more recipients than the whole allowance could never pass:
// it is refused as invalid (400, no Retry-After), and spends nothing.
func TestMoreRecipientsThanTheWholeAllowanceIs400(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 1000), withMessageLimit(10))
	e.domainRecord(e.admin, "example.com")
	for _, tt := range []struct {
		path string
		body map[string]any
	}{
		{"/api/send", email("a@example.com", recipients(0, 11)...)},
		{"/api/batch", map[string]any{"requests": []any{email("a@example.com", recipients(0, 6)...), email("a@example.com", recipients(6, 6)...)}}},
	} {
		r := e.post(tt.path, e.admin, tt.body).want(400)
		var body sendErrors
		r.decode(&body)
		if len(body.Errors) != 1 || !strings.Contains(body.Errors[0], "more than the 10 messages a minute this account's live keys may send") {
			t.Errorf("%s: %s", tt.path, r.Body)
		}
		if r.Header.Get("Retry-After") != "" {
			t.Errorf("%s: Retry-After on a request that can never pass", tt.path)
		}
	}
	assertMessageHeaders(t, e.post("/api/send", e.admin, email("a@example.com", recipients(0, 10)...)).want(200), 10, 0)
}

// Test keys and sandbox sends write to the database, so they count too: a
// sandbox send spends the live allowance, and test keys have their own,
// --test-rate-multiplier times larger, as they do for requests.
func TestTestKeysAndSandboxSendsSpendTheAllowance(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 1000), withMessageLimit(10))
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "QA"), "Inbox")
	assertMessageHeaders(t, e.post(e.path("/api/send/%d", sb), e.admin, email("qa@anywhere.example", recipients(0, 10)...)).want(200), 10, 0)
	assertMessagesLimited(t, e.post(e.path("/api/send/%d", sb), e.admin, email("qa@anywhere.example", "one@example.org")), 10, 0)

	e.domainRecord(e.admin, "example.com")
	testKey := e.createTestToken(e.admin, "staging", perm("account", e.acme, 100))
	for i := range 5 {
		assertMessageHeaders(t, e.post("/api/send", testKey, email("a@example.com", recipients(i*10, 10)...)).want(200), 50, 40-i*10)
	}
	assertMessagesLimited(t, e.post("/api/send", testKey, email("a@example.com", "one@example.org")), 50, 0)
	assertMessagesLimited(t, e.post(e.path("/api/send/%d", sb), testKey, email("a@example.com", "one@example.org")), 50, 0)
	// 60 test-key recipients could never pass.
	e.post("/api/send", testKey, map[string]any{"from": addr("a@example.com"), "to": []any{}, "bcc": func() []any {
		var l []any
		for _, a := range recipients(0, 51) {
			l = append(l, addr(a))
		}
		return l
	}(), "subject": "s", "text": "t"}).want(400)
}

// An operator's change of the allowance applies to the next send.
func TestMessageLimitChangeAppliesAtOnce(t *testing.T) {
	e := newEnv(t, withPlan(tokend.PlanEnterprise, 1000), withMessageLimit(10))
	e.domainRecord(e.admin, "example.com")
	assertMessageHeaders(t, e.post("/api/send", e.admin, email("a@example.com", "u@example.org")).want(200), 10, 9)
	if _, err := e.svc.SetPlan(t.Context(), e.acme, tokend.PlanEnterprise, 1000, 3, "ops"); err != nil {
		t.Fatal(err)
	}
	r := e.post("/api/send", e.admin, email("a@example.com", recipients(0, 4)...)).want(400)
	if !strings.Contains(string(r.Body), "more than the 3 messages a minute") {
		t.Errorf("after lowering the allowance to 3: %s", r.Body)
	}
	// Without a message limit, staying enterprise keeps the allowance.
	a, err := e.svc.SetPlan(t.Context(), e.acme, tokend.PlanEnterprise, 2000, 0, "ops")
	if err != nil || a.MessageLimit != 3 {
		t.Fatalf("enterprise to enterprise without a message limit: %+v %v", a, err)
	}
	// Custom allowances are for enterprise only.
	if _, err := e.svc.SetPlan(t.Context(), e.acme, tokend.PlanPro, 0, 5, "ops"); tokend.ErrorCode(err) != tokend.EINVALID {
		t.Errorf("a custom allowance on pro: %v", err)
	}
	a, err = e.svc.SetPlan(t.Context(), e.acme, tokend.PlanPro, 0, 0, "ops")
	if err != nil || a.MessageLimit != tokend.PlanPro.DefaultMessageLimit() {
		t.Fatalf("back to pro: %+v %v", a, err)
	}
	r = e.post("/api/send", e.admin, email("a@example.com", recipients(0, 4)...)).want(200)
	if got := r.Header.Get("X-RateLimit-Messages-Limit"); got != strconv.Itoa(tokend.PlanPro.DefaultMessageLimit()) {
		t.Errorf("allowance on pro = %s", got)
	}
}
