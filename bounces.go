package tokend

import (
	"context"
	"fmt"
	"strings"
)

// Bounces that come back by mail: with a bounce domain configured, every
// live message leaves with a return path of its own (VERP), and bounce
// messages sent to it (delivery status notifications, RFC 3464, and plain
// ones) reach tokend's MX, which tells Bounces what they say. A bounce
// that comes back by mail counts as the relay's refusal would: an event,
// the message failed, and for a hard bounce its recipient suppressed.

// bounceLocalPrefix starts the local part of every return path.
const bounceLocalPrefix = "bounces+"

// ReturnPath is the envelope sender of the message id when bounces come
// back to bounceDomain: bounces+<message id>@<bounceDomain>.
func ReturnPath(messageID, bounceDomain string) string {
	return bounceLocalPrefix + messageID + "@" + bounceDomain
}

// ReturnPathMessage returns the message id that addr, a return path for
// bounceDomain, names. Only the shape is checked (the message may not
// exist); anything else is not a return path.
func ReturnPathMessage(addr, bounceDomain string) (string, bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], bounceDomain) {
		return "", false
	}
	local := addr[:at]
	if len(local) < len(bounceLocalPrefix) || !strings.EqualFold(local[:len(bounceLocalPrefix)], bounceLocalPrefix) {
		return "", false
	}
	id := strings.ToLower(local[len(bounceLocalPrefix):])
	if !isMessageID(id) {
		return "", false
	}
	return id, true
}

// isMessageID reports whether s has the shape of a message id: a UUID in
// its canonical lower-case form.
func isMessageID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// BounceReport is what a bounce message says about one message.
type BounceReport struct {
	Action     string // failed or delayed; others (delivered, relayed, expanded) are not bounces
	Status     string // the enhanced status code, such as 5.1.1
	Code       int    // the SMTP reply code the remote server gave, 0 if unknown
	Diagnostic string // the remote server's reply as the bounce quotes it
	RemoteMTA  string // the server that refused it, if named
}

// Bounces takes the bounces that come back by mail to one bounce domain.
type Bounces struct {
	svc    *Service
	domain string
}

// NewBounces returns the bounces of messages sent with return paths on
// domain.
func NewBounces(svc *Service, domain string) *Bounces {
	return &Bounces{svc: svc, domain: strings.ToLower(domain)}
}

// Domain is the bounce domain.
func (b *Bounces) Domain() string { return b.domain }

// Recipient returns the message a bounce sent to addr is about, and that
// message's recipient: ENOTFOUND unless addr is the return path of a live
// message this service sent (and still keeps).
func (b *Bounces) Recipient(ctx context.Context, addr string) (id, recipient string, err error) {
	id, ok := ReturnPathMessage(addr, b.domain)
	if !ok {
		return "", "", errNotFound
	}
	err = b.svc.store.Read(ctx, func(tx Tx) error {
		msg, err := tx.Message(ctx, id)
		if err != nil {
			return err
		}
		if msg.State == MessageCaptured || msg.State == MessageSuppressed {
			return errNotFound // never sent: nothing can bounce
		}
		recipient = msg.Recipient
		return nil
	})
	return id, recipient, err
}

// Record records what a bounce says about message id, in one transaction:
// a failure is a bounce event and fails the message (a hard one, such as
// no such mailbox, puts its recipient on the suppression list for its
// domain, as the relay's refusal does); a delay is a soft bounce event.
// A message that already failed records nothing more, so that a bounce
// received twice counts once; other actions record nothing.
func (b *Bounces) Record(ctx context.Context, id string, r BounceReport) error {
	action := strings.ToLower(r.Action)
	if action != "failed" && action != "delayed" {
		return nil
	}
	reply := r.reply()
	return b.svc.store.Write(ctx, func(tx Tx) error {
		msg, err := tx.Message(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return nil // deleted meanwhile, with its account or past the log retention
		} else if err != nil {
			return err
		}
		switch msg.State {
		case MessageFailed, MessageCaptured, MessageSuppressed:
			return nil
		}
		at := b.svc.now()
		details := EmailEventDetails{Code: reply.Code, Status: reply.Status, Response: reply.Message, BounceCategory: reply.bounceCategory(),
			Attempt: msg.Attempts}
		if reply.Deferred {
			return recordEmailEvent(ctx, tx, &EmailEvent{MessageID: id, AccountID: msg.AccountID, Type: EmailSoftBounce, At: at, Details: details}, msg.DomainID)
		}
		if msg, err = tx.UpdateMessage(ctx, id, MessageFailed, msg.Attempts, "bounced: "+reply.Message, at); err != nil {
			return err
		}
		if err := recordEmailEvent(ctx, tx, &EmailEvent{MessageID: id, AccountID: msg.AccountID, Type: EmailBounce, At: at, Details: details}, msg.DomainID); err != nil {
			return err
		}
		if !reply.hard() {
			return nil
		}
		e, err := tx.EmailInfo(ctx, msg.EmailID)
		if err != nil {
			return err
		}
		return suppressBounce(ctx, tx, msg, e, details, at)
	})
}

// reply is the report as a relay's reply: the code the remote server gave,
// or one of the status's class.
func (r *BounceReport) reply() *RelayReply {
	deferred := strings.EqualFold(r.Action, "delayed")
	code := r.Code
	if code < 400 || code > 599 {
		code = 550
		if deferred {
			code = 450
		}
	}
	msg := r.Diagnostic
	if msg == "" {
		msg = "status " + r.Status
	}
	if r.RemoteMTA != "" {
		msg = fmt.Sprintf("%s (reported for %s)", msg, r.RemoteMTA)
	}
	return &RelayReply{Code: code, Status: r.Status, Message: msg, Deferred: deferred}
}
