package api_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// logEntry is an email log as the list and the single route answer it.
type logEntry struct {
	MessageID       string     `json:"message_id"`
	Status          string     `json:"status"`
	DeliveryStatus  string     `json:"delivery_status"`
	To              string     `json:"to"`
	From            string     `json:"from"`
	Subject         string     `json:"subject"`
	SendingDomainID *int64     `json:"sending_domain_id"`
	Captured        bool       `json:"captured"`
	Events          []logEvent `json:"events"`
}

type logEvent struct {
	EventType string         `json:"event_type"`
	Details   map[string]any `json:"details"`
}

func (l logEntry) eventTypes() []string {
	var out []string
	for _, e := range l.Events {
		out = append(out, e.EventType)
	}
	return out
}

type logList struct {
	Messages       []logEntry `json:"messages"`
	TotalCount     int        `json:"total_count"`
	NextPageCursor *string    `json:"next_page_cursor"`
}

type suppression struct {
	ID                    string  `json:"id"`
	Type                  string  `json:"type"`
	Email                 string  `json:"email"`
	DomainID              *int64  `json:"domain_id"`
	DomainName            *string `json:"domain_name"`
	MessageID             *string `json:"message_id"`
	MessageBounceCategory *string `json:"message_bounce_category"`
	MessageESPResponse    *string `json:"message_esp_response"`
}

func (e *env) emailLogs(token string, query url.Values) logList {
	e.t.Helper()
	var l logList
	path := e.path("/api/accounts/%d/email_logs", e.acme)
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	e.get(path, token).want(200).decode(&l)
	return l
}

func (e *env) suppressions(token, email string) []suppression {
	e.t.Helper()
	var out []suppression
	e.get(e.path("/api/accounts/%d/suppressions?email=%s", e.acme, url.QueryEscape(email)), token).want(200).decode(&out)
	return out
}

