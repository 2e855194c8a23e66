package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// sandboxWith creates a sandbox holding n captured emails, the newest last,
// and returns its id and the captured messages' ids, oldest first.
func (e *env) sandboxWith(n int) (int64, []int64) {
	e.t.Helper()
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "Captures"), "Inbox")
	for i := range n {
		body := email("qa@anywhere.test", fmt.Sprintf("user%d@example.org", i))
		body["subject"] = fmt.Sprintf("Message %d", i)
		e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
	}
	var list []capturedMessage
	e.get(e.path("/api/sandboxes/%d/messages?page=1", sb), e.admin).want(200).decode(&list)
	var ids []int64
	for i := len(list) - 1; i >= 0; i-- {
		ids = append(ids, list[i].ID)
	}
	return sb, ids
}

func TestSandboxMessagesPageAndSearch(t *testing.T) {
	e := newEnv(t)
	sb, ids := e.sandboxWith(35)
	if len(ids) != 30 {
		t.Fatalf("the first page holds %d messages, want 30", len(ids))
	}
	subjects := func(path string) []string {
		var list []capturedMessage
		e.get(path, e.admin).want(200).decode(&list)
		var out []string
		for _, m := range list {
			out = append(out, m.Subject)
		}
		return out
	}
	base := e.path("/api/accounts/%d/inboxes/%d/messages", e.acme, sb)
	if got := subjects(base + "?page=2"); len(got) != 5 || got[0] != "Message 4" || got[4] != "Message 0" {
		t.Errorf("page 2 = %v", got)
	}
	// Page 1 is messages 34 down to 5, so ids[2] is message 7.
	if got := subjects(fmt.Sprintf("%s?last_id=%d", base, ids[2])); len(got) != 7 || got[0] != "Message 6" || got[6] != "Message 0" {
		t.Errorf("before message 7 = %v", got)
	}
	if got := subjects(base + "?search=USER12%40"); len(got) != 1 || got[0] != "Message 12" {
		t.Errorf("search = %v", got)
	}
	for _, q := range []string{"page=0", "page=x", "last_id=-1"} {
		e.get(base+"?"+q, e.admin).want(422)
	}
}

func TestSandboxMessageReadFlagAndDelete(t *testing.T) {
	e := newEnv(t)
	sb, ids := e.sandboxWith(2)
	path := e.path("/api/accounts/%d/inboxes/%d/messages/%d", e.acme, sb, ids[0])
	var m capturedMessage
	e.get(path, e.admin).want(200).decode(&m)
	if m.IsRead || m.Subject != "Message 0" || m.ToEmail != "user0@example.org" || m.EmailSize == 0 {
		t.Fatalf("message = %+v", m)
	}
	// The SDKs send a boolean, the document a string: both work.
	for _, v := range []any{true, "false", "true"} {
		e.patch(path, e.admin, map[string]any{"message": map[string]any{"is_read": v}}).want(200).decode(&m)
		if want := v == true || v == "true"; m.IsRead != want {
			t.Errorf("is_read %v: message says %v", v, m.IsRead)
		}
	}
	e.patch(path, e.admin, map[string]any{"message": map[string]any{"is_read": "maybe"}}).want(422)
	e.patch(path, e.admin, map[string]any{}).want(422)
	// DELETE answers the message as it was, then it is gone.
	e.del(path, e.admin).want(200).decode(&m)
	if m.ID != ids[0] {
		t.Errorf("delete answered message %d", m.ID)
	}
	e.get(path, e.admin).want(404)
	var list []capturedMessage
	e.get(e.path("/api/sandboxes/%d/messages", sb), e.admin).want(200).decode(&list)
	if len(list) != 1 || list[0].ID != ids[1] {
		t.Errorf("after the delete the sandbox holds %+v", list)
	}
	// A message id of another sandbox is not found through this one.
	sb2, ids2 := e.sandboxWith(1)
	e.get(e.path("/api/sandboxes/%d/messages/%d", sb, ids2[0]), e.admin).want(404)
	// Deleting the sandbox deletes its messages.
	e.del(e.path("/api/accounts/%d/inboxes/%d", e.acme, sb2), e.admin).want(204)
	e.get(e.path("/api/sandboxes/%d/messages/%d", sb2, ids2[0]), e.admin).want(404)
}

