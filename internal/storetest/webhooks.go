package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// Jobs of one ordering key are claimed one at a time, in the order they
// were enqueued, whatever their due times; other keys and keyless jobs are
// not held up.
func testOutboxOrdering(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	enq := func(key string, due time.Time) *tokend.Job {
		j := &tokend.Job{Kind: "hook", Payload: []byte("x"), NextAttemptAt: due, CreatedAt: t0, OrderingKey: key}
		write(t, s, func(tx tokend.Tx) error { return tx.EnqueueJob(ctx, j) })
		return j
	}
	write(t, s, func(tx tokend.Tx) error { // UnclaimedJob locks what it finds: writes only
		if waiting, err := tx.UnclaimedJob(ctx, "hook", "a"); err != nil || waiting {
			t.Errorf("UnclaimedJob before any = %v %v", waiting, err)
		}
		return nil
	})
	a1 := enq("a", t0.Add(time.Minute)) // due later than the next one
	a2 := enq("a", t0)
	b1 := enq("b", t0)
	free := enq("", t0)
	got := claim(t, s, "hook", t0.Add(2*time.Minute), 10)
	if ids := ids(got); !slices.Equal(ids, []int64{b1.ID, free.ID, a1.ID}) && !slices.Equal(ids, []int64{a1.ID, b1.ID, free.ID}) {
		if !slices.Contains(ids, a1.ID) || slices.Contains(ids, a2.ID) || len(ids) != 3 {
			t.Fatalf("claimed %v, want a1 %d, b1 %d and the keyless %d, not a2 %d before a1 is done", ids, a1.ID, b1.ID, free.ID, a2.ID)
		}
	}
	if got[0].OrderingKey == "" && got[0].ID != free.ID {
		t.Errorf("claimed job lost its key: %+v", got[0])
	}
	write(t, s, func(tx tokend.Tx) error {
		// a1 is under way; a2 waits, untried.
		if waiting, err := tx.UnclaimedJob(ctx, "hook", "a"); err != nil || !waiting {
			t.Errorf("UnclaimedJob with a2 waiting = %v %v", waiting, err)
		}
		if waiting, err := tx.UnclaimedJob(ctx, "hook", "b"); err != nil || waiting {
			t.Errorf("UnclaimedJob with b1 under way = %v %v", waiting, err)
		}
		return nil
	})
	// a1 fails and waits: a2 still waits behind it (the others are leased).
	write(t, s, func(tx tokend.Tx) error { return tx.RetryJob(ctx, a1.ID, t0.Add(time.Hour), "down") })
	if again := claim(t, s, "hook", t0.Add(2*time.Minute+10*time.Second), 10); len(again) != 0 {
		t.Fatalf("claimed %v while a1 waits for its retry", ids(again))
	}
	write(t, s, func(tx tokend.Tx) error { return tx.FinishJob(ctx, a1.ID, tokend.JobDelivered, t0.Add(time.Hour), "") })
	if next := claim(t, s, "hook", t0.Add(2*time.Minute+20*time.Second), 10); len(next) != 1 || next[0].ID != a2.ID || next[0].OrderingKey != "a" {
		t.Fatalf("after a1 is done, claimed %+v, want a2 %d", next, a2.ID)
	}
}

