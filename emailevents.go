package tokend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// EmailEventType names what happened to a message after it was accepted, in
// the words of Mailtrap's email logs and webhooks.
type EmailEventType string

// The events tokend records. Every message also starts with EmailAccepted,
// which is its creation and is not stored apart.
const (
	EmailAccepted   EmailEventType = "accepted"    // tokend took the message (the send answered)
	EmailDelivery   EmailEventType = "delivery"    // the relay accepted it (a 2xx reply)
	EmailSoftBounce EmailEventType = "soft_bounce" // a temporary failure (4xx, a timeout, no connection); retried
	EmailBounce     EmailEventType = "bounce"      // refused for good (5xx), or given up after retrying
	EmailReject     EmailEventType = "reject"      // never sent: the recipient is on the suppression list
)

// EmailEventDetails say more about an event: the relay's reply for bounces,
// why a message was rejected. Fields that do not apply are empty.
type EmailEventDetails struct {
	// Response is the relay's reply as text ("550 5.1.1 no such user"), or
	// what kept the message from it ("dial tcp ...: connection refused").
	Response string `json:"response,omitempty"`
	// Code and Status are the reply's code (550) and enhanced status (5.1.1).
	Code   int    `json:"code,omitempty"`
	Status string `json:"status,omitempty"`
	// BounceCategory classifies a bounce: bad_mailbox, bad_domain,
	// inactive_mailbox, quota_issues, policy_related, message_expired or other.
	BounceCategory string `json:"bounce_category,omitempty"`
	// RejectReason says why a message was not sent ("suppressed: hard bounce").
	RejectReason string `json:"reject_reason,omitempty"`
	// Attempt is the delivery attempt the event is about (1 for the first).
	Attempt int `json:"attempt,omitempty"`
}

// EmailEvent is one thing that happened to one message.
type EmailEvent struct {
	ID        int64
	MessageID string
	AccountID int64
	Type      EmailEventType
	At        time.Time
	Details   EmailEventDetails
}

// RelayReply is a relay's refusal of one message, or the failure that kept
// the message from it (Code 0): what the dispatcher hands the outbox when a
// delivery attempt fails, so that the message's events can tell a soft bounce
// from a hard one.
type RelayReply struct {
	Code     int    // the SMTP reply code; 0 when there was no reply
	Status   string // the enhanced status code (RFC 3463), "" if the reply had none
	Message  string // the reply's text, or the failure
	Deferred bool   // a 4xx reply or no reply: the message may pass later
}

func (r *RelayReply) Error() string {
	switch {
	case r.Code == 0:
		return r.Message
	case r.Deferred:
		return "relay deferred the message: " + r.text()
	}
	return "relay refused the message: " + r.text()
}

// text is the reply as the relay wrote it: code, enhanced status, text.
func (r *RelayReply) text() string {
	s := fmt.Sprint(r.Code)
	if r.Status != "" {
		s += " " + r.Status
	}
	if r.Message != "" {
		s += " " + r.Message
	}
	return s
}

// bounceCategory classifies a failed delivery by its reply's enhanced status
// code (RFC 3463), or by its code when it has none.
func (r *RelayReply) bounceCategory() string {
	st := r.Status
	switch {
	case st == "" && (r.Code == 550 || r.Code == 551 || r.Code == 553):
		return "bad_mailbox"
	case st == "5.1.2" || st == "5.1.10" || st == "4.1.2":
		return "bad_domain"
	case strings.HasPrefix(st, "5.1."):
		return "bad_mailbox"
	case st == "5.2.1":
		return "inactive_mailbox"
	case st == "5.2.2" || st == "4.2.2" || st == "5.2.3" || st == "4.2.3":
		return "quota_issues"
	case strings.HasPrefix(st, "5.7.") || strings.HasPrefix(st, "4.7."):
		return "policy_related"
	}
	return "other"
}

