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

// A key answers again only to the token that used it: another token of the
// account that learnt the key and body (a viewer, a test key, another
// admin) gets 422, never the first send's message ids. And a send refused
// as a whole keeps no key: a token that may not send cannot hold a key
// against one that may.
func TestIdempotencyKeyIsTheTokens(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "example.com")
	body := email("a@example.com", "x@example.org")
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10)).Token
	otherAdmin := e.createToken(e.admin, "ops", perm("account", e.acme, 100)).Token
	testKey := e.createTestToken(e.admin, "ci", perm("account", e.acme, 100))

	var first sent
	e.sendWithKey("/api/send", "welcome-ann", body).want(200).decode(&first)
	for name, token := range map[string]string{"viewer": viewer, "another admin": otherAdmin, "a test key": testKey} {
		r := e.send(request{method: "POST", path: "/api/send", token: token, header: http.Header{"Idempotency-Key": {"welcome-ann"}}, body: body})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"code":"idempotency_key_reused"`) || r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("%s with the admin's key and body: %d %s, want 422 idempotency_key_reused", name, r.Status, r.Body)
		}
		for _, id := range first.MessageIDs {
			if strings.Contains(string(r.Body), id) {
				t.Errorf("%s was answered the admin's message id %s", name, id)
			}
		}
	}
	if n := e.pendingDeliveries(); n != 1 {
		t.Errorf("%d deliveries queued, want the first send's 1", n)
	}

	// The viewer's refused send keeps nothing: the admin's send with the same
	// key and body is made, and the viewer's retry is refused afresh.
	other := email("a@example.com", "y@example.org")
	e.send(request{method: "POST", path: "/api/send", token: viewer, header: http.Header{"Idempotency-Key": {"k-403"}}, body: other}).want(403)
	var made sent
	r := e.sendWithKey("/api/send", "k-403", other).want(200)
	r.decode(&made)
	if len(made.MessageIDs) != 1 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the admin's send after a viewer's refused one: %s (replayed %q)", r.Body, r.Header.Get("Idempotent-Replayed"))
	}
	e.send(request{method: "POST", path: "/api/send", token: viewer, header: http.Header{"Idempotency-Key": {"k-403"}}, body: other}).want(422)
	if n := e.pendingDeliveries(); n != 2 {
		t.Errorf("%d deliveries queued, want 2", n)
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
