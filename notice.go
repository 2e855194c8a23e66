package tokend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
)

// NoticeJob is the outbox kind of tokend's own mail, such as a domain's setup
// instructions: one job per message, whose payload is a Notice in JSON.
const NoticeJob = "notice_email"

// Notice is one of tokend's own messages, rendered, with its envelope.
type Notice struct {
	MailFrom  string `json:"mail_from"`
	Recipient string `json:"recipient"`
	Raw       []byte `json:"raw"`
}

// sendNotice accepts one of tokend's own messages, sent on behalf of caller:
// a live caller's goes out through the relay (as a NoticeJob in the
// outbox, written in the transaction that answers), a test key's is
// captured into its account's test-key sandbox, as its own mail would be.
// e.From is set to the server's notice address.
func (m *Mailer) sendNotice(ctx context.Context, caller *Token, e *Email) error {
	live := caller.Environment == Live
	if live && !m.opts.Deliver {
		return errNoRelay
	}
	e.From = m.opts.NoticeFrom
	if e.From.Email == "" {
		e.From = Address{Email: "no-reply@localhost.localdomain", Name: "tokend"}
	}
	if err := e.Validate(); err != nil {
		return err
	}
	now := m.svc.now()
	p := m.render(e, now, false) // with a Message-ID of its own: no dispatcher adds one
	if p.err != nil {
		return p.err
	}
	// tokend's own mail is mail too: it spends the caller's message allowance.
	n := len(e.Recipients())
	allowance, err := m.opts.Verifier.spendMessages(ctx, caller, n)
	if err != nil {
		return err
	}
	err = m.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		if !live {
			c, err := loadCatalog(ctx, tx, caller.AccountID)
			if err != nil {
				return err
			}
			sb, err := m.captureSandbox(ctx, tx, caller, c)
			if err != nil {
				return err
			}
			if _, err := m.makeRoom(ctx, tx, caller.AccountID, sb, SandboxUsage{Emails: 1, Bytes: int64(len(p.raw))}); err != nil {
				return err
			}
			return m.store1(ctx, tx, caller, &p, Resource{}, sb, now)
		}
		for _, r := range e.Recipients() {
			payload, err := json.Marshal(Notice{MailFrom: e.From.Email, Recipient: r.Email, Raw: p.raw})
			if err != nil {
				return fmt.Errorf("encode notice: %w", err)
			}
			if err := tx.EnqueueJob(ctx, &Job{Kind: NoticeJob, Payload: payload, NextAttemptAt: now, CreatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.opts.Verifier.refundMessages(ctx, caller, n, &allowance)
		return err
	}
	if live && m.opts.NotifyNotice != nil {
		m.opts.NotifyNotice()
	}
	return nil
}

// ParseNoticeAddress reads the address tokend's own mail comes from, such as
// "tokend <tokend@mail.example.com>".
func ParseNoticeAddress(s string) (Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return Address{}, fmt.Errorf("%q is not an email address: %w", s, err)
	}
	return Address{Email: a.Address, Name: a.Name}, nil
}