// hard reports whether a refusal says the address itself cannot receive
// mail (no such mailbox or domain, a disabled mailbox): a hard bounce, which
// puts the recipient on the suppression list.
func (r *RelayReply) hard() bool {
	if r.Deferred || r.Code < 500 {
		return false
	}
	switch r.bounceCategory() {
	case "bad_mailbox", "bad_domain", "inactive_mailbox":
		return true
	}
	return false
}

// failureDetails describes a failed delivery attempt for its event.
func failureDetails(err error, attempt int) EmailEventDetails {
	d := EmailEventDetails{Attempt: attempt}
	var reply *RelayReply
	if errors.As(err, &reply) {
		d.Code, d.Status, d.Response = reply.Code, reply.Status, reply.text()
		if reply.Code == 0 {
			d.Response = reply.Message
		}
		d.BounceCategory = reply.bounceCategory()
		return d
	}
	if err != nil {
		d.Response = err.Error()
	}
	d.BounceCategory = "other"
	return d
}

// recordEmailEvent stores ev, of a message sent from domainID, in tx, with
// a delivery to each webhook that subscribes to it: every event of a message
// goes through here, in the transaction of the change that caused it, so
// that an event is recorded with its deliveries or not at all.
func recordEmailEvent(ctx context.Context, tx Tx, ev *EmailEvent, domainID int64) error {
	if err := tx.AddEmailEvent(ctx, ev); err != nil {
		return err
	}
	_, err := fanOut(ctx, tx, ev, domainID, ev.At)
	return err
}

// deferred records a failed delivery attempt that will be retried: the
// message is deferred, with a soft bounce.
func (m *Mailer) deferred(ctx context.Context, tx Tx, j *Job, cause error, at time.Time) error {
	id := string(j.Payload)
	msg, err := tx.UpdateMessage(ctx, id, MessageDeferred, j.Attempts, errorText(cause), at)
	if ErrorCode(err) == ENOTFOUND {
		return nil // deleted with its account meanwhile
	} else if err != nil {
		return err
	}
	return recordEmailEvent(ctx, tx, &EmailEvent{MessageID: id, AccountID: msg.AccountID, Type: EmailSoftBounce, At: at,
		Details: failureDetails(cause, j.Attempts)}, msg.DomainID)
}

// finished records a message's final state and its event: delivery, or a
// bounce. A hard bounce puts the recipient on the account's suppression
// list for the domain the message was sent from.
func (m *Mailer) finished(ctx context.Context, tx Tx, j *Job, state JobState, cause error, at time.Time) error {
	id := string(j.Payload)
	ms, lastError := MessageDelivered, ""
	if state == JobFailed {
		ms, lastError = MessageFailed, errorText(cause)
	}
	msg, err := tx.UpdateMessage(ctx, id, ms, j.Attempts, lastError, at)
	if ErrorCode(err) == ENOTFOUND {
		return nil // deleted with its account meanwhile
	} else if err != nil {
		return err
	}
	if state == JobDelivered {
		return recordEmailEvent(ctx, tx, &EmailEvent{MessageID: id, AccountID: msg.AccountID, Type: EmailDelivery, At: at,
			Details: EmailEventDetails{Attempt: j.Attempts}}, msg.DomainID)
	}
	details := failureDetails(cause, j.Attempts)
	var reply *RelayReply
	if !errors.As(cause, &reply) || reply.Deferred {
		details.BounceCategory = "message_expired" // retried until the retry time ran out
	}
	if err := recordEmailEvent(ctx, tx, &EmailEvent{MessageID: id, AccountID: msg.AccountID, Type: EmailBounce, At: at, Details: details}, msg.DomainID); err != nil {
		return err
	}
	if reply == nil || !reply.hard() {
		return nil
	}
	e, err := tx.EmailInfo(ctx, msg.EmailID)
	if err != nil {
		return err
	}
	return suppressBounce(ctx, tx, msg, e, details, at)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