// A real relay answers each recipient on its own: 250, 451 and 550. Each
// message records what happened to it, the 550 (a hard bounce) suppresses
// its recipient, and a later send to that recipient is accepted but not
// relayed to it, while its other recipient still gets the mail.
func TestEventsFollowTheRelaysAnswerPerRecipient(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, err := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRelay(r))
	domain, _, _ := e.domainRecord(e.admin, "mail.example.com")
	relay.RefuseRecipient("later@example.org", 451, "4.2.0", "greylisted, try again")
	relay.RefuseRecipient("gone@example.org", 550, "5.1.1", "no such user here")

	var s sent
	e.post("/api/send", e.admin, email("news@mail.example.com", "ok@example.org", "later@example.org", "gone@example.org")).want(200).decode(&s)
	if len(s.MessageIDs) != 3 {
		t.Fatalf("send answered %+v", s)
	}
	okID, laterID, goneID := s.MessageIDs[0], s.MessageIDs[1], s.MessageIDs[2]
	waitFor(t, 10*time.Second, "delivery, a soft bounce and a bounce", func() bool {
		return e.emailLog(e.admin, okID).DeliveryStatus == "delivered" && e.emailLog(e.admin, laterID).DeliveryStatus == "deferred" &&
			e.emailLog(e.admin, goneID).DeliveryStatus == "failed"
	})
	entry := func(id string) logEntry {
		var l logEntry
		e.get("/api/email_logs/"+id, e.admin).want(200).decode(&l)
		return l
	}
	if l := entry(okID); l.Status != "delivered" || !slices.Equal(l.eventTypes(), []string{"accepted", "delivery"}) {
		t.Errorf("the accepted recipient: %s with events %v, want delivered after accepted, delivery", l.Status, l.eventTypes())
	}
	later := entry(laterID)
	if later.Status != "enqueued" || len(later.Events) < 2 || later.Events[1].EventType != "soft_bounce" ||
		later.Events[1].Details["email_service_provider_status"] != "4.2.0" || later.Events[1].Details["smtp_code"] != float64(451) ||
		!strings.Contains(fmt.Sprint(later.Events[1].Details["email_service_provider_response"]), "greylisted") {
		t.Errorf("the greylisted recipient: %s with %+v, want enqueued with a soft_bounce carrying the reply", later.Status, later.Events)
	}
	gone := entry(goneID)
	if last := gone.Events[len(gone.Events)-1]; gone.Status != "not_delivered" || last.EventType != "bounce" ||
		last.Details["bounce_category"] != "bad_mailbox" || last.Details["email_service_provider_status"] != "5.1.1" {
		t.Errorf("the refused recipient: %s with %+v, want not_delivered after a bounce of category bad_mailbox", gone.Status, gone.Events)
	}

	// The greylisting ends: the deferred message is delivered.
	relay.RefuseRecipient("later@example.org", 0, "", "")
	waitFor(t, 10*time.Second, "the deferred message delivered", func() bool { return entry(laterID).Status == "delivered" })
	if types := entry(laterID).eventTypes(); types[len(types)-1] != "delivery" || !slices.Contains(types, "soft_bounce") {
		t.Errorf("events of the greylisted message: %v, want soft bounces, then delivery", types)
	}

	// The hard bounce suppressed its recipient for the domain.
	sups := e.suppressions(e.admin, "GONE@example.org")
	if len(sups) != 1 || sups[0].Type != "hard bounce" || sups[0].Email != "gone@example.org" || sups[0].DomainID == nil || *sups[0].DomainID != domain ||
		sups[0].MessageID == nil || *sups[0].MessageID != goneID || sups[0].MessageBounceCategory == nil || *sups[0].MessageBounceCategory != "bad_mailbox" ||
		sups[0].MessageESPResponse == nil || !strings.Contains(*sups[0].MessageESPResponse, "no such user") {
		t.Fatalf("suppressions of gone@example.org: %+v, want one hard bounce from message %s", sups, goneID)
	}

	// A new send to both: accepted for both, relayed to the other one only.
	before := len(relay.Mails())
	e.post("/api/send", e.admin, email("news@mail.example.com", "gone@example.org", "ok@example.org")).want(200).decode(&s)
	waitFor(t, 10*time.Second, "the unsuppressed recipient's delivery", func() bool { return entry(s.MessageIDs[1]).Status == "delivered" })
	suppressed := entry(s.MessageIDs[0])
	if suppressed.Status != "opted_out" || suppressed.DeliveryStatus != "suppressed" ||
		!slices.Equal(suppressed.eventTypes(), []string{"accepted", "reject"}) ||
		!strings.Contains(fmt.Sprint(suppressed.Events[1].Details["reject_reason"]), "hard bounce") {
		t.Errorf("the suppressed recipient: %s/%s with %+v, want opted_out with a reject naming the suppression", suppressed.Status, suppressed.DeliveryStatus, suppressed.Events)
	}
	for _, m := range relay.Mails()[before:] {
		if slices.Contains(m.To, "gone@example.org") {
			t.Fatalf("the relay got mail for a suppressed recipient: %v", m.To)
		}
	}

	// Removing the suppression lets mail through again.
	e.del(e.path("/api/accounts/%d/suppressions/%s", e.acme, sups[0].ID), e.admin).want(200)
	e.del(e.path("/api/accounts/%d/suppressions/%s", e.acme, sups[0].ID), e.admin).want(404)
	relay.RefuseRecipient("gone@example.org", 0, "", "")
	e.post("/api/send", e.admin, email("news@mail.example.com", "gone@example.org")).want(200).decode(&s)
	waitFor(t, 10*time.Second, "delivery after the suppression was removed", func() bool { return entry(s.MessageIDs[0]).Status == "delivered" })
}

