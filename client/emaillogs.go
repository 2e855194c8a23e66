package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Email logs and suppressions follow Mailtrap's API. Each message (one
// recipient of a send) has a log: where its delivery stands and what
// happened to it. Account admins see every message of the account; other
// tokens the mail of the sending domains they can read and the mail they
// sent themselves, and a token that can read no sending domain gets a 403.

// Email log statuses (EmailLog.Status, Mailtrap's) and delivery states
// (EmailLog.DeliveryStatus, tokend's).
const (
	StatusEnqueued     = "enqueued"      // queued or deferred
	StatusDelivered    = "delivered"     // the relay accepted it
	StatusNotDelivered = "not_delivered" // failed for good
	StatusOptedOut     = "opted_out"     // not relayed: the recipient is suppressed
	StatusCaptured     = "captured"      // in a sandbox

	DeliveryQueued     = "queued"
	DeliveryDeferred   = "deferred" // failed, to be tried again; LastError says why
	DeliveryDelivered  = "delivered"
	DeliveryFailed     = "failed"
	DeliverySuppressed = "suppressed" // its recipient is on the suppression list
	DeliveryCaptured   = "captured"
)

// EmailLog is one message's delivery record.
type EmailLog struct {
	MessageID string `json:"message_id"`
	// RFCMessageID is the Message-ID header the message went out with, such
	// as "<id@example.com>".
	RFCMessageID    string            `json:"rfc_message_id"`
	Status          string            `json:"status"`          // Status* (Mailtrap's)
	DeliveryStatus  string            `json:"delivery_status"` // Delivery* (tokend's)
	Attempts        int               `json:"attempts"`
	LastError       string            `json:"last_error"` // the relay's last refusal, "" when none
	Subject         string            `json:"subject"`
	From            string            `json:"from"`
	To              string            `json:"to"` // this message's one recipient
	SentAt          time.Time         `json:"sent_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	Category        string            `json:"category"`
	CustomVariables map[string]string `json:"custom_variables"`
	SendingStream   string            `json:"sending_stream"` // "transactional"
	// DomainID and SendingDomain are the sending domain of a live message
	// (its id and name); SandboxID and SandboxMessageID (for GetMessage)
	// those of a captured one. 0 and "" otherwise.
	DomainID         int64  `json:"domain_id"`
	SendingDomain    string `json:"sending_domain"`
	SandboxID        int64  `json:"sandbox_id"`
	SandboxMessageID int64  `json:"sandbox_message_id"`
	// APITokenID is the token that sent the message (0 for a person's send
	// from the dashboard).
	APITokenID int64 `json:"api_token_id"`
	// Captured reports a test key's message, captured into the account's
	// "Test key sends" sandbox rather than sent.
	Captured bool `json:"captured"`
	// Events are what happened to the message, oldest first, starting with
	// EventAccepted.
	Events []EmailEvent `json:"events"`
}

// Email event types (EmailEvent.EventType), Mailtrap's.
const (
	EventAccepted   = "accepted"    // tokend took the message: the send answered
	EventDelivery   = "delivery"    // the relay accepted it (a 2xx reply)
	EventSoftBounce = "soft_bounce" // an attempt failed but may pass later (a 4xx reply, no connection); retried
	EventBounce     = "bounce"      // refused for good (5xx), or retried until the retry time ran out
	EventReject     = "reject"      // never sent: the recipient is suppressed
)

// EmailEvent is something that happened to a message: EventAccepted, then
// EventDelivery, EventSoftBounce for each attempt that will be retried,
// EventBounce or EventReject. Details are under Mailtrap's names: "attempt"
// (from 1); for bounces "smtp_code", "email_service_provider_status" (the
// enhanced status, such as "5.1.1"), "email_service_provider_response" (the
// relay's reply) and "bounce_category" (bad_mailbox, bad_domain,
// inactive_mailbox, quota_issues, policy_related, message_expired or
// other); for a reject "reject_reason". What tokend does not record
// ("sending_ip", "recipient_mx") is nil.
type EmailEvent struct {
	EventType string         `json:"event_type"`
	CreatedAt time.Time      `json:"created_at"`
	Details   map[string]any `json:"details"`
}

// GetEmailLog returns the delivery record of a message id from a send's
// answer. The token that sent it may read it, and so may any token that can
// read its sending domain or sandbox; others, and other accounts, get a 404.
func (c *Client) GetEmailLog(ctx context.Context, messageID string) (*EmailLog, error) {
	if err := issuedID("email log", "message id", messageID); err != nil {
		return nil, err
	}
	var out EmailLog
	if err := c.do(ctx, http.MethodGet, "/api/email_logs/"+messageID, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// issuedID refuses, before any request, an id that cannot be one tokend
// issued and would change the path it goes in.
func issuedID(what, kind, id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/?#") {
		return errors.New("tokend: " + what + ": " + kind + " " + strconv.Quote(id) + " is not one tokend issued")
	}
	return nil
}

// LogQuery selects email logs for ListEmailLogs.
type LogQuery struct {
	// SearchAfter continues a listing: the NextPageCursor of the page before.
	SearchAfter string
	// SentAfter and SentBefore bound when the messages were sent; zero:
	// unbounded.
	SentAfter, SentBefore time.Time
	// Filters are Mailtrap's, at most one a field; a message must match
	// every one.
	Filters []LogFilter
}

// LogFilter is one of Mailtrap's email log filters, sent as
// filters[Field][operator] and filters[Field][value][]. The fields and their
// operators:
//
//   - to, from, email_service_provider_response: ci_equal, ci_not_equal,
//     ci_contain, ci_not_contain (case-insensitive text)
//   - subject: the same, and empty, not_empty (no Values)
//   - status: equal, not_equal (Status* values)
//   - events: include_event, not_include_event (Event* types)
//   - category, sending_domain_id, sending_stream: equal, not_equal
//   - opens_count, clicks_count: equal, greater_than, less_than (one number;
//     tokend tracks neither, so both are always 0)
//
// An unknown field or operator, or a value that cannot match, is a 422
// whose Fields name the parameter.
type LogFilter struct {
	Field, Operator string
	Values          []string
}

// EmailLogPage is a page of email logs, newest first.
type EmailLogPage struct {
	Messages []EmailLog `json:"messages"`
	// TotalCount counts the messages the query selects, up to 10,000.
	TotalCount int `json:"total_count"`
	// NextPageCursor continues the listing as LogQuery.SearchAfter; "" on the
	// last page.
	NextPageCursor string `json:"next_page_cursor"`
}

// ListEmailLogs returns a page of up to 50 of the account's email logs that
// the caller can see, newest first, each with its events. Pages hold still
// while mail arrives: following NextPageCursor neither repeats nor skips a
// message. Two filters on one field, or a field that is empty or holds a
// bracket, are refused before any request.
func (c *Client) ListEmailLogs(ctx context.Context, q LogQuery) (*EmailLogPage, error) {
	query, err := q.values()
	if err != nil {
		return nil, err
	}
	path, err := c.accountPath(ctx, "email_logs")
	if err != nil {
		return nil, err
	}
	var out EmailLogPage
	if err := c.do(ctx, http.MethodGet, path, query, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// values is the query as the list route reads it.
func (q LogQuery) values() (url.Values, error) {
	v := url.Values{}
	if q.SearchAfter != "" {
		v.Set("search_after", q.SearchAfter)
	}
	if !q.SentAfter.IsZero() {
		v.Set("filters[sent_after]", q.SentAfter.Format(time.RFC3339Nano))
	}
	if !q.SentBefore.IsZero() {
		v.Set("filters[sent_before]", q.SentBefore.Format(time.RFC3339Nano))
	}
	for _, f := range q.Filters {
		name := "filters[" + f.Field + "]"
		switch {
		case f.Field == "" || strings.ContainsAny(f.Field, "[]"):
			return nil, fmt.Errorf("tokend: email logs: filter field %q is not a field name", f.Field)
		case v.Has(name + "[operator]"):
			return nil, fmt.Errorf("tokend: email logs: two filters on field %q: the API takes one a field", f.Field)
		}
		v.Set(name+"[operator]", f.Operator)
		if len(f.Values) > 0 {
			v[name+"[value][]"] = f.Values
		}
	}
	return v, nil
}

// Suppression types (Suppression.Type and SuppressionInput.Type).
const (
	SuppressionHardBounce   = "hard bounce"    // added by tokend when a relay said the address cannot receive mail
	SuppressionComplaint    = "spam complaint" // the recipient reported the mail as spam
	SuppressionUnsubscribed = "unsubscription"
	SuppressionManual       = "manual import" // the default of one added through the API
)

// Suppression keeps live mail from one address: a send to it is accepted,
// but not relayed to that recipient, whose log says StatusOptedOut with an
// EventReject. One with a DomainID holds for mail from that sending domain;
// one without, for every domain of the account. Test keys' mail is captured
// whatever the list says.
type Suppression struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"` // Suppression*
	Email         string    `json:"email"`
	CreatedAt     time.Time `json:"created_at"`
	SendingStream string    `json:"sending_stream"` // "transactional"
	// DomainID and DomainName are the sending domain it holds for; 0 and ""
	// for every domain.
	DomainID   int64  `json:"domain_id"`
	DomainName string `json:"domain_name"`
	// The Message fields describe the message whose bounce added the
	// suppression; empty for one added through the API.
	MessageID             string     `json:"message_id"`
	MessageCreatedAt      *time.Time `json:"message_created_at"`
	MessageSubject        string     `json:"message_subject"`
	MessageSenderEmail    string     `json:"message_sender_email"`
	MessageCategory       string     `json:"message_category"`
	MessageBounceCategory string     `json:"message_bounce_category"`
	MessageESPResponse    string     `json:"message_esp_response"` // the relay's reply
}

