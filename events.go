package tokend

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Token events (a token about to expire, a token found published) leave
// tokend the way alerts do: each is an audit event, written with its follow
// up work in one transaction: the alert webhook's delivery and an email to
// each of the account's dashboard users, as outbox jobs. The event is
// recorded with everything it calls for, or not at all.

// EventOptions say how events are announced.
type EventOptions struct {
	// Alert returns the jobs that announce an event on the alert webhook;
	// nil, or nil jobs, for none.
	Alert func(e *AuditEvent) ([]*Job, error)
	// Alerted is called after such jobs were committed; may be nil.
	Alerted func()
}

// TokenEvents raise events about tokens. Create it with NewTokenEvents.
type TokenEvents struct {
	svc    *Service
	mailer *Mailer
	opts   EventOptions
}

// NewTokenEvents returns the events of svc's tokens, mailed through mailer
// (when it can deliver).
func NewTokenEvents(svc *Service, mailer *Mailer, opts EventOptions) *TokenEvents {
	return &TokenEvents{svc: svc, mailer: mailer, opts: opts}
}

// raise records e in tx with its webhook delivery and an email of subject
// and text to every user of e's account. It reports whether it enqueued
// webhook jobs, for Alerted once the transaction commits.
func (ev *TokenEvents) raise(ctx context.Context, tx Tx, e *AuditEvent, subject, text string) (bool, error) {
	var jobs []*Job
	if ev.opts.Alert != nil {
		var err error
		if jobs, err = ev.opts.Alert(e); err != nil {
			return false, err
		}
	}
	if err := ev.svc.recordEvent(ctx, tx, e, jobs...); err != nil {
		return false, err
	}
	if ev.mailer != nil && ev.mailer.opts.Deliver {
		users, err := tx.Users(ctx, e.AccountID)
		if err != nil {
			return false, err
		}
		for _, u := range users {
			if err := ev.mailer.queueNotice(ctx, tx, Address{Email: u.Email, Name: u.Name}, subject, text, e.At); err != nil {
				return false, err
			}
		}
	}
	return len(jobs) > 0, nil
}

// alerted tells the runners of the webhook and of tokend's own mail that
// an event's jobs were committed.
func (ev *TokenEvents) alerted(webhook bool) {
	if webhook && ev.opts.Alerted != nil {
		ev.opts.Alerted()
	}
	if ev.mailer != nil && ev.mailer.opts.Deliver && ev.mailer.opts.NotifyNotice != nil {
		ev.mailer.opts.NotifyNotice()
	}
}

// queueNotice writes one of tokend's own messages to to as a NoticeJob in
// tx: mail that no caller sends, so it spends no allowance.
func (m *Mailer) queueNotice(ctx context.Context, tx Tx, to Address, subject, text string, now time.Time) error {
	e := &Email{From: m.opts.NoticeFrom, To: []Address{to}, Subject: subject, Text: text}
	if e.From.Email == "" {
		e.From = Address{Email: "no-reply@localhost.localdomain", Name: "tokend"}
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("notice to %s: %w", to.Email, err)
	}
	p := m.render(e, now, false)
	if p.err != nil {
		return p.err
	}
	payload, err := json.Marshal(Notice{MailFrom: e.From.Email, Recipient: to.Email, Raw: p.raw})
	if err != nil {
		return fmt.Errorf("encode notice: %w", err)
	}
	return tx.EnqueueJob(ctx, &Job{Kind: NoticeJob, Payload: payload, NextAttemptAt: now, CreatedAt: now})
}
