package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

func liveEmail(accountID, tokenID, domainID int64, from, subject string, at time.Time) *tokend.StoredEmail {
	return &tokend.StoredEmail{AccountID: accountID, TokenID: tokenID, DomainID: domainID, MailFrom: from,
		From: tokend.Address{Email: from}, To: tokend.Address{Email: "x@example.org"}, Subject: subject,
		Raw: []byte("Subject: x\r\n\r\nx"), Size: 15, CreatedAt: at, UpdatedAt: at}
}

func logIDs(logs []tokend.MessageLog) []string {
	var out []string
	for _, l := range logs {
		out = append(out, l.ID)
	}
	return out
}

// Email logs list an account's live mail newest first (by email, then
// message id), continue after a cursor, keep to what the query lets the
// caller see, filter, and count up to a cap.
func testEmailLogs(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Other")
	d1 := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "one.example.com"})
	d2 := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "two.example.com"})
	db := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: b.ID, Name: "b.example.com"})
	first := storeEmail(t, s, liveEmail(a.ID, 7, d1.ID, "news@one.example.com", "First", t0), "Ann@example.org", "bob@example.org")
	second := storeEmail(t, s, liveEmail(a.ID, 8, d2.ID, "ops@two.example.com", "Second alert", t0.Add(time.Minute)), "carl@example.org")
	storeEmail(t, s, liveEmail(b.ID, 9, db.ID, "x@b.example.com", "Theirs", t0), "ann@example.org")
	project := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "p"})
	sandbox := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: project.ID, Name: "sb"})
	storeEmail(t, s, &tokend.StoredEmail{AccountID: a.ID, TokenID: 7, SandboxID: sandbox.ID, MailFrom: "a@any.example",
		From: tokend.Address{Email: "a@any.example"}, Raw: []byte("x"), CreatedAt: t0, UpdatedAt: t0}, "sandboxed@example.org")
	write(t, s, func(tx tokend.Tx) error {
		if _, err := tx.UpdateMessage(ctx, first[1].ID, tokend.MessageFailed, 1, "550 5.1.1 No Such User", t0); err != nil {
			return err
		}
		return tx.AddEmailEvent(ctx, &tokend.EmailEvent{MessageID: first[1].ID, AccountID: a.ID, Type: tokend.EmailBounce, At: t0,
			Details: tokend.EmailEventDetails{Code: 550, Status: "5.1.1", BounceCategory: "bad_mailbox"}})
	})
	newest := []string{second[0].ID, max(first[0].ID, first[1].ID), min(first[0].ID, first[1].ID)}

	list := func(q tokend.LogQuery) []tokend.MessageLog {
		t.Helper()
		if q.Limit == 0 {
			q.Limit = 10
		}
		var out []tokend.MessageLog
		read(t, s, func(tx tokend.Tx) error {
			var err error
			out, err = tx.EmailLogs(ctx, a.ID, q)
			return err
		})
		return out
	}
	count := func(q tokend.LogQuery, max int) int {
		t.Helper()
		var n int
		read(t, s, func(tx tokend.Tx) error {
			var err error
			n, err = tx.CountEmailLogs(ctx, a.ID, q, max)
			return err
		})
		return n
	}
	all := list(tokend.LogQuery{All: true})
	if got := logIDs(all); !slices.Equal(got, newest) {
		t.Fatalf("EmailLogs = %v, want the account's live mail newest first %v (no sandbox mail, no other account's)", got, newest)
	}
	if l := all[0]; l.Recipient != "carl@example.org" || l.DomainID != d2.ID || l.Email.Subject != "Second alert" || l.Email.TokenID != 8 ||
		l.Email.From.Email != "ops@two.example.com" || len(l.Email.Raw) != 0 || !l.CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("newest log = %+v", l)
	}
	after := &tokend.LogCursor{CreatedAt: all[1].CreatedAt, EmailID: all[1].EmailID, MessageID: all[1].ID}
	if got := logIDs(list(tokend.LogQuery{All: true, After: after})); !slices.Equal(got, newest[2:]) {
		t.Errorf("after the second: %v, want %v", got, newest[2:])
	}
	if got := logIDs(list(tokend.LogQuery{All: true, Limit: 1})); !slices.Equal(got, newest[:1]) {
		t.Errorf("limit 1: %v", got)
	}
	for _, c := range []struct {
		name string
		q    tokend.LogQuery
		want []string
	}{
		{"domain viewer", tokend.LogQuery{DomainIDs: []int64{d1.ID}, TokenID: 99}, newest[1:]},
		{"the sending token", tokend.LogQuery{TokenID: 8}, newest[:1]},
		{"both", tokend.LogQuery{DomainIDs: []int64{d1.ID}, TokenID: 8}, newest},
		{"to equal", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogTo, Op: tokend.LogEqual, Values: []string{"ann@example.org"}}}},
			[]string{first[0].ID}},
		{"to not equal", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogTo, Op: tokend.LogEqual, Negate: true, Values: []string{"ann@example.org", "carl@example.org"}}}},
			[]string{first[1].ID}},
		{"subject contains, escaped", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogSubject, Op: tokend.LogContain, Values: []string{"d al"}}}},
			newest[:1]},
		{"like wildcards are literal", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogSubject, Op: tokend.LogContain, Values: []string{"%"}}}}, nil},
		{"state", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogState, Op: tokend.LogEqual, Values: []string{"failed"}}}},
			[]string{first[1].ID}},
		{"response", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogResponse, Op: tokend.LogContain, Values: []string{"no such"}}}},
			[]string{first[1].ID}},
		{"domain", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogDomain, Op: tokend.LogEqual, Values: []string{fmt.Sprint(d2.ID)}}}},
			newest[:1]},
		{"event", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogEvent, Op: tokend.LogEqual, Values: []string{"bounce"}}}},
			[]string{first[1].ID}},
		{"no event", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogEvent, Op: tokend.LogEqual, Negate: true, Values: []string{"bounce"}}}},
			[]string{second[0].ID, first[0].ID}},
		{"constant false", tokend.LogQuery{All: true, Filters: []tokend.LogFilter{{Field: tokend.LogConstant, Negate: true}}}, nil},
		{"sent after", tokend.LogQuery{All: true, SentAfter: t0.Add(time.Second)}, newest[:1]},
		{"sent before", tokend.LogQuery{All: true, SentBefore: t0.Add(time.Second)}, newest[1:]},
	} {
		got := logIDs(list(c.q))
		if c.name == "no event" {
			slices.Sort(got)
			slices.Sort(c.want)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if n := count(c.q, 100); n != len(c.want) {
			t.Errorf("%s: counted %d, want %d", c.name, n, len(c.want))
		}
	}
	if n := count(tokend.LogQuery{All: true}, 2); n != 2 {
		t.Errorf("count capped at 2 = %d", n)
	}
}

