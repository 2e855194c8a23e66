package api_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func (e *env) sendWithKey(path, key string, body any) *response {
	e.t.Helper()
	return e.send(request{method: "POST", path: path, token: e.admin, header: http.Header{"Idempotency-Key": {key}}, body: body})
}

// A send retried with its Idempotency-Key gets the first answer, with the
// same message ids, and nothing more is queued; the same key with another
// body is 422; another account's key is its own; the key holds for a day.
func TestIdempotentSendsAnswerOnceAndSendOnce(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	body := email("a@example.com", "x@example.org", "y@example.org")

	var first, again sent
	r := e.sendWithKey("/api/send", "order-1234", body).want(200)
	r.decode(&first)
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Error("the first send says it was replayed")
	}
	queued := e.pendingDeliveries()
	r = e.sendWithKey("/api/send", "order-1234", body).want(200)
	r.decode(&again)
	if !slices.Equal(again.MessageIDs, first.MessageIDs) || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the retry answered %v (replayed %q), want the first answer %v", again.MessageIDs, r.Header.Get("Idempotent-Replayed"), first.MessageIDs)
	}
	if n := e.pendingDeliveries(); n != queued || queued != 2 {
		t.Errorf("deliveries queued after the retry: %d, want the first send's 2", n)
	}

	changed := email("a@example.com", "x@example.org")
	r = e.sendWithKey("/api/send", "order-1234", changed).want(422)
	if !strings.Contains(string(r.Body), `"code":"idempotency_key_reused"`) || !strings.Contains(string(r.Body), "Idempotency-Key") {
		t.Errorf("the key with another body: %s", r.Body)
	}
	// The same key on another route is another request.
	e.sendWithKey("/api/batch", "order-1234", map[string]any{"requests": []any{body}}).want(422)
	r = e.send(request{method: "POST", path: "/api/v1/emails/send", token: e.admin, header: http.Header{"Idempotency-Key": {"order-1234"}},
		body: map[string]any{"recipient": addr("x@example.org"), "subject": "Hi", "body": "Hello", "from": "a@example.com"}}).want(422)
	if !strings.Contains(string(r.Body), `"code":"idempotency_key_reused"`) {
		t.Errorf("MailSage's route with a reused key: %s", r.Body)
	}
	for _, bad := range []string{"", strings.Repeat("k", 256), "tab\there"} {
		e.sendWithKey("/api/send", bad, body).want(400)
	}

	// Another account's same key is another key.
	var project, sandbox struct{ ID int64 }
	e.post(e.path("/api/accounts/%d/projects", e.other), e.otherAdmin, map[string]any{"project": map[string]any{"name": "P"}}).want(200).decode(&project)
	e.post(e.path("/api/accounts/%d/projects/%d/inboxes", e.other, project.ID), e.otherAdmin, map[string]any{"inbox": map[string]any{"name": "S"}}).want(200).decode(&sandbox)
	e.send(request{method: "POST", path: e.path("/api/send/%d", sandbox.ID), token: e.otherAdmin,
		header: http.Header{"Idempotency-Key": {"order-1234"}}, body: body}).want(200)
	var fresh sent
	e.sendWithKey("/api/send", "order-5678", body).want(200).decode(&fresh)
	if slices.Equal(fresh.MessageIDs, first.MessageIDs) {
		t.Error("a new key answered with the old key's ids")
	}

	// A day later the key is free again.
	e.clock.Advance(25 * time.Hour)
	var later sent
	e.sendWithKey("/api/send", "order-1234", changed).want(200).decode(&later)
	if len(later.MessageIDs) != 1 || later.MessageIDs[0] == first.MessageIDs[0] {
		t.Errorf("after 25 h the key sent %v", later.MessageIDs)
	}
}

// A batch replays item by item, refused items included.
func TestIdempotentBatchReplaysEveryItem(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	batch := map[string]any{"requests": []any{email("a@example.com", "x@example.org"), email("a@example.com", "not an address")}}
	first := e.sendWithKey("/api/batch", "b-1", batch).want(200)
	again := e.sendWithKey("/api/batch", "b-1", batch).want(200)
	if string(first.Body) != string(again.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the batch's retry answered\n%s\nwant the first answer\n%s", again.Body, first.Body)
	}
	if n := e.pendingDeliveries(); n != 1 {
		t.Errorf("%d deliveries queued, want 1", n)
	}
}

// Retries racing each other store once and all get the one answer.
func TestConcurrentRetriesSendOnce(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	body := email("a@example.com", "x@example.org")
	const n = 8
	ids := make([][]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s sent
			e.sendWithKey("/api/send", "race", body).want(200).decode(&s)
			ids[i] = s.MessageIDs
		}()
	}
	wg.Wait()
	for i := range ids {
		if !slices.Equal(ids[i], ids[0]) {
			t.Fatalf("retries answered %v and %v", ids[0], ids[i])
		}
	}
	if got := e.pendingDeliveries(); got != 1 {
		t.Errorf("%d deliveries queued by %d racing retries, want 1", got, n)
	}
}