// The list pages through an account's mail newest first, by Mailtrap's
// cursor, and new mail arriving meanwhile neither repeats nor hides a
// message of the listing; its filters select as Mailtrap's do.
func TestEmailLogsListPagesAndFilters(t *testing.T) {
	e := newEnv(t)
	e.domainRecord(e.admin, "mail.example.com")
	other, _, _ := e.domainRecord(e.admin, "other.example.com")
	var want []string // newest first
	for i := range 3 {
		rcpts := make([]string, 25)
		for j := range rcpts {
			rcpts[j] = fmt.Sprintf("user%d-%d@example.org", i, j)
		}
		var s sent
		e.post("/api/send", e.admin, email("news@mail.example.com", rcpts...)).want(200).decode(&s)
		ids := slices.Clone(s.MessageIDs)
		slices.Sort(ids)
		slices.Reverse(ids)
		want = append(ids, want...)
		e.clock.Advance(time.Minute)
	}
	var s sent
	msg := email("alerts@other.example.com", "Ann@Example.org")
	msg["subject"], msg["category"] = "Password reset", "security"
	e.post("/api/send", e.admin, msg).want(200).decode(&s)
	otherID := s.MessageIDs[0]
	want = append([]string{otherID}, want...)

	var got []string
	var cursor string
	for page := 0; ; page++ {
		q := url.Values{}
		if cursor != "" {
			q.Set("search_after", cursor)
		}
		l := e.emailLogs(e.admin, q)
		total := 76
		if page > 0 {
			total = 77 // with the mail sent after the first page
		}
		if l.TotalCount != total || len(l.Messages) == 0 || len(l.Messages) > 50 {
			t.Fatalf("page %d: %d messages of total_count %d, want pages of up to 50 of %d", page, len(l.Messages), l.TotalCount, total)
		}
		for _, m := range l.Messages {
			got = append(got, m.MessageID)
		}
		if page == 0 {
			// Mail sent while a listing is under way comes first in a
			// new listing, never inside this one.
			e.post("/api/send", e.admin, email("news@mail.example.com", "late@example.org")).want(200)
		}
		if l.NextPageCursor == nil {
			break
		}
		cursor = *l.NextPageCursor
		if page > 3 {
			t.Fatal("the listing does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged through %d messages, want the %d sent before, newest first, each once", len(got), len(want))
	}

	filter := func(kv ...string) url.Values {
		q := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			q.Add(kv[i], kv[i+1])
		}
		return q
	}
	for _, c := range []struct {
		name  string
		query url.Values
		want  int
	}{
		{"to, case-insensitive", filter("filters[to][operator]", "ci_equal", "filters[to][value]", "ann@EXAMPLE.org"), 1},
		{"to, several", filter("filters[to][operator]", "ci_equal", "filters[to][value][]", "ann@example.org", "filters[to][value][]", "late@example.org"), 2},
		// Mailtrap's Node SDK repeats [value] without [] for several.
		{"to, several repeated", filter("filters[to][operator]", "ci_equal", "filters[to][value]", "ann@example.org", "filters[to][value]", "late@example.org"), 2},
		// Parameters that are neither filters nor search_after are ignored.
		{"unknown parameter", filter("page", "2", "filters[to][operator]", "ci_equal", "filters[to][value]", "ann@example.org"), 1},
		{"to, containing", filter("filters[to][operator]", "ci_contain", "filters[to][value]", "USER1-"), 25},
		{"from, not", filter("filters[from][operator]", "ci_not_equal", "filters[from][value]", "news@mail.example.com"), 1},
		{"subject", filter("filters[subject][operator]", "ci_contain", "filters[subject][value]", "reset"), 1},
		{"category", filter("filters[category][operator]", "equal", "filters[category][value]", "security"), 1},
		{"domain", filter("filters[sending_domain_id][operator]", "equal", "filters[sending_domain_id][value][]", fmt.Sprint(other)), 1},
		{"domain, not", filter("filters[sending_domain_id][operator]", "not_equal", "filters[sending_domain_id][value]", fmt.Sprint(other)), 76},
		{"status", filter("filters[status][operator]", "equal", "filters[status][value]", "enqueued"), 77},
		{"status, delivered", filter("filters[status][operator]", "equal", "filters[status][value]", "delivered"), 0},
		{"events", filter("filters[events][operator]", "include_event", "filters[events][value]", "bounce"), 0},
		{"no events of a kind", filter("filters[events][operator]", "not_include_event", "filters[events][value]", "bounce"), 77},
		{"sent after", filter("filters[sent_after]", e.clock.Now().Add(-30*time.Second).Format(time.RFC3339)), 2},
		{"sent before", filter("filters[sent_before]", e.clock.Now().Add(-150*time.Second).Format(time.RFC3339)), 25},
		{"stream", filter("filters[sending_stream][operator]", "equal", "filters[sending_stream][value]", "bulk"), 0},
		{"opens", filter("filters[opens_count][operator]", "equal", "filters[opens_count][value]", "0"), 77},
	} {
		if l := e.emailLogs(e.admin, c.query); l.TotalCount != c.want || len(l.Messages) != min(c.want, 50) {
			t.Errorf("%s: %d messages of total_count %d, want %d", c.name, len(l.Messages), l.TotalCount, c.want)
		}
	}
	if l := e.emailLogs(e.admin, filter("filters[to][operator]", "ci_equal", "filters[to][value]", "ann@example.org")); len(l.Messages) != 1 ||
		l.Messages[0].MessageID != otherID || l.Messages[0].Subject != "Password reset" || l.Messages[0].SendingDomainID == nil ||
		*l.Messages[0].SendingDomainID != other || l.Messages[0].Status != "enqueued" || !slices.Equal(l.Messages[0].eventTypes(), []string{"accepted"}) {
		t.Errorf("the filtered message: %+v", l.Messages)
	}

	for _, c := range []struct {
		name, query, field string
	}{
		{"unknown field", "filters[colour][operator]=equal&filters[colour][value]=red", "filters[colour]"},
		{"unknown operator", "filters[to][operator]=like&filters[to][value]=a", "filters[to][operator]"},
		{"missing value", "filters[to][operator]=ci_equal", "filters[to][value]"},
		{"bad status", "filters[status][operator]=equal&filters[status][value]=lost", "filters[status][value]"},
		{"bad date", "filters[sent_after]=yesterday", "filters[sent_after]"},
		{"dates reversed", "filters[sent_after]=2026-03-02T00:00:00Z&filters[sent_before]=2026-03-01T00:00:00Z", "filters[sent_after]"},
		{"unrecorded field", "filters[client_ip][operator]=equal&filters[client_ip][value]=1.2.3.4", "filters[client_ip]"},
		{"foreign cursor", "search_after=00000000-0000-0000-0000-000000000000", "search_after"},
	} {
		r := e.get(e.path("/api/accounts/%d/email_logs?%s", e.acme, c.query), e.admin).want(422)
		if !strings.Contains(string(r.Body), `"`+c.field+`"`) {
			t.Errorf("%s: %s, want an error on %s", c.name, r.Body, c.field)
		}
	}

	// A parameter that takes one value, given twice, is refused rather
	// than one of its values quietly used.
	for _, c := range []struct {
		name, query, field string
	}{
		{"operator twice", "filters[to][operator]=ci_equal&filters[to][operator]=ci_not_equal&filters[to][value]=ann@example.org", "filters[to][operator]"},
		{"same operator twice", "filters[status][operator]=equal&filters[status][operator]=equal&filters[status][value][]=enqueued", "filters[status][operator]"},
		{"search_after twice", "search_after=" + otherID + "&search_after=" + otherID, "search_after"},
		{"sent_after twice", "filters[sent_after]=2026-03-01T00:00:00Z&filters[sent_after]=2026-03-02T00:00:00Z", "filters[sent_after]"},
		{"sent_before twice", "filters[sent_before]=2026-03-01T00:00:00Z&filters[sent_before]=2026-03-01T00:00:00Z", "filters[sent_before]"},
	} {
		var body struct{ Errors map[string][]string }
		e.get(e.path("/api/accounts/%d/email_logs?%s", e.acme, c.query), e.admin).want(422).decode(&body)
		if msgs := body.Errors[c.field]; len(msgs) != 1 || msgs[0] != "must be given once" {
			t.Errorf("%s: errors %v, want %s: must be given once", c.name, body.Errors, c.field)
		}
	}
}