// A message's events come back oldest first, and go with the message when
// its email is deleted.
func testEmailEvents(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	msgs := storeEmail(t, s, liveEmail(a.ID, 7, d.ID, "a@example.com", "Hi", t0), "b@example.org", "c@example.org")
	write(t, s, func(tx tokend.Tx) error {
		for i, typ := range []tokend.EmailEventType{tokend.EmailSoftBounce, tokend.EmailDelivery} {
			ev := &tokend.EmailEvent{MessageID: msgs[0].ID, AccountID: a.ID, Type: typ, At: t0.Add(time.Duration(i) * time.Second),
				Details: tokend.EmailEventDetails{Response: "451 4.2.0 later", Code: 451, Status: "4.2.0", Attempt: i + 1}}
			if err := tx.AddEmailEvent(ctx, ev); err != nil || ev.ID == 0 {
				return fmt.Errorf("AddEmailEvent: id %d, %v", ev.ID, err)
			}
		}
		if _, err := tx.UpdateMessage(ctx, msgs[0].ID, tokend.MessageDelivered, 2, "", t0); err != nil {
			return err
		}
		_, err := tx.UpdateMessage(ctx, msgs[1].ID, tokend.MessageDelivered, 1, "", t0)
		return err
	})
	read(t, s, func(tx tokend.Tx) error {
		evs, err := tx.EmailEvents(ctx, []string{msgs[0].ID, msgs[1].ID})
		if err != nil {
			return err
		}
		got := evs[msgs[0].ID]
		if len(got) != 2 || got[0].Type != tokend.EmailSoftBounce || got[1].Type != tokend.EmailDelivery || !got[1].At.Equal(t0.Add(time.Second)) ||
			got[0].Details.Code != 451 || got[0].Details.Status != "4.2.0" || got[0].Details.Attempt != 1 || len(evs[msgs[1].ID]) != 0 {
			t.Errorf("EmailEvents = %+v", evs)
		}
		return nil
	})
	write(t, s, func(tx tokend.Tx) error {
		n, err := tx.DeleteEmailsBefore(ctx, t0.Add(time.Hour), 10)
		if n != 1 {
			t.Errorf("DeleteEmailsBefore deleted %d, want 1", n)
		}
		return err
	})
	read(t, s, func(tx tokend.Tx) error {
		evs, err := tx.EmailEvents(ctx, []string{msgs[0].ID})
		if len(evs[msgs[0].ID]) != 0 {
			t.Errorf("events outlive their message: %+v", evs)
		}
		return err
	})
}

