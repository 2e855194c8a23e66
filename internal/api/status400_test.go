package api_test

import (
	"strings"
	"testing"
)

// Without an SMTP relay a live send is validated first, as with one: a bad
// body gets its 400 (MailSage's with code invalid_request), a batch whose
// emails are all invalid its 200 with each email's errors, and only a valid
// email that cannot be delivered is 503.
func TestBadLiveSendWithoutRelayIs400(t *testing.T) {
	e := newEnv(t, withoutDelivery())
	e.domainRecord(e.admin, "example.com")
	noFrom := email("", "u@example.org")
	delete(noFrom, "from")
	badRecipient := email("a@example.com", "not an address")
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		want   string // in the body
	}{
		{"send without a sender", "/api/send", noFrom, 400, `"'from' is required"`},
		{"send to a bad address", "/api/send", badRecipient, 400, `'to[0].email' address is invalid`},
		{"send without subject or body", "/api/send", map[string]any{"from": addr("a@example.com"), "to": []any{addr("u@example.org")}}, 400, `'subject' is required`},
		{"batch without requests", "/api/batch", map[string]any{"base": email("a@example.com")}, 400, `'requests' is required`},
		{"batch of bad emails", "/api/batch", map[string]any{"base": map[string]any{"from": addr("a@example.com"), "subject": "s", "text": "t"},
			"requests": []any{map[string]any{"to": []any{addr("not an address")}}}}, 200, `"success":false`},
		{"MailSage without a recipient", "/api/v1/emails/send", map[string]any{"subject": "s", "body": "b", "from": "a@example.com"}, 400, `"code":"invalid_request"`},
		{"MailSage with a bad recipient", "/api/v1/emails/send", map[string]any{"recipient": addr("nope"), "subject": "s", "body": "b", "from": "a@example.com"}, 400, `'recipient.email' address is invalid`},
		{"valid send", "/api/send", email("a@example.com", "u@example.org"), 503, "--smtp-relay"},
		{"valid batch", "/api/batch", map[string]any{"base": map[string]any{"from": addr("a@example.com"), "subject": "s", "text": "t"},
			"requests": []any{map[string]any{"to": []any{addr("not an address")}}, map[string]any{"to": []any{addr("u@example.org")}}}}, 503, "--smtp-relay"},
		{"valid MailSage send", "/api/v1/emails/send", map[string]any{"recipient": addr("u@example.org"), "subject": "s", "body": "b"}, 503, `"code":"delivery_unavailable"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.post(tt.path, e.admin, tt.body).want(tt.status)
			if !strings.Contains(string(r.Body), tt.want) {
				t.Errorf("body %s, want it to contain %s", r.Body, tt.want)
			}
		})
	}
	if n, err := e.svc.Outbox().Pending(t.Context(), "email"); err != nil || n != 0 {
		t.Errorf("%d jobs pending (%v), want none", n, err)
	}
}