// Who sees which logs: an account admin all of them, a domain's viewer
// that domain's mail, a token without a sending domain none (403), and
// another account's token nothing of this account (404).
func TestEmailLogsShowWhatTheCallerMayRead(t *testing.T) {
	e := newEnv(t)
	first, _, _ := e.domainRecord(e.admin, "one.example.com")
	e.domainRecord(e.admin, "two.example.com")
	e.post("/api/send", e.admin, email("a@one.example.com", "x@example.org")).want(200)
	e.post("/api/send", e.admin, email("b@two.example.com", "y@example.org")).want(200)
	viewer := e.createToken(e.admin, "viewer", map[string]any{"resource_type": "domain", "resource_id": first, "access_level": 10})
	project := e.createProject(e.admin, "P")
	outsider := e.createToken(e.admin, "outsider", map[string]any{"resource_type": "project", "resource_id": project, "access_level": 100})

	if l := e.emailLogs(e.admin, nil); l.TotalCount != 2 {
		t.Errorf("the account admin sees %d messages, want 2", l.TotalCount)
	}
	if l := e.emailLogs(viewer.Token, nil); l.TotalCount != 1 || l.Messages[0].To != "x@example.org" {
		t.Errorf("the viewer of one.example.com sees %+v, want its one message", l.Messages)
	}
	e.get(e.path("/api/accounts/%d/email_logs", e.acme), outsider.Token).want(403)
	e.get(e.path("/api/accounts/%d/email_logs", e.acme), e.otherAdmin).want(404)
	e.get(e.path("/api/accounts/%d/suppressions", e.acme), outsider.Token).want(403)
	e.get(e.path("/api/accounts/%d/suppressions", e.acme), e.otherAdmin).want(404)
}