func TestSandboxMessageBodies(t *testing.T) {
	e := newEnv(t)
	sb := e.createSandbox(e.admin, e.createProject(e.admin, "P"), "S")
	body := email("qa@anywhere.test", "dev@example.org")
	body["html"] = `<p onclick="x()">Hi <b>there</b></p>`
	body["text"] = "Hi there"
	body["attachments"] = []any{map[string]any{"filename": "a b.txt", "content": "aGVsbG8=", "type": "text/plain"},
		map[string]any{"filename": "logo.png", "content": "iVBORw0K", "type": "image/png", "disposition": "inline", "content_id": "logo"}}
	e.post(e.path("/api/send/%d", sb), e.admin, body).want(200)
	textOnly := email("qa@anywhere.test", "dev@example.org")
	e.post(e.path("/api/send/%d", sb), e.admin, textOnly).want(200)
	var list []capturedMessage
	e.get(e.path("/api/sandboxes/%d/messages", sb), e.admin).want(200).decode(&list)
	rich, plain := list[1].ID, list[0].ID
	base := e.path("/api/sandboxes/%d/messages/", sb)
	for _, tt := range []struct {
		path, ctype, contains string
		status                int
	}{
		{fmt.Sprint(rich, "/body.html"), "text/html", `<p onclick="x()">Hi <b>there</b></p>`, 200},
		{fmt.Sprint(rich, "/body.htmlsource"), "text/plain", `<p onclick="x()">`, 200},
		{fmt.Sprint(rich, "/body.txt"), "text/plain", "Hi there", 200},
		{fmt.Sprint(rich, "/body.raw"), "text/plain", "Subject: Hello", 200},
		{fmt.Sprint(rich, "/body.eml"), "message/rfc822", "To: <dev@example.org>", 200},
		{fmt.Sprint(plain, "/body.html"), "text/plain", "HTML body does not exist.", 409},
		{fmt.Sprint(plain, "/body.txt"), "text/plain", "Hello there", 200},
		{fmt.Sprint(rich, "/attachments/2/download"), "application/octet-stream", "hello", 200},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := e.with(t).get(base+tt.path, e.admin).want(tt.status)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) || !strings.Contains(string(r.Body), tt.contains) {
				t.Errorf("%s: %s %q", tt.path, ct, r.Body)
			}
		})
	}
	// The sender's HTML renders, but never runs script under tokend's origin.
	if csp := e.get(base+fmt.Sprint(rich, "/body.html"), e.admin).Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("body.html CSP = %q", csp)
	}
	var atts []struct {
		ID             int64   `json:"id"`
		Filename       string  `json:"filename"`
		AttachmentType string  `json:"attachment_type"`
		ContentType    string  `json:"content_type"`
		ContentID      *string `json:"content_id"`
		AttachmentSize int     `json:"attachment_size"`
	}
	e.get(base+fmt.Sprint(rich, "/attachments"), e.admin).want(200).decode(&atts)
	// Numbered in the order the message holds them: inline parts sit with the HTML.
	if len(atts) != 2 || atts[1].Filename != "a b.txt" || atts[1].AttachmentSize != 5 || atts[1].AttachmentType != "attachment" ||
		atts[0].Filename != "logo.png" || atts[0].AttachmentType != "inline" || atts[0].ContentID == nil || *atts[0].ContentID != "logo" {
		t.Errorf("attachments = %+v", atts)
	}
	e.get(base+fmt.Sprint(rich, "/attachments?attachment_type=inline"), e.admin).want(200).decode(&atts)
	if len(atts) != 1 || atts[0].Filename != "logo.png" {
		t.Errorf("inline attachments = %+v", atts)
	}
	e.get(base+fmt.Sprint(rich, "/attachments/3"), e.admin).want(404)
	var headers struct {
		Headers map[string]string `json:"headers"`
	}
	e.get(base+fmt.Sprint(rich, "/mail_headers"), e.admin).want(200).decode(&headers)
	if headers.Headers["subject"] != "Hello" || !strings.Contains(headers.Headers["to"], "dev@example.org") {
		t.Errorf("headers = %v", headers.Headers)
	}
}
