package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Sending takes Mailtrap's request shapes. Its errors are *Error like any
// other, but the sending routes answer {"success": false, "errors": [...]}
// with no code of their own: Code is named for the status (bad_request for
// an email that does not validate, unauthorized, forbidden, not_found,
// rate_limited with RetryAfter, too_large, unavailable when tokend has no
// relay for live mail) and Message joins the messages, each such as
// "'from' is required". Fields stays empty.

// Address is a mailbox.
type Address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Attachment is a file sent with an email.
type Attachment struct {
	Filename string `json:"filename"`
	Content  []byte `json:"content"`        // sent as base64
	Type     string `json:"type,omitempty"` // MIME type; from the file name when empty
	// Disposition is "attachment" (the default when empty) or "inline".
	Disposition string `json:"disposition,omitempty"`
	// ContentID names an inline attachment for the HTML's cid: references.
	ContentID string `json:"content_id,omitempty"`
}

// Email is one email to send, or a batch's base or item. It needs From (on
// a sending domain the caller is admin on, except for sandbox sends), a
// Subject, at least one recipient and Text or HTML; at most 10 MiB as
// delivered. Each recipient gets a message of its own, with its own id.
type Email struct {
	From        Address           `json:"from,omitzero"`
	To          []Address         `json:"to,omitempty"`
	Cc          []Address         `json:"cc,omitempty"`
	Bcc         []Address         `json:"bcc,omitempty"`
	ReplyTo     *Address          `json:"reply_to,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	Text        string            `json:"text,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Category    string            `json:"category,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	// CustomVariables are kept with the message and shown in its log.
	CustomVariables map[string]string `json:"custom_variables,omitempty"`
	// IdempotencyKey, when set, makes Send and SendToSandbox safe to retry
	// (see "Retrying a send safely" in docs/sending.md): it goes in the
	// Idempotency-Key header, 1 to 255 printable ASCII characters unique per
	// account. The same key with the same email within 24 hours answers as
	// the first send did, with SendResult.Replayed set, and sends nothing
	// more; with a different email it is a 422 with Code
	// "idempotency_key_reused". It is not part of the email: a batch's base
	// and items ignore it (Batch.IdempotencyKey keys a batch).
	IdempotencyKey string `json:"-"`
}

// SendResult is an accepted send: the ids of its messages, one a recipient
// (To, then Cc, then Bcc), for GetEmailLog.
type SendResult struct {
	Success    bool     `json:"success"`
	MessageIDs []string `json:"message_ids"`
	// Replayed reports that the answer repeats an earlier send's under the
	// same IdempotencyKey (the Idempotent-Replayed header): nothing was sent.
	Replayed bool `json:"-"`
}

// Batch is up to 500 emails sent in one request. Each of Requests is laid
// over Base: the fields it sets replace Base's, and its recipients are its own.
type Batch struct {
	Base     *Email  `json:"base,omitempty"`
	Requests []Email `json:"requests"`
	// IdempotencyKey makes the batch as a whole safe to retry, as
	// Email.IdempotencyKey does one email.
	IdempotencyKey string `json:"-"`
}

// BatchResult answers a batch item by item, in the order of its requests.
type BatchResult struct {
	Success   bool              `json:"success"`
	Responses []BatchItemResult `json:"responses"`
	// Replayed reports that the answer repeats an earlier batch's under the
	// same IdempotencyKey: nothing was sent.
	Replayed bool `json:"-"`
}

// BatchItemResult is the outcome of one email of a batch.
type BatchItemResult struct {
	Success    bool     `json:"success"`
	MessageIDs []string `json:"message_ids"` // when Success
	Errors     []string `json:"errors"`      // when not, such as "'to' or 'cc' or 'bcc' address is required"
}

// Err is nil for an accepted item, else an error holding its messages.
func (r BatchItemResult) Err() error {
	if r.Success {
		return nil
	}
	return errors.New("tokend: batch item refused: " + strings.Join(r.Errors, "; "))
}