// Suppressions added through the API: for one domain (its admin) or for
// all (an account admin), listed by address, added twice without a copy,
// and removed.
func TestSuppressionsAPI(t *testing.T) {
	e := newEnv(t)
	domain, _, _ := e.domainRecord(e.admin, "mail.example.com")
	domainAdmin := e.createToken(e.admin, "domain admin", map[string]any{"resource_type": "domain", "resource_id": domain, "access_level": 100})
	viewer := e.createToken(e.admin, "viewer", map[string]any{"resource_type": "domain", "resource_id": domain, "access_level": 10})
	base := e.path("/api/accounts/%d/suppressions", e.acme)

	var created struct{ Data suppression }
	e.post(base, domainAdmin.Token, map[string]any{"email": "Who@Example.org", "domain_id": domain, "sending_stream": "transactional"}).want(201).decode(&created)
	if created.Data.Email != "who@example.org" || created.Data.Type != "manual import" || created.Data.DomainName == nil || *created.Data.DomainName != "mail.example.com" {
		t.Errorf("created %+v", created.Data)
	}
	var again struct{ Data suppression }
	e.post(base, domainAdmin.Token, map[string]any{"email": "who@example.org", "domain_id": domain}).want(200).decode(&again)
	if again.Data.ID != created.Data.ID {
		t.Errorf("adding the address again made %s, want the existing %s", again.Data.ID, created.Data.ID)
	}
	e.post(base, viewer.Token, map[string]any{"email": "x@example.org", "domain_id": domain}).want(403)
	e.post(base, domainAdmin.Token, map[string]any{"email": "x@example.org"}).want(403) // every domain: account admin only
	e.post(base, e.admin, map[string]any{"email": "all@example.org", "type": "unsubscription"}).want(201)
	e.post(base, e.admin, map[string]any{"email": "not an address"}).want(422)
	e.post(base, e.admin, map[string]any{"email": "y@example.org", "type": "grudge"}).want(422)
	e.post(base, e.otherAdmin, map[string]any{"email": "y@example.org", "domain_id": domain}).want(404)

	if list := e.suppressions(viewer.Token, ""); len(list) != 2 {
		t.Errorf("the viewer lists %+v, want both", list)
	}
	if list := e.suppressions(e.admin, "WHO@example.org"); len(list) != 1 || list[0].ID != created.Data.ID {
		t.Errorf("by address: %+v", list)
	}
	e.get(base+"?email=who@example.org&email=all@example.org", e.admin).want(422) // one address a query, not the first of several
	// The account-wide suppression holds for this domain's mail.
	var s sent
	e.post("/api/send", e.admin, email("news@mail.example.com", "all@example.org", "who@example.org", "fine@example.org")).want(200).decode(&s)
	for i, want := range []string{"opted_out", "opted_out", "enqueued"} {
		if got := e.emailLog(e.admin, s.MessageIDs[i]).Status; got != want {
			t.Errorf("recipient %d: %s, want %s", i, got, want)
		}
	}
	e.del(base+"/"+created.Data.ID, viewer.Token).want(403)
	var deleted suppression
	e.del(base+"/"+created.Data.ID, domainAdmin.Token).want(200).decode(&deleted)
	if deleted.ID != created.Data.ID {
		t.Errorf("deleted %+v", deleted)
	}
	if list := e.suppressions(e.admin, "who@example.org"); len(list) != 0 {
		t.Errorf("after the delete: %+v", list)
	}
}

