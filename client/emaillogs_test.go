package client_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
)

// verifiedDomain adds a sending domain and publishes and checks its DNS
// records, so that live keys can send from it.
func (e *env) verifiedDomain(c *client.Client, name string) *client.Domain {
	e.t.Helper()
	d, err := c.CreateDomain(e.t.Context(), name)
	ok(e.t, err)
	for _, r := range d.DNSRecords {
		e.dns.AddTXT(r.Domain, r.Value)
	}
	v, err := c.VerifyDomain(e.t.Context(), d.ID)
	ok(e.t, err)
	if !v.DNSVerified {
		e.t.Fatalf("domain %s not verified with its records published: %+v", name, v)
	}
	return v
}

// The email logs list pages by cursor, newest first, with Mailtrap's
// filters; refusals name the parameter, and what cannot be a query is
// refused before any request.
func TestListEmailLogs(t *testing.T) {
	e := newEnv(t) // live mail is queued and stays so
	ctx := t.Context()
	admin := e.client(e.admin)
	d := e.verifiedDomain(admin, "example.com")

	many := hello("news@example.com")
	for i := range 51 {
		many.To = append(many.To, client.Address{Email: fmt.Sprintf("u%d@example.org", i)})
	}
	_, err := admin.Send(ctx, many)
	ok(t, err)
	sentAt := e.clock.Now()
	e.clock.Advance(time.Minute)
	welcome := hello("news@example.com", "Ann@Example.org")
	welcome.Subject = "Welcome aboard"
	sent, err := admin.Send(ctx, welcome)
	ok(t, err)

	// Two pages, following the cursor: every message once, newest first.
	first, err := admin.ListEmailLogs(ctx, client.LogQuery{})
	ok(t, err)
	if len(first.Messages) != 50 || first.TotalCount != 52 || first.NextPageCursor == "" || first.Messages[0].MessageID != sent.MessageIDs[0] {
		t.Fatalf("first page: %d messages of %d, cursor %q, newest %+v", len(first.Messages), first.TotalCount, first.NextPageCursor, first.Messages[0])
	}
	second, err := admin.ListEmailLogs(ctx, client.LogQuery{SearchAfter: first.NextPageCursor})
	ok(t, err)
	if len(second.Messages) != 2 || second.NextPageCursor != "" {
		t.Fatalf("second page: %d messages, cursor %q; want the last 2 and no cursor", len(second.Messages), second.NextPageCursor)
	}
	seen := map[string]bool{}
	for _, m := range append(first.Messages, second.Messages...) {
		if seen[m.MessageID] {
			t.Errorf("message %s listed twice", m.MessageID)
		}
		seen[m.MessageID] = true
	}

	// A listed message carries what its log does.
	ann := first.Messages[0]
	if ann.To != "Ann@Example.org" || ann.Status != client.StatusEnqueued || ann.DeliveryStatus != client.DeliveryQueued ||
		ann.RFCMessageID != "<"+ann.MessageID+"@example.com>" || ann.SendingDomain != "example.com" || ann.DomainID != d.ID ||
		ann.APITokenID != e.adminID || ann.Captured || len(ann.Events) != 1 || ann.Events[0].EventType != client.EventAccepted {
		t.Errorf("listed log = %+v", ann)
	}
	if got, err := admin.GetEmailLog(ctx, ann.MessageID); err != nil || got.RFCMessageID != ann.RFCMessageID || got.APITokenID != e.adminID {
		t.Errorf("the same log read alone: %+v, %v", got, err)
	}

	filter := func(field, op string, values ...string) []client.LogFilter {
		return []client.LogFilter{{Field: field, Operator: op, Values: values}}
	}
	for _, tt := range []struct {
		name  string
		query client.LogQuery
		want  int
	}{
		{"recipient, case-insensitive", client.LogQuery{Filters: filter("to", "ci_equal", "ANN@example.org")}, 1},
		{"subject contains", client.LogQuery{Filters: filter("subject", "ci_contain", "welc")}, 1},
		{"status enqueued", client.LogQuery{Filters: filter("status", "equal", client.StatusEnqueued)}, 52},
		{"status delivered or opted out", client.LogQuery{Filters: filter("status", "equal", client.StatusDelivered, client.StatusOptedOut)}, 0},
		{"sending domain", client.LogQuery{Filters: filter("sending_domain_id", "equal", itoa(d.ID))}, 52},
		{"events", client.LogQuery{Filters: filter("events", "include_event", client.EventReject)}, 0},
		{"sent after", client.LogQuery{SentAfter: sentAt.Add(30 * time.Second)}, 1},
		{"sent before", client.LogQuery{SentBefore: sentAt.Add(30 * time.Second)}, 51},
		{"two fields", client.LogQuery{Filters: append(filter("to", "ci_contain", "@example.org"), filter("subject", "ci_not_equal", "hello")...)}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page, err := admin.ListEmailLogs(ctx, tt.query)
			ok(t, err)
			if page.TotalCount != tt.want || len(page.Messages) != min(tt.want, 50) {
				t.Errorf("%d messages of %d, want %d", len(page.Messages), page.TotalCount, tt.want)
			}
		})
	}

	for _, tt := range []struct {
		name  string
		query client.LogQuery
		field string // in the 422's Fields
	}{
		{"an unknown field", client.LogQuery{Filters: filter("colour", "equal", "red")}, "filters[colour]"},
		{"a status that does not exist", client.LogQuery{Filters: filter("status", "equal", "lost")}, "filters[status][value]"},
		{"an operator the field lacks", client.LogQuery{Filters: filter("to", "equal", "a@example.org")}, "filters[to][operator]"},
		{"a cursor of no message", client.LogQuery{SearchAfter: "nope"}, "search_after"},
		{"bounds the wrong way round", client.LogQuery{SentAfter: sentAt, SentBefore: sentAt.Add(-time.Hour)}, "filters[sent_after]"},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			_, err := admin.ListEmailLogs(ctx, tt.query)
			if ae := apiError(t, err, http.StatusUnprocessableEntity); len(ae.Fields[tt.field]) == 0 {
				t.Errorf("422 with fields %v, want one naming %s", ae.Fields, tt.field)
			}
		})
	}
	for _, filters := range [][]client.LogFilter{
		append(filter("to", "ci_equal", "a@example.org"), filter("to", "ci_contain", "b")...),
		filter("", "equal", "x"),
		filter("to][operator", "equal", "x"),
	} {
		if _, err := admin.ListEmailLogs(ctx, client.LogQuery{Filters: filters}); err == nil || client.StatusOf(err) != 0 {
			t.Errorf("filters %+v: %v, want an error before any request", filters, err)
		}
	}

	// Others see what their access allows: another account nothing of
	// Acme's, a token that can read no sending domain a 403.
	if page, err := e.client(e.otherAdmin).ListEmailLogs(ctx, client.LogQuery{}); err != nil || page.TotalCount != 0 {
		t.Errorf("another account's listing: %+v, %v", page, err)
	}
	project, err := admin.CreateProject(ctx, "Web")
	ok(t, err)
	noDomain, err := admin.CreateToken(ctx, client.NewToken{Name: "web", Permissions: []client.Permission{perm("project", project.ID, client.Viewer)}})
	ok(t, err)
	_, err = e.client(noDomain.Value).ListEmailLogs(ctx, client.LogQuery{})
	apiError(t, err, http.StatusForbidden)
}

