package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/jobs"
)

// Sender is what the dispatcher delivers through: a Relay, or a test double.
type Sender interface {
	Send(ctx context.Context, from, to string, msg []byte) error
}

// Dispatcher delivers the outbox's email jobs: each is one recipient's copy,
// given its own Message-ID (the message id the API answered with, so that a
// copy delivered twice can be told) and DKIM-signed for its domain.
type Dispatcher struct {
	Mailer *tokend.Mailer
	Relay  Sender
}

// signedHeaders are the fields the DKIM signature covers (present or not, so
// that none can be added later without breaking it).
var signedHeaders = []string{"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

// Deliver is the jobs.Handler of tokend.EmailJob jobs. A relay's 5xx reply
// is permanent; anything else is retried by the runner. The runner's log
// line about the attempt names the message id and the sending domain, never
// the recipient: see relayError.
func (d *Dispatcher) Deliver(ctx context.Context, j tokend.Job) error {
	jobs.Annotate(ctx, "message_id", string(j.Payload))
	del, err := d.Mailer.Delivery(ctx, j)
	if errors.Is(err, tokend.ErrNothingToDeliver) {
		jobs.Annotate(ctx, "skipped", "the message is gone with its account, or already final")
		return nil
	} else if err != nil {
		return err
	}
	jobs.Annotate(ctx, "domain", del.Domain)
	msg, err := Sign(del)
	if err != nil {
		return err
	}
	return relayError(d.Relay.Send(ctx, del.MailFrom, del.Recipient, msg))
}

// DeliverNotice is the jobs.Handler of tokend.NoticeJob jobs: tokend's own
// mail, sent as rendered (it carries its own Message-ID and is not signed
// with a customer's key). A relay's 5xx reply is permanent.
func (d *Dispatcher) DeliverNotice(ctx context.Context, j tokend.Job) error {
	var n tokend.Notice
	if err := json.Unmarshal(j.Payload, &n); err != nil {
		return jobs.Permanent(fmt.Errorf("decode notice: %w", err))
	}
	if _, domain, ok := strings.Cut(n.MailFrom, "@"); ok {
		jobs.Annotate(ctx, "domain", domain)
	}
	return relayError(d.Relay.Send(ctx, n.MailFrom, n.Recipient, n.Raw))
}

// relayError is what a delivery's failure is to the runner: permanent for a
// 5xx reply, and fit for the log. A relay's reply often repeats the
// recipient's address, which is personal data: the message's stored last
// error (which its sender can read through the API) keeps the reply whole,
// but its log form has every email address replaced.
func relayError(err error) error {
	if err == nil {
		return nil
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		err = jobs.Permanent(err)
	}
	return logSafeError{err}
}

// logSafeError is an error that logs without the email addresses it holds.
type logSafeError struct{ err error }

func (e logSafeError) Error() string { return e.err.Error() }
func (e logSafeError) Unwrap() error { return e.err }

// LogValue is the error's text with every email address replaced by "<address>".
func (e logSafeError) LogValue() slog.Value {
	return slog.StringValue(emailAddress.ReplaceAllString(e.err.Error(), "<address>"))
}

// emailAddress matches anything shaped like an email address in free text,
// such as a relay's reply "550 5.1.1 <ann@example.org>: no such user".
// The angle brackets around one are replaced with it.
var emailAddress = regexp.MustCompile(`<?[^\s<>()\[\],;:"']+@[^\s<>()\[\],;:"']+>?`)

// Sign returns a delivery's message as it goes out: its DKIM signature,
// its Message-ID unless the stored message has one (a message submitted
// over SMTP with its own), then the stored message.
func Sign(del *tokend.Delivery) ([]byte, error) {
	var msg bytes.Buffer
	msg.Grow(len(del.Raw) + 1024)
	if !hasField(del.Raw, "message-id") {
		msg.WriteString("Message-ID: " + tokend.RFCMessageID(del.MessageID, del.Domain) + "\r\n")
	}
	msg.Write(del.Raw)
	var sig bytes.Buffer
	err := dkim.Sign(&sig, bytes.NewReader(msg.Bytes()), &dkim.SignOptions{
		Domain: del.Domain, Selector: del.Selector, Signer: del.Signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: signedHeaders,
	})
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return sig.Bytes(), nil
}

// hasField reports whether the header of the CRLF message raw has a field
// named name (lower-case).
func hasField(raw []byte, name string) bool {
	for len(raw) > 0 {
		end := bytes.Index(raw, []byte("\r\n"))
		if end <= 0 { // the blank line that ends the header, or no line end
			return false
		}
		line := raw[:end]
		raw = raw[end+2:]
		if colon := bytes.IndexByte(line, ':'); colon > 0 && line[0] != ' ' && line[0] != '\t' &&
			strings.EqualFold(string(bytes.TrimRight(line[:colon], " \t")), name) {
			return true
		}
	}
	return false
}