// Webhooks and their deliveries round-trip; deleting a webhook deletes its
// deliveries, and deleting its domain deletes the webhook.
func testWebhooks(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	failing := t0.Add(time.Minute)
	w := &tokend.Webhook{AccountID: a.ID, URL: "https://hooks.example.org/in", EventTypes: []string{"delivery", "bounce"}, DomainID: d.ID,
		PayloadFormat: "jsonlines", Active: true, SealedSecret: []byte{1, 2, 3}, FailingSince: &failing, CreatedAt: t0, UpdatedAt: t0}
	all := &tokend.Webhook{AccountID: a.ID, URL: "https://all.example.org/", EventTypes: []string{"reject"}, PayloadFormat: "json",
		SealedSecret: []byte{4}, CreatedAt: t0, UpdatedAt: t0}
	write(t, s, func(tx tokend.Tx) error {
		if err := tx.CreateWebhook(ctx, w); err != nil {
			return err
		}
		return tx.CreateWebhook(ctx, all)
	})
	msgs := storeEmail(t, s, liveEmail(a.ID, 7, d.ID, "a@example.com", "Hi", t0), "b@example.org")
	ev := &tokend.EmailEvent{MessageID: msgs[0].ID, AccountID: a.ID, Type: tokend.EmailDelivery, At: t0, Details: tokend.EmailEventDetails{Attempt: 1}}
	del := &tokend.WebhookDelivery{WebhookID: w.ID, AccountID: a.ID, MessageID: msgs[0].ID, EventType: tokend.EmailDelivery, State: tokend.WebhookPending,
		CreatedAt: t0, UpdatedAt: t0}
	write(t, s, func(tx tokend.Tx) error {
		if err := tx.AddEmailEvent(ctx, ev); err != nil {
			return err
		}
		del.EventID = ev.ID
		return tx.CreateWebhookDelivery(ctx, del)
	})
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Webhook(ctx, w.ID)
		if err != nil {
			return err
		}
		if got.URL != w.URL || !slices.Equal(got.EventTypes, w.EventTypes) || got.DomainID != d.ID || got.PayloadFormat != "jsonlines" || !got.Active ||
			string(got.SealedSecret) != "\x01\x02\x03" || got.FailingSince == nil || !got.FailingSince.Equal(failing) || got.DeactivatedAt != nil {
			t.Errorf("Webhook = %+v", got)
		}
		list, err := tx.Webhooks(ctx, a.ID)
		if len(list) != 2 || list[0].ID != w.ID || list[1].ID != all.ID || list[1].DomainID != 0 || list[1].Active {
			t.Errorf("Webhooks = %+v", list)
		}
		e, err := tx.EmailEvent(ctx, ev.ID)
		if err != nil || e.MessageID != msgs[0].ID || e.Type != tokend.EmailDelivery || e.Details.Attempt != 1 {
			t.Errorf("EmailEvent = %+v %v", e, err)
		}
		return err
	})
	// A second delivery; both pending, oldest first; an attempt marks both.
	second := &tokend.WebhookDelivery{WebhookID: w.ID, AccountID: a.ID, EventID: ev.ID, MessageID: msgs[0].ID, EventType: tokend.EmailDelivery,
		State: tokend.WebhookPending, CreatedAt: t0, UpdatedAt: t0}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateWebhookDelivery(ctx, second) })
	read(t, s, func(tx tokend.Tx) error {
		list, err := tx.PendingWebhookDeliveries(ctx, w.ID, 10)
		if len(list) != 2 || list[0].ID != del.ID || list[1].ID != second.ID {
			t.Errorf("PendingWebhookDeliveries = %+v", list)
		}
		if list, _ := tx.PendingWebhookDeliveries(ctx, w.ID, 1); len(list) != 1 || list[0].ID != del.ID {
			t.Errorf("PendingWebhookDeliveries limit 1 = %+v", list)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		return tx.MarkWebhookDeliveries(ctx, []int64{del.ID, second.ID}, tokend.WebhookPending, 503, "endpoint answered 503", t0)
	})
	write(t, s, func(tx tokend.Tx) error {
		return tx.MarkWebhookDeliveries(ctx, []int64{second.ID}, tokend.WebhookDelivered, 200, "", t0)
	})
	read(t, s, func(tx tokend.Tx) error {
		a, err := tx.WebhookDelivery(ctx, del.ID)
		if err != nil {
			return err
		}
		b, err := tx.WebhookDelivery(ctx, second.ID)
		if a.Attempts != 1 || a.State != tokend.WebhookPending || a.LastStatus != 503 || b.Attempts != 2 || b.State != tokend.WebhookDelivered || b.LastStatus != 200 {
			t.Errorf("after two attempts: %+v and %+v", a, b)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		// A delivered delivery is not marked again.
		if err := tx.MarkWebhookDeliveries(ctx, []int64{second.ID}, tokend.WebhookFailed, 0, "late", t0); err != nil {
			return err
		}
		_, err := tx.DeleteWebhookDeliveriesBefore(ctx, t0.Add(time.Hour)) // the delivered one goes
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		w.Active, w.FailingSince, w.DeactivatedAt, w.DeactivatedReason = false, nil, &failing, "kept failing"
		if err := tx.UpdateWebhook(ctx, w); err != nil {
			return err
		}
		del.State, del.Attempts, del.LastStatus, del.LastError = tokend.WebhookFailed, 3, 503, "endpoint answered 503"
		return tx.UpdateWebhookDelivery(ctx, del)
	})
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Webhook(ctx, w.ID)
		if err != nil || got.Active || got.FailingSince != nil || got.DeactivatedAt == nil || got.DeactivatedReason != "kept failing" {
			t.Errorf("updated webhook = %+v %v", got, err)
		}
		list, err := tx.WebhookDeliveries(ctx, w.ID, 10)
		if len(list) != 1 || list[0].State != tokend.WebhookFailed || list[0].Attempts != 3 || list[0].LastStatus != 503 || list[0].EventID != ev.ID {
			t.Errorf("WebhookDeliveries = %+v", list)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		if n, err := tx.DeleteWebhookDeliveriesBefore(ctx, t0); err != nil || n != 0 {
			t.Errorf("pruned %d deliveries changed at the cutoff (%v)", n, err)
		}
		n, err := tx.DeleteWebhookDeliveriesBefore(ctx, t0.Add(time.Second))
		if n != 1 {
			t.Errorf("pruned %d final deliveries, want 1", n)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteWebhook(ctx, w.ID) })
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceDomain, d.ID) })
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.WebhookDelivery(ctx, del.ID); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a deleted webhook's delivery: %v", err)
		}
		if list, err := tx.Webhooks(ctx, a.ID); err != nil || len(list) != 1 || list[0].ID != all.ID {
			t.Errorf("Webhooks after the deletes = %+v %v", list, err)
		}
		return nil
	})
}