// Send sends one email. A live token's email is queued for delivery through
// tokend's relay (503 when it has none); a test key's is captured in the
// account's "Test key sends" sandbox and never delivered.
func (c *Client) Send(ctx context.Context, e *Email) (*SendResult, error) {
	return c.sendEmail(ctx, "/api/send", e)
}

// SendToSandbox sends one email into a sandbox, where it is captured and
// never delivered (ListMessages reads it back). The sender's domain is not
// checked; the caller needs admin on the sandbox.
func (c *Client) SendToSandbox(ctx context.Context, sandboxID int64, e *Email) (*SendResult, error) {
	return c.sendEmail(ctx, "/api/send"+joinPath(sandboxID), e)
}

func (c *Client) sendEmail(ctx context.Context, path string, e *Email) (*SendResult, error) {
	if e == nil {
		return nil, errors.New("tokend: POST " + path + ": no email")
	}
	var out SendResult
	var err error
	out.Replayed, err = c.sendIdempotent(ctx, path, e.IdempotencyKey, e, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// sendIdempotent posts in to a send route under key (none when ""), decodes
// the answer into out, and reports whether it was replayed.
func (c *Client) sendIdempotent(ctx context.Context, path, key string, in, out any) (bool, error) {
	var header http.Header
	if key != "" {
		header = http.Header{"Idempotency-Key": {key}}
	}
	h, err := c.doHeader(ctx, http.MethodPost, path, nil, header, in, out)
	if err != nil {
		return false, err
	}
	return h.Get("Idempotent-Replayed") == "true", nil
}

// SendBatch sends a batch. An error means the batch as a whole was refused
// (an invalid base, too many requests, too large); otherwise each item's
// outcome is in the result, and those refused were not queued.
func (c *Client) SendBatch(ctx context.Context, b Batch) (*BatchResult, error) {
	return c.sendBatch(ctx, "/api/batch", b)
}

// SendBatchToSandbox sends a batch into a sandbox, as SendToSandbox does one email.
func (c *Client) SendBatchToSandbox(ctx context.Context, sandboxID int64, b Batch) (*BatchResult, error) {
	return c.sendBatch(ctx, "/api/batch"+joinPath(sandboxID), b)
}

func (c *Client) sendBatch(ctx context.Context, path string, b Batch) (*BatchResult, error) {
	if b.Requests == nil {
		b.Requests = []Email{}
	}
	var out BatchResult
	var err error
	out.Replayed, err = c.sendIdempotent(ctx, path, b.IdempotencyKey, b, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// MailSageEmail is the body of MailSage's send: one recipient, Body as the
// text part.
type MailSageEmail struct {
	Recipient Address `json:"recipient"`
	Subject   string  `json:"subject"`
	Body      string  `json:"body,omitempty"`
	HTML      string  `json:"html,omitempty"`
	// From, when nil, is no-reply@ the one sending domain the token is admin
	// on; with none or several, tokend answers 422 with Code "sender_required".
	From *Address `json:"from,omitempty"`
	// IdempotencyKey makes the send safe to retry, as Email.IdempotencyKey
	// does; a key reused with another email is a 422 with Code
	// "idempotency_key_reused".
	IdempotencyKey string `json:"-"`
}

// MailSageResult is MailSage's answer to an accepted send.
type MailSageResult struct {
	Success   bool   `json:"success"`
	MessageID string `json:"message_id"`
	Status    string `json:"status"` // "accepted"
	// Replayed reports that the answer repeats an earlier send's under the
	// same IdempotencyKey: nothing was sent.
	Replayed bool `json:"-"`
}

// SendMailSage sends one email through MailSage's route (POST
// /api/v1/emails/send). Its errors carry MailSage's codes: invalid_request
// (400), sender_required (422), insufficient_permissions (403),
// invalid_api_key, rate_limited, delivery_unavailable, ...
func (c *Client) SendMailSage(ctx context.Context, e MailSageEmail) (*MailSageResult, error) {
	var out MailSageResult
	var err error
	out.Replayed, err = c.sendIdempotent(ctx, "/api/v1/emails/send", e.IdempotencyKey, e, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