// Suppressions are added, listed and removed; live mail to a suppressed
// address is accepted but not relayed to it, and its log says why.
func TestSuppressions(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)
	d := e.verifiedDomain(admin, "example.com")

	left, err := admin.AddSuppression(ctx, client.SuppressionInput{Email: "Left@Example.org", Type: client.SuppressionUnsubscribed})
	ok(t, err)
	if left.ID == "" || left.Email != "left@example.org" || left.Type != client.SuppressionUnsubscribed || left.DomainID != 0 ||
		left.DomainName != "" || left.SendingStream != "transactional" || left.MessageID != "" || left.MessageCreatedAt != nil || left.CreatedAt.IsZero() {
		t.Errorf("added %+v", left)
	}
	again, err := admin.AddSuppression(ctx, client.SuppressionInput{Email: "left@example.org"})
	ok(t, err)
	if again.ID != left.ID || again.Type != client.SuppressionUnsubscribed {
		t.Errorf("adding it again answered %+v, want the suppression that holds", again)
	}
	e.clock.Advance(time.Second)
	bounce, err := admin.AddSuppression(ctx, client.SuppressionInput{Email: "bounce@example.org", DomainID: d.ID})
	ok(t, err)
	if bounce.Type != client.SuppressionManual || bounce.DomainID != d.ID || bounce.DomainName != "example.com" {
		t.Errorf("added for the domain: %+v", bounce)
	}

	all, err := admin.ListSuppressions(ctx, "")
	ok(t, err)
	if len(all) != 2 || all[0].ID != bounce.ID || all[1].ID != left.ID {
		t.Errorf("suppressions = %+v, want both, newest first", all)
	}
	if one, err := admin.ListSuppressions(ctx, "LEFT@example.org"); err != nil || len(one) != 1 || one[0].ID != left.ID {
		t.Errorf("suppressions of LEFT@example.org: %+v, %v", one, err)
	}

	viewer, err := admin.CreateToken(ctx, client.NewToken{Name: "viewer", Permissions: []client.Permission{perm("account", e.acme, client.Viewer)}})
	ok(t, err)
	v := e.client(viewer.Value)
	if seen, err := v.ListSuppressions(ctx, ""); err != nil || len(seen) != 2 {
		t.Errorf("a viewer's listing: %+v, %v", seen, err)
	}
	for _, tt := range []struct {
		name   string
		call   func() error
		status int
		field  string // in a 422's Fields
	}{
		{"a viewer adding", func() error {
			_, err := v.AddSuppression(ctx, client.SuppressionInput{Email: "x@example.org"})
			return err
		}, http.StatusForbidden, ""},
		{"a viewer removing", func() error { _, err := v.DeleteSuppression(ctx, left.ID); return err }, http.StatusForbidden, ""},
		{"another account removing", func() error { _, err := e.client(e.otherAdmin).DeleteSuppression(ctx, left.ID); return err }, http.StatusNotFound, ""},
		{"an address that is not one", func() error {
			_, err := admin.AddSuppression(ctx, client.SuppressionInput{Email: "not an address"})
			return err
		}, http.StatusUnprocessableEntity, "email"},
		{"a type that does not exist", func() error {
			_, err := admin.AddSuppression(ctx, client.SuppressionInput{Email: "x@example.org", Type: "annoyed"})
			return err
		}, http.StatusUnprocessableEntity, "type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ae := apiError(t, tt.call(), tt.status)
			if tt.field != "" && len(ae.Fields[tt.field]) == 0 {
				t.Errorf("422 with fields %v, want one naming %s", ae.Fields, tt.field)
			}
		})
	}

	// A send to a suppressed address and another: both accepted, only the
	// other one queued.
	sent, err := admin.Send(ctx, hello("news@example.com", "left@example.org", "fine@example.org"))
	ok(t, err)
	opted, err := admin.GetEmailLog(ctx, sent.MessageIDs[0])
	ok(t, err)
	var types []string
	for _, ev := range opted.Events {
		types = append(types, ev.EventType)
	}
	if opted.Status != client.StatusOptedOut || opted.DeliveryStatus != client.DeliverySuppressed ||
		!slices.Equal(types, []string{client.EventAccepted, client.EventReject}) ||
		!strings.Contains(fmt.Sprint(opted.Events[1].Details["reject_reason"]), "unsubscription") {
		t.Errorf("the suppressed recipient's log: %+v", opted)
	}
	if fine, err := admin.GetEmailLog(ctx, sent.MessageIDs[1]); err != nil || fine.Status != client.StatusEnqueued {
		t.Errorf("the other recipient's log: %+v, %v", fine, err)
	}
	if page, err := admin.ListEmailLogs(ctx, client.LogQuery{Filters: []client.LogFilter{{Field: "status", Operator: "equal", Values: []string{client.StatusOptedOut}}}}); err != nil ||
		page.TotalCount != 1 || page.Messages[0].MessageID != opted.MessageID {
		t.Errorf("opted-out messages: %+v, %v", page, err)
	}

	removed, err := admin.DeleteSuppression(ctx, left.ID)
	ok(t, err)
	if removed.ID != left.ID || removed.Email != "left@example.org" {
		t.Errorf("removed %+v", removed)
	}
	_, err = admin.DeleteSuppression(ctx, left.ID)
	apiError(t, err, http.StatusNotFound)
	if rest, err := admin.ListSuppressions(ctx, ""); err != nil || len(rest) != 1 || rest[0].ID != bounce.ID {
		t.Errorf("after removing one: %+v, %v", rest, err)
	}
	if _, err := admin.DeleteSuppression(ctx, "../api_tokens"); err == nil || client.StatusOf(err) != 0 {
		t.Errorf("a suppression id with a slash: %v, want an error before any request", err)
	}
}

