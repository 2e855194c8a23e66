package client

import (
	"context"
	"net/http"
	"time"
)

// Webhooks send an account's email events to an endpoint as they happen, in
// the shape of Mailtrap's email sending webhooks: one event a POST, signed
// with the webhook's secret twice (Mailtrap-Signature, and Standard
// Webhooks' webhook-id, webhook-timestamp and webhook-signature), delivered
// at least once and in order for each message, retried while the endpoint
// fails. A webhook of one sending domain takes admin on it; one of every
// domain takes an account admin; whoever can read the domain (or the
// account) can read the webhook. Others get a 404.

// Payload formats (WebhookInput.PayloadFormat).
const (
	PayloadJSON      = "json"      // {"events": [...]}, Content-Type: application/json
	PayloadJSONLines = "jsonlines" // one event a line, Content-Type: application/jsonl
)

// Webhook delivery states (WebhookDelivery.State).
const (
	WebhookPending   = "pending"   // waiting to be sent, or retried after a failed attempt
	WebhookDelivered = "delivered" // the endpoint answered 2xx
	WebhookFailed    = "failed"    // given up: the retry time ran out
)

// Webhook is an endpoint that receives the account's email events.
type Webhook struct {
	ID     int64  `json:"id"`
	URL    string `json:"url"`
	Active bool   `json:"active"`
	// WebhookType is "email_sending", SendingStream "transactional": the
	// only ones tokend sends.
	WebhookType   string `json:"webhook_type"`
	SendingStream string `json:"sending_stream"`
	PayloadFormat string `json:"payload_format"` // PayloadJSON or PayloadJSONLines
	// DomainID is the sending domain whose mail's events it gets; 0 for
	// every domain of the account.
	DomainID int64 `json:"domain_id"`
	// EventTypes are the events it gets: of EventDelivery, EventSoftBounce,
	// EventBounce and EventReject, the ones tokend sends (Mailtrap's other
	// types are accepted, and never sent).
	EventTypes []string  `json:"event_types"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// FailingSince is when its deliveries started failing with no success
	// since; nil while they succeed.
	FailingSince *time.Time `json:"failing_since"`
	// DeactivatedAt and DeactivatedReason say why tokend deactivated an
	// endpoint that failed every delivery for too long (nil and "" unless
	// it did); reactivating it (Active: true) clears them and sends the
	// deliveries that wait.
	DeactivatedAt     *time.Time `json:"deactivated_at"`
	DeactivatedReason string     `json:"deactivated_reason"`
}

// CreatedWebhook is a new webhook with its signing secret, which tokend
// shows this once: store it where the endpoint verifies deliveries.
type CreatedWebhook struct {
	Webhook
	// SigningSecret is the secret, 64 hex characters: the key of
	// Mailtrap-Signature, the lowercase hex HMAC-SHA256 of the body.
	SigningSecret string `json:"signing_secret"`
	// StandardWebhooksSecret is the same key in the Standard Webhooks form,
	// "whsec_" + base64 of the secret's bytes, for their libraries.
	StandardWebhooksSecret string `json:"standard_webhooks_secret"`
}

// WebhookInput is a webhook to create.
type WebhookInput struct {
	// URL is the endpoint: https:// (the operator may allow http:// to
	// loopback hosts), never a private or internal address unless the
	// operator allows it. Refused URLs are a 422 whose Fields["url"] says why.
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"` // at least one
	// DomainID limits it to one sending domain's mail (the caller needs
	// admin on it); 0 for every domain (the caller must be account admin).
	DomainID      int64  `json:"domain_id,omitempty"`
	PayloadFormat string `json:"payload_format,omitempty"` // "" is PayloadJSON
	// Active false creates it inactive: nothing is sent to it until it is
	// activated. nil: active.
	Active *bool `json:"active,omitempty"`
}

// WebhookUpdate changes a webhook; what is nil stays as it is. The sending
// domain cannot change: create another webhook.
type WebhookUpdate struct {
	URL *string `json:"url,omitempty"`
	// EventTypes replace the ones it has; nil (or empty) leaves them.
	EventTypes    []string `json:"event_types,omitempty"`
	PayloadFormat *string  `json:"payload_format,omitempty"`
	// Active true (re)activates it, clearing tokend's deactivation; false
	// stops its deliveries, which wait, within the retry time, until it is
	// active again.
	Active *bool `json:"active,omitempty"`
}

// WebhookDelivery is one event sent, or to be sent, to one webhook.
type WebhookDelivery struct {
	ID        int64  `json:"id"`
	EventID   int64  `json:"event_id"`
	EventType string `json:"event_type"` // EventDelivery, EventSoftBounce, EventBounce or EventReject
	MessageID string `json:"message_id"` // the message whose event it is, for GetEmailLog
	State     string `json:"state"`      // WebhookPending, WebhookDelivered or WebhookFailed
	Attempts  int    `json:"attempts"`
	// LastStatus is the endpoint's answer to the last failed attempt; 0
	// for none (no answer, not tried yet, or delivered).
	LastStatus int       `json:"last_status"`
	LastError  string    `json:"last_error"` // why the last attempt failed; "" for none
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ListWebhooks returns the account's webhooks the caller can read, oldest
// first.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Data []Webhook `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "webhooks"); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// GetWebhook returns one webhook, without its secret.
func (c *Client) GetWebhook(ctx context.Context, id int64) (*Webhook, error) {
	var out struct {
		Data Webhook `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "webhooks", id); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// CreateWebhook adds a webhook and returns it with its signing secret, in
// both forms, shown this once. An account has at most 20 webhooks. Creating,
// changing and deleting webhooks are in the audit log.
func (c *Client) CreateWebhook(ctx context.Context, in WebhookInput) (*CreatedWebhook, error) {
	var out struct {
		Data CreatedWebhook `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodPost, webhookBody{in}, &out, "webhooks"); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// UpdateWebhook changes a webhook and returns it as it now is. It takes the
// access CreateWebhook takes.
func (c *Client) UpdateWebhook(ctx context.Context, id int64, u WebhookUpdate) (*Webhook, error) {
	var out struct {
		Data Webhook `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodPatch, webhookBody{u}, &out, "webhooks", id); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// DeleteWebhook deletes a webhook, and the deliveries waiting for it, and
// returns it as it was.
func (c *Client) DeleteWebhook(ctx context.Context, id int64) (*Webhook, error) {
	var out struct {
		Data Webhook `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodDelete, nil, &out, "webhooks", id); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// WebhookDeliveries returns a webhook's last 100 deliveries, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id int64) ([]WebhookDelivery, error) {
	var out struct {
		Data []WebhookDelivery `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "webhooks", id, "deliveries"); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// ResendWebhookDelivery sends a delivery's event to its webhook again, as a
// new delivery (whatever became of the first), and returns the new one. It
// takes the access UpdateWebhook takes; an event gone with its message
// (past the email log retention) is a 422.
func (c *Client) ResendWebhookDelivery(ctx context.Context, id, deliveryID int64) (*WebhookDelivery, error) {
	var out struct {
		Data WebhookDelivery `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodPost, nil, &out, "webhooks", id, "deliveries", deliveryID, "resend"); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// webhookBody is the body of a create or an update: {"webhook": {...}}.
type webhookBody struct {
	Webhook any `json:"webhook"`
}
