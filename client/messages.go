package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Captured mail is read at /api/sandboxes/{sandbox_id}/messages. The caller
// needs viewer on the sandbox to read and admin to mark or delete; a
// sandbox or message it cannot see, or a message of another sandbox, is a
// 404.

// Message is an email captured in a sandbox.
type Message struct {
	ID        int64     `json:"id"`
	SandboxID int64     `json:"sandbox_id"`
	Subject   string    `json:"subject"`
	SentAt    time.Time `json:"sent_at"`
	FromEmail string    `json:"from_email"`
	FromName  string    `json:"from_name"`
	ToEmail   string    `json:"to_email"` // the first recipient
	ToName    string    `json:"to_name"`
	// MailFrom is the envelope sender.
	MailFrom     string    `json:"-"`
	EmailSize    int       `json:"email_size"` // bytes, as captured
	HumanSize    string    `json:"human_size"` // such as "2.1 KB"
	HTMLBodySize int       `json:"html_body_size"`
	TextBodySize int       `json:"text_body_size"`
	IsRead       bool      `json:"is_read"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// UnmarshalJSON reads a message, with its envelope sender from
// smtp_information.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	var v struct {
		plain
		SMTP struct {
			Data struct {
				MailFrom string `json:"mail_from_addr"`
			} `json:"data"`
		} `json:"smtp_information"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = Message(v.plain)
	m.MailFrom = v.SMTP.Data.MailFrom
	return nil
}

// MessageListOptions choose which captured messages ListMessages returns.
type MessageListOptions struct {
	// Page is the page of 30 messages, newest first, from 1 (0: the first).
	Page int
	// LastID, when set, returns the 30 messages older than that one (Page
	// is then ignored).
	LastID int64
	// Search keeps the messages whose subject or first recipient (address
	// or name) contains it, case-insensitive.
	Search string
}