// Every send method takes an idempotency key: a retry under it answers as
// the first try did, marked Replayed, and sends nothing more; the key with
// another request is refused.
func TestIdempotentSends(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)
	e.verifiedDomain(admin, "example.com")
	project, err := admin.CreateProject(ctx, "QA")
	ok(t, err)
	sb, err := admin.CreateSandbox(ctx, project.ID, "Staging")
	ok(t, err)

	// send sends what its name says, with key, to recipient; it returns the
	// message ids and whether the answer was replayed.
	type sender func(key, recipient string) ([]string, bool, error)
	email := func(key, recipient string) *client.Email {
		m := hello("news@example.com", recipient)
		m.IdempotencyKey = key
		return m
	}
	for _, tt := range []struct {
		name string
		send sender
	}{
		{"Send", func(key, to string) ([]string, bool, error) {
			r, err := admin.Send(ctx, email(key, to))
			if err != nil {
				return nil, false, err
			}
			return r.MessageIDs, r.Replayed, nil
		}},
		{"SendToSandbox", func(key, to string) ([]string, bool, error) {
			r, err := admin.SendToSandbox(ctx, sb.ID, email(key, to))
			if err != nil {
				return nil, false, err
			}
			return r.MessageIDs, r.Replayed, nil
		}},
		{"SendBatch", func(key, to string) ([]string, bool, error) {
			r, err := admin.SendBatch(ctx, client.Batch{Base: hello("news@example.com"), IdempotencyKey: key,
				Requests: []client.Email{{To: []client.Address{{Email: to}}}, {To: []client.Address{{Email: "second." + to}}}}})
			if err != nil {
				return nil, false, err
			}
			var ids []string
			for _, item := range r.Responses {
				ids = append(ids, item.MessageIDs...)
			}
			return ids, r.Replayed, nil
		}},
		{"SendMailSage", func(key, to string) ([]string, bool, error) {
			r, err := admin.SendMailSage(ctx, client.MailSageEmail{Recipient: client.Address{Email: to}, Subject: "Hi", Body: "Hello",
				From: &client.Address{Email: "news@example.com"}, IdempotencyKey: key})
			if err != nil {
				return nil, false, err
			}
			return []string{r.MessageID}, r.Replayed, nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := "welcome-" + tt.name
			first, replayed, err := tt.send(key, "ann@example.org")
			ok(t, err)
			if replayed || len(first) == 0 {
				t.Fatalf("the first try: ids %v, replayed %v", first, replayed)
			}
			retry, replayed, err := tt.send(key, "ann@example.org")
			ok(t, err)
			if !replayed || !slices.Equal(retry, first) {
				t.Errorf("the retry: ids %v, replayed %v; want %v, replayed", retry, replayed, first)
			}
			if fresh, replayed, err := tt.send("", "ann@example.org"); err != nil || replayed || slices.Equal(fresh, first) {
				t.Errorf("a send without a key: ids %v, replayed %v, %v; want new ids", fresh, replayed, err)
			}
			_, _, err = tt.send(key, "bob@example.org")
			if ae := apiError(t, err, http.StatusUnprocessableEntity); ae.Code != "idempotency_key_reused" {
				t.Errorf("the key with another request: code %q, want idempotency_key_reused", ae.Code)
			}
		})
	}
}