// SuppressionInput is a suppression to add.
type SuppressionInput struct {
	Email string `json:"email"`
	// DomainID suppresses the address for one sending domain (the caller
	// needs admin on it); 0 for every domain (the caller must be account
	// admin).
	DomainID int64 `json:"domain_id,omitempty"`
	// Type is one of the Suppression* types; "" is SuppressionManual.
	Type string `json:"type,omitempty"`
}

// ListSuppressions returns up to 1,000 of the account's suppressions that
// the caller can see, newest first: those of every domain to anyone who can
// read a sending domain, those of a domain to whoever can read it. email,
// when not "", selects one address (case-insensitive).
func (c *Client) ListSuppressions(ctx context.Context, email string) ([]Suppression, error) {
	path, err := c.accountPath(ctx, "suppressions")
	if err != nil {
		return nil, err
	}
	var query url.Values
	if email != "" {
		query = url.Values{"email": {email}}
	}
	var out []Suppression
	if err := c.do(ctx, http.MethodGet, path, query, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AddSuppression puts an address on the suppression list and returns its
// suppression. An address already suppressed there is left as it is, and
// the suppression that holds is returned. Adding and removing are in the
// audit log.
func (c *Client) AddSuppression(ctx context.Context, in SuppressionInput) (*Suppression, error) {
	var out struct {
		Data Suppression `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodPost, in, &out, "suppressions"); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// DeleteSuppression removes a suppression, so its address receives live
// mail again, and returns it as it was. It takes the access AddSuppression
// takes; a suppression the caller cannot see is a 404.
func (c *Client) DeleteSuppression(ctx context.Context, id string) (*Suppression, error) {
	if err := issuedID("suppression", "id", id); err != nil {
		return nil, err
	}
	var out Suppression
	if err := c.inAccount(ctx, http.MethodDelete, nil, &out, "suppressions", id); err != nil {
		return nil, err
	}
	return &out, nil
}