// A suppression holds for its domain, or for every domain of its account
// when it names none; the same address twice in one place is one
// suppression; deleting the domain deletes its suppressions.
func testSuppressions(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Other")
	d1 := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "one.example.com"})
	d2 := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "two.example.com"})
	add := func(sp tokend.Suppression) (*tokend.Suppression, bool) {
		t.Helper()
		var held *tokend.Suppression
		var created bool
		write(t, s, func(tx tokend.Tx) error {
			var err error
			held, created, err = tx.AddSuppression(ctx, &sp)
			return err
		})
		return held, created
	}
	src := &tokend.SuppressionSource{MessageID: "m-1", Subject: "Hi", SenderEmail: "a@one.example.com", Response: "550 5.1.1 gone", BounceCategory: "bad_mailbox", CreatedAt: t0}
	bounced, created := add(tokend.Suppression{ID: "s-1", AccountID: a.ID, Email: "gone@example.org", DomainID: d1.ID, DomainName: d1.Name,
		Type: tokend.SuppressionHardBounce, SendingStream: "transactional", CreatedAt: t0, Source: src})
	if !created || bounced.ID != "s-1" {
		t.Fatalf("AddSuppression = %+v, %v", bounced, created)
	}
	if held, created := add(tokend.Suppression{ID: "s-2", AccountID: a.ID, Email: "gone@example.org", DomainID: d1.ID, Type: tokend.SuppressionManual,
		SendingStream: "transactional", CreatedAt: t0.Add(time.Second)}); created || held.ID != "s-1" || held.Type != tokend.SuppressionHardBounce ||
		held.Source == nil || *held.Source != *src {
		t.Errorf("the same address again: %+v %v, want the held s-1 with its source", held, created)
	}
	add(tokend.Suppression{ID: "s-3", AccountID: a.ID, Email: "all@example.org", Type: tokend.SuppressionManual, SendingStream: "transactional", CreatedAt: t0.Add(2 * time.Second)})
	if _, created := add(tokend.Suppression{ID: "s-4", AccountID: a.ID, Email: "all@example.org", Type: tokend.SuppressionManual, SendingStream: "transactional", CreatedAt: t0}); created {
		t.Error("an account-wide suppression of the same address twice")
	}
	add(tokend.Suppression{ID: "s-5", AccountID: b.ID, Email: "gone@example.org", Type: tokend.SuppressionManual, SendingStream: "transactional", CreatedAt: t0})
	among := func(domain int64) []string {
		t.Helper()
		var ids []string
		read(t, s, func(tx tokend.Tx) error {
			list, err := tx.SuppressedAmong(ctx, a.ID, domain, []string{"gone@example.org", "all@example.org", "fine@example.org"})
			for _, sp := range list {
				ids = append(ids, sp.ID)
			}
			slices.Sort(ids)
			return err
		})
		return ids
	}
	if got := among(d1.ID); !slices.Equal(got, []string{"s-1", "s-3"}) {
		t.Errorf("suppressed for one.example.com: %v", got)
	}
	if got := among(d2.ID); !slices.Equal(got, []string{"s-3"}) {
		t.Errorf("suppressed for two.example.com: %v", got)
	}
	read(t, s, func(tx tokend.Tx) error {
		list, err := tx.Suppressions(ctx, a.ID, "", 10)
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].ID != "s-3" || list[1].ID != "s-1" {
			t.Errorf("Suppressions = %+v, want s-3 then s-1", list)
		}
		if list, err = tx.Suppressions(ctx, a.ID, "gone@example.org", 10); len(list) != 1 || list[0].ID != "s-1" {
			t.Errorf("by address: %+v %v", list, err)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceDomain, d1.ID) })
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.Suppression(ctx, "s-1"); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a deleted domain's suppression: %v", err)
		}
		return nil
	})
	write(t, s, func(tx tokend.Tx) error {
		if err := tx.DeleteSuppression(ctx, "s-3"); err != nil {
			return err
		}
		if err := tx.DeleteSuppression(ctx, "s-3"); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("deleting twice: %v", err)
		}
		return nil
	})
}