// A suppression of every domain holds for each domain: adding the address
// for one domain answers it (200) rather than adding a copy. The other way
// round, a suppression of one domain does not hold for the others, so one
// of every domain is added (201) beside it.
func TestSuppressionOfEveryDomainCoversOne(t *testing.T) {
	e := newEnv(t)
	domain, _, _ := e.domainRecord(e.admin, "mail.example.com")
	domainAdmin := e.createToken(e.admin, "domain admin", map[string]any{"resource_type": "domain", "resource_id": domain, "access_level": 100})
	base := e.path("/api/accounts/%d/suppressions", e.acme)

	var wide, again, byDomainAdmin struct{ Data suppression }
	e.post(base, e.admin, map[string]any{"email": "Left@Example.org", "type": "unsubscription"}).want(201).decode(&wide)
	e.post(base, e.admin, map[string]any{"email": "left@example.org", "domain_id": domain}).want(200).decode(&again)
	if again.Data.ID != wide.Data.ID || again.Data.DomainID != nil || again.Data.Type != "unsubscription" {
		t.Errorf("adding for one domain answered %+v, want the suppression of every domain %+v", again.Data, wide.Data)
	}
	e.post(base, domainAdmin.Token, map[string]any{"email": "LEFT@example.org", "domain_id": domain}).want(200).decode(&byDomainAdmin)
	if byDomainAdmin.Data.ID != wide.Data.ID {
		t.Errorf("the domain admin's add answered %+v, want %+v", byDomainAdmin.Data, wide.Data)
	}
	if list := e.suppressions(e.admin, "left@example.org"); len(list) != 1 {
		t.Errorf("the address has suppressions %+v, want the one of every domain only", list)
	}

	var narrow, widened struct{ Data suppression }
	e.post(base, e.admin, map[string]any{"email": "one@example.org", "domain_id": domain}).want(201).decode(&narrow)
	e.post(base, e.admin, map[string]any{"email": "one@example.org"}).want(201).decode(&widened)
	if widened.Data.ID == narrow.Data.ID || widened.Data.DomainID != nil {
		t.Errorf("adding for every domain answered %+v beside %+v, want a new suppression of every domain", widened.Data, narrow.Data)
	}
	var held struct{ Data suppression }
	e.post(base, e.admin, map[string]any{"email": "one@example.org", "domain_id": domain}).want(200).decode(&held)
	if held.Data.ID != narrow.Data.ID {
		t.Errorf("with both held, adding for the domain answered %+v, want the domain's own %+v", held.Data, narrow.Data)
	}
	if list := e.suppressions(e.admin, "one@example.org"); len(list) != 2 {
		t.Errorf("the address has suppressions %+v, want both", list)
	}
}

// Logs older than --email-log-retention are deleted with their events by
// the background prune, but never mail still waiting for delivery.
func TestEmailLogsArePrunedPastTheRetention(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, _ := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
	e := newEnv(t, withRelay(r), withConfig(func(c *app.Config) { c.EmailLogRetention = 7 * 24 * time.Hour }))
	e.domainRecord(e.admin, "mail.example.com")
	relay.RefuseRecipient("later@example.org", 451, "4.2.0", "greylisted")
	var s sent
	e.post("/api/send", e.admin, email("news@mail.example.com", "ok@example.org", "later@example.org")).want(200).decode(&s)
	waitFor(t, 10*time.Second, "the delivery", func() bool { return e.emailLog(e.admin, s.MessageIDs[0]).DeliveryStatus == "delivered" })
	var fresh sent
	e.clock.Advance(6 * 24 * time.Hour)
	e.post("/api/send", e.admin, email("news@mail.example.com", "ok@example.org")).want(200).decode(&fresh)
	waitFor(t, 10*time.Second, "the second delivery", func() bool { return e.emailLog(e.admin, fresh.MessageIDs[0]).DeliveryStatus == "delivered" })
	e.clock.Advance(2 * 24 * time.Hour)
	if _, err := e.app.Logs.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first email waits for its greylisted recipient: kept whole.
	e.get("/api/email_logs/"+s.MessageIDs[0], e.admin).want(200)
	relay.RefuseRecipient("later@example.org", 0, "", "")
	waitFor(t, 10*time.Second, "the deferred delivery", func() bool { return e.emailLog(e.admin, s.MessageIDs[1]).DeliveryStatus == "delivered" })
	if _, err := e.app.Logs.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.get("/api/email_logs/"+s.MessageIDs[0], e.admin).want(404)
	e.get("/api/email_logs/"+s.MessageIDs[1], e.admin).want(404)
	e.get("/api/email_logs/"+fresh.MessageIDs[0], e.admin).want(200)
	if l := e.emailLogs(e.admin, nil); l.TotalCount != 1 {
		t.Errorf("%d logs left, want the one within the retention", l.TotalCount)
	}
}