// ListMessages returns up to 30 captured messages of a sandbox, newest first.
func (c *Client) ListMessages(ctx context.Context, sandboxID int64, opts MessageListOptions) ([]Message, error) {
	q := url.Values{}
	if opts.Page != 0 {
		q.Set("page", strconv.Itoa(opts.Page))
	}
	if opts.LastID != 0 {
		q.Set("last_id", strconv.FormatInt(opts.LastID, 10))
	}
	if opts.Search != "" {
		q.Set("search", opts.Search)
	}
	var out []Message
	if err := c.do(ctx, http.MethodGet, messagesPath(sandboxID), q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetMessage returns one captured message.
func (c *Client) GetMessage(ctx context.Context, sandboxID, id int64) (*Message, error) {
	var out Message
	if err := c.do(ctx, http.MethodGet, messagesPath(sandboxID, id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MarkMessageRead sets a captured message's read flag and returns it.
func (c *Client) MarkMessageRead(ctx context.Context, sandboxID, id int64, read bool) (*Message, error) {
	in := struct {
		Message struct {
			IsRead bool `json:"is_read"`
		} `json:"message"`
	}{}
	in.Message.IsRead = read
	var out Message
	if err := c.do(ctx, http.MethodPatch, messagesPath(sandboxID, id), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteMessage deletes a captured message and returns it as it was.
func (c *Client) DeleteMessage(ctx context.Context, sandboxID, id int64) (*Message, error) {
	var out Message
	if err := c.do(ctx, http.MethodDelete, messagesPath(sandboxID, id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BodyPart names one of a captured message's bodies.
type BodyPart string

// The bodies of a captured message.
const (
	BodyHTML       BodyPart = "html"       // the HTML part
	BodyHTMLSource BodyPart = "htmlsource" // the HTML part, served as text
	BodyText       BodyPart = "txt"        // the text part
	BodyRaw        BodyPart = "raw"        // the whole message as captured
	BodyEML        BodyPart = "eml"        // the same, as an .eml download
)

// MessageBody returns one body of a captured message. A part the message
// does not have (BodyHTML of a text-only email) is an *Error with Status
// 409 (http.StatusConflict) and Code "conflict", whose Message says which.
func (c *Client) MessageBody(ctx context.Context, sandboxID, id int64, part BodyPart) ([]byte, error) {
	var b bytes.Buffer
	if err := c.WriteMessageBody(ctx, sandboxID, id, part, &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteMessageBody copies one body of a captured message to w, as
// MessageBody returns it. Nothing is written on an error answer.
func (c *Client) WriteMessageBody(ctx context.Context, sandboxID, id int64, part BodyPart, w io.Writer) error {
	switch part {
	case BodyHTML, BodyHTMLSource, BodyText, BodyRaw, BodyEML:
	default:
		return fmt.Errorf("tokend: message body %q: want html, htmlsource, txt, raw or eml", part)
	}
	return c.download(ctx, messagesPath(sandboxID, id, "body."+string(part)), w)
}

// MessageHeaders returns a captured message's header fields, keyed by name
// in lower case with "-" as "_" (such as "subject", "message_id"); a field
// given more than once keeps its first value.
func (c *Client) MessageHeaders(ctx context.Context, sandboxID, id int64) (map[string]string, error) {
	var out struct {
		Headers map[string]string `json:"headers"`
	}
	if err := c.do(ctx, http.MethodGet, messagesPath(sandboxID, id, "mail_headers"), nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Headers, nil
}

// MessageAttachment is a file attached to a captured message. Ids count
// from 1 in the order the message holds them.
type MessageAttachment struct {
	ID             int64     `json:"id"`
	MessageID      int64     `json:"message_id"`
	Filename       string    `json:"filename"`
	AttachmentType string    `json:"attachment_type"` // "attachment" or "inline"
	ContentType    string    `json:"content_type"`
	ContentID      string    `json:"content_id"`        // "" when none
	Encoding       string    `json:"transfer_encoding"` // "" when none
	Size           int       `json:"attachment_size"`   // bytes, decoded
	HumanSize      string    `json:"attachment_human_size"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// ListAttachments returns a captured message's attachments; kind "" means
// all, "attachment" or "inline" only those.
func (c *Client) ListAttachments(ctx context.Context, sandboxID, messageID int64, kind string) ([]MessageAttachment, error) {
	var q url.Values
	if kind != "" {
		q = url.Values{"attachment_type": {kind}}
	}
	var out []MessageAttachment
	if err := c.do(ctx, http.MethodGet, messagesPath(sandboxID, messageID, "attachments"), q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetAttachment describes one attachment of a captured message.
func (c *Client) GetAttachment(ctx context.Context, sandboxID, messageID, attachmentID int64) (*MessageAttachment, error) {
	var out MessageAttachment
	if err := c.do(ctx, http.MethodGet, messagesPath(sandboxID, messageID, "attachments", attachmentID), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadAttachment copies an attachment's content to w.
func (c *Client) DownloadAttachment(ctx context.Context, sandboxID, messageID, attachmentID int64, w io.Writer) error {
	return c.download(ctx, messagesPath(sandboxID, messageID, "attachments", attachmentID, "download"), w)
}

func messagesPath(sandboxID int64, parts ...any) string {
	return "/api/sandboxes" + joinPath(sandboxID, "messages") + joinPath(parts...)
}

// download copies a raw body to w. A 409 answers in plain text, which
// becomes the *Error's Message.
func (c *Client) download(ctx context.Context, path string, w io.Writer) error {
	res, err := c.send(ctx, c.hc, http.MethodGet, path, nil, nil, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusConflict {
		b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		return &Error{Status: res.StatusCode, Code: "conflict", Message: strings.TrimSpace(string(b))}
	}
	if res.StatusCode/100 != 2 {
		return readError(res)
	}
	if _, err := io.Copy(w, res.Body); err != nil {
		return fmt.Errorf("tokend: GET %s: read body: %w", path, err)
	}
	return nil
}
