package api

import (
	"net/http"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/webhook"
)

// webhookJSON is a webhook in the shape of Mailtrap's, with tokend's
// record of failures beside it.
type webhookJSON struct {
	ID                int64      `json:"id"`
	URL               string     `json:"url"`
	Active            bool       `json:"active"`
	WebhookType       string     `json:"webhook_type"`
	PayloadFormat     string     `json:"payload_format"`
	SendingStream     string     `json:"sending_stream"`
	DomainID          *int64     `json:"domain_id"`
	EventTypes        []string   `json:"event_types"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	FailingSince      *time.Time `json:"failing_since"`
	DeactivatedAt     *time.Time `json:"deactivated_at"`
	DeactivatedReason *string    `json:"deactivated_reason"`
}

// createdWebhookJSON adds the signing secret, shown once, in Mailtrap's
// form and in the Standard Webhooks form (whsec_...), one key for both.
type createdWebhookJSON struct {
	webhookJSON
	SigningSecret          string `json:"signing_secret"`
	StandardWebhooksSecret string `json:"standard_webhooks_secret"`
}

func toWebhook(w *tokend.Webhook) webhookJSON {
	out := webhookJSON{ID: w.ID, URL: w.URL, Active: w.Active, WebhookType: "email_sending", PayloadFormat: w.PayloadFormat,
		SendingStream: "transactional", EventTypes: w.EventTypes, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
		FailingSince: w.FailingSince, DeactivatedAt: w.DeactivatedAt, DeactivatedReason: optionalString(w.DeactivatedReason)}
	if w.DomainID != 0 {
		out.DomainID = &w.DomainID
	}
	if out.EventTypes == nil {
		out.EventTypes = []string{}
	}
	return out
}

type webhookDeliveryJSON struct {
	ID         int64     `json:"id"`
	EventID    int64     `json:"event_id"`
	EventType  string    `json:"event_type"`
	MessageID  string    `json:"message_id"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	LastStatus *int      `json:"last_status"`
	LastError  *string   `json:"last_error"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func toWebhookDelivery(d *tokend.WebhookDelivery) webhookDeliveryJSON {
	out := webhookDeliveryJSON{ID: d.ID, EventID: d.EventID, EventType: string(d.EventType), MessageID: d.MessageID, State: string(d.State),
		Attempts: d.Attempts, LastError: optionalString(d.LastError), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.LastStatus != 0 {
		out.LastStatus = &d.LastStatus
	}
	return out
}

// The API's shapes of webhooks, for the CLI's --json.

// WebhookJSON is a webhook as the webhooks API answers it (in "data").
func WebhookJSON(w *tokend.Webhook) any { return toWebhook(w) }

// CreatedWebhookJSON is a new webhook with its secret, in both forms.
func CreatedWebhookJSON(c *tokend.CreatedWebhook) any { return toCreatedWebhook(c) }

// WebhookDeliveryJSON is a delivery as .../webhooks/{id}/deliveries lists it.
func WebhookDeliveryJSON(d *tokend.WebhookDelivery) any { return toWebhookDelivery(d) }

func toCreatedWebhook(c *tokend.CreatedWebhook) createdWebhookJSON {
	return createdWebhookJSON{webhookJSON: toWebhook(&c.Webhook), SigningSecret: c.Secret, StandardWebhooksSecret: webhook.StandardSecret(c.Secret)}
}

// webhookRequest is the body of a create or an update: {"webhook": {...}}.
type webhookRequest struct {
	Webhook *struct {
		URL           *string   `json:"url"`
		WebhookType   *string   `json:"webhook_type"`
		Active        *bool     `json:"active"`
		PayloadFormat *string   `json:"payload_format"`
		SendingStream *string   `json:"sending_stream"`
		EventTypes    *[]string `json:"event_types"`
		DomainID      *int64    `json:"domain_id"`
		InboundInbox  *int64    `json:"inbound_inbox_id"`
	} `json:"webhook"`
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	list, err := s.opts.Webhooks.List(r.Context(), caller)
	if err != nil {
		return err
	}
	out := make([]webhookJSON, len(list))
	for i := range list {
		out[i] = toWebhook(&list[i])
	}
	encode(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var in webhookRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Webhook == nil {
		return tokend.Invalid("webhook", "is required: send {\"webhook\": {\"url\", \"event_types\", ...}}")
	}
	h := in.Webhook
	if h.InboundInbox != nil {
		return tokend.Invalid("inbound_inbox_id", "is for inbound_receiving webhooks, which tokend does not send")
	}
	created, err := s.opts.Webhooks.Create(r.Context(), caller, tokend.WebhookInput{
		URL: deref(h.URL), WebhookType: deref(h.WebhookType), EventTypes: deref(h.EventTypes), DomainID: deref(h.DomainID),
		PayloadFormat: deref(h.PayloadFormat), SendingStream: deref(h.SendingStream), Active: h.Active})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, map[string]any{"data": toCreatedWebhook(created)})
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	hook, err := s.opts.Webhooks.Get(r.Context(), caller, id)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, map[string]any{"data": toWebhook(hook)})
	return nil
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in webhookRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Webhook == nil {
		return tokend.Invalid("webhook", "is required: send {\"webhook\": {...}} with what changes")
	}
	h := in.Webhook
	var fe tokend.FieldErrors
	for field, given := range map[string]bool{"webhook_type": h.WebhookType != nil, "sending_stream": h.SendingStream != nil, "domain_id": h.DomainID != nil} {
		if given {
			fe.Add(field, "cannot be changed: create a new webhook")
		}
	}
	if err := fe.Err(); err != nil {
		return err
	}
	hook, err := s.opts.Webhooks.Update(r.Context(), caller, id, tokend.WebhookUpdate{URL: h.URL, EventTypes: h.EventTypes,
		PayloadFormat: h.PayloadFormat, Active: h.Active})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, map[string]any{"data": toWebhook(hook)})
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	hook, err := s.opts.Webhooks.Delete(r.Context(), caller, id)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, map[string]any{"data": toWebhook(hook)})
	return nil
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	list, err := s.opts.Webhooks.Deliveries(r.Context(), caller, id)
	if err != nil {
		return err
	}
	out := make([]webhookDeliveryJSON, len(list))
	for i := range list {
		out[i] = toWebhookDelivery(&list[i])
	}
	encode(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (s *Server) resendWebhookDelivery(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	delivery, err := pathID(r, "delivery_id")
	if err != nil {
		return err
	}
	d, err := s.opts.Webhooks.Resend(r.Context(), caller, id, delivery)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, map[string]any{"data": toWebhookDelivery(d)})
	return nil
}
