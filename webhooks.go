package tokend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// WebhookJob is the outbox kind of webhook requests: a job sends what waits
// for one endpoint, whose id is its payload.
const WebhookJob = "webhook"

// Webhook is an endpoint that receives an account's email events, signed
// with its secret, in the shape of Mailtrap's email sending webhooks.
type Webhook struct {
	ID            int64
	AccountID     int64
	URL           string
	EventTypes    []string // Mailtrap's names: delivery, soft_bounce, bounce, reject, ...
	DomainID      int64    // 0: every sending domain of the account
	PayloadFormat string   // "json" or "jsonlines"
	Active        bool
	SealedSecret  []byte // the signing secret, sealed by the keyring
	// FailingSince is when deliveries started failing without a success
	// since; nil while they succeed.
	FailingSince *time.Time
	// DeactivatedAt and DeactivatedReason say why tokend stopped an
	// endpoint that kept failing; a caller reactivating it clears them.
	DeactivatedAt     *time.Time
	DeactivatedReason string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Webhook limits and timing.
const (
	MaxWebhooksPerAccount = 20
	// WebhookDeactivateAfter is how long an endpoint may keep failing
	// every delivery before tokend deactivates it, by default.
	WebhookDeactivateAfter = 24 * time.Hour
	maxWebhookURL          = 2048
)

// WebhookEventTypes are the event types a webhook may subscribe to: Mailtrap's
// (tokend records delivery, soft_bounce, bounce and reject; the others are
// accepted for compatibility and never sent).
var WebhookEventTypes = []string{"delivery", "soft_bounce", "bounce", "suspension", "unsubscribe", "open", "spam_complaint", "click", "reject"}

// WebhookDeliveryState is where one delivery of an event to an endpoint stands.
type WebhookDeliveryState string

// Delivery states, as jobs have them.
const (
	WebhookPending   WebhookDeliveryState = "pending"
	WebhookDelivered WebhookDeliveryState = "delivered"
	WebhookFailed    WebhookDeliveryState = "failed"
)

// WebhookDelivery is one event sent (or to be sent) to one endpoint.
type WebhookDelivery struct {
	ID         int64
	WebhookID  int64
	AccountID  int64
	EventID    int64
	MessageID  string
	EventType  EmailEventType
	State      WebhookDeliveryState
	Attempts   int
	LastStatus int    // the endpoint's last HTTP status; 0 for none (no answer, or not tried yet)
	LastError  string // why the last attempt failed
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// WebhookResponse is an endpoint's answer to a delivery that failed, as the
// dispatcher hands it to the outbox.
type WebhookResponse struct {
	DeliveryIDs []int64 // what the request carried
	Status      int     // 0: no answer (refused, timed out)
	Err         string
	// Permanent says no retry can pass: the operator's policy refuses the
	// endpoint's address. The endpoint is deactivated at once.
	Permanent bool
}

func (r *WebhookResponse) Error() string { return r.Err }

// WebhookTx is the webhook part of a transaction.
type WebhookTx interface {
	CreateWebhook(ctx context.Context, w *Webhook) error
	Webhook(ctx context.Context, id int64) (*Webhook, error)
	// Webhooks lists an account's webhooks, oldest first.
	Webhooks(ctx context.Context, accountID int64) ([]Webhook, error)
	// UpdateWebhook stores w's URL, event types, format, state and failure record.
	UpdateWebhook(ctx context.Context, w *Webhook) error
	// DeleteWebhook deletes a webhook and its deliveries.
	DeleteWebhook(ctx context.Context, id int64) error

	// CreateWebhookDelivery inserts d and sets its ID.
	CreateWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	WebhookDelivery(ctx context.Context, id int64) (*WebhookDelivery, error)
	// UpdateWebhookDelivery records an attempt's outcome.
	UpdateWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	// WebhookDeliveries lists up to limit deliveries of a webhook, newest first.
	WebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]WebhookDelivery, error)
	// PendingWebhookDeliveries lists up to limit pending deliveries of a
	// webhook, oldest first.
	PendingWebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]WebhookDelivery, error)
	// MarkWebhookDeliveries records an attempt on pending deliveries: one
	// more attempt each, the state they move to, the endpoint's status
	// (0: none) and the error (""), at at.
	MarkWebhookDeliveries(ctx context.Context, ids []int64, state WebhookDeliveryState, status int, lastError string, at time.Time) error
	// EmailEvent returns one event.
	EmailEvent(ctx context.Context, id int64) (*EmailEvent, error)
	// DeleteWebhookDeliveriesBefore deletes delivered and failed deliveries
	// last changed before cutoff.
	DeleteWebhookDeliveriesBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// WebhookOptions configure Webhooks.
type WebhookOptions struct {
	// CheckURL says what is wrong with an endpoint's URL under the
	// operator's policy ("" if nothing).
	CheckURL func(url string) string
	// Notify is called after a commit that queued deliveries; may be nil.
	Notify func()
	// Events announce an endpoint deactivated for failing (audit, alert
	// webhook, email to the account's users); may be nil.
	Events *TokenEvents
	// DeactivateAfter is how long an endpoint may fail every delivery
	// before it is deactivated (default WebhookDeactivateAfter).
	DeactivateAfter time.Duration
}

// Webhooks manage the endpoints that receive email events, and hand their
// deliveries to the dispatcher. Create them with NewWebhooks.
type Webhooks struct {
	svc  *Service
	opts WebhookOptions
}

// NewWebhooks returns the webhooks of svc's accounts, and hooks their
// deliveries' outcomes into the outbox.
func NewWebhooks(svc *Service, opts WebhookOptions) *Webhooks {
	if opts.CheckURL == nil {
		opts.CheckURL = func(string) string { return "" }
	}
	if opts.DeactivateAfter <= 0 {
		opts.DeactivateAfter = WebhookDeactivateAfter
	}
	w := &Webhooks{svc: svc, opts: opts}
	svc.outbox.hook(WebhookJob, jobHooks{retried: w.retried, finished: w.finished})
	return w
}

// Audit actions of webhooks.
const (
	ActionWebhookCreated     = "webhook.created"
	ActionWebhookUpdated     = "webhook.updated"
	ActionWebhookDeleted     = "webhook.deleted"
	ActionWebhookDeactivated = ActionAlertPrefix + "webhook_deactivated"
)

// WebhookInput is a new webhook as a caller describes it.
type WebhookInput struct {
	URL           string
	WebhookType   string // "email_sending" (the default)
	EventTypes    []string
	DomainID      int64
	PayloadFormat string // "json" (the default) or "jsonlines"
	SendingStream string // "transactional" (the default)
	Active        *bool  // default true
}

// WebhookUpdate changes a webhook; nil fields stay as they are.
type WebhookUpdate struct {
	URL           *string
	EventTypes    *[]string
	PayloadFormat *string
	Active        *bool
}

// CreatedWebhook is a new webhook with its signing secret, shown this once.
type CreatedWebhook struct {
	Webhook
	Secret string
}

func (w *Webhooks) checkURL(fe *FieldErrors, url string) {
	switch {
	case url == "":
		fe.Add("url", "can't be blank")
	case len(url) > maxWebhookURL:
		fe.Add("url", fmt.Sprintf("is too long (maximum is %d characters)", maxWebhookURL))
	default:
		if problem := w.opts.CheckURL(url); problem != "" {
			fe.Add("url", problem)
		}
	}
}

func checkEventTypes(fe *FieldErrors, types []string) []string {
	if len(types) == 0 {
		fe.Add("event_types", "can't be blank")
		return nil
	}
	var out []string
	for _, t := range types {
		if !slices.Contains(WebhookEventTypes, t) {
			fe.Add("event_types", fmt.Sprintf("%q is not an event type: use %v", t, WebhookEventTypes))
			continue
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func checkPayloadFormat(fe *FieldErrors, f string) string {
	switch f {
	case "":
		return "json"
	case "json", "jsonlines":
		return f
	}
	fe.Add("payload_format", "must be json or jsonlines")
	return f
}

// access says whether caller may read hook (viewer on its domain, or on the
// account for a webhook of every domain) or, with change, change it (admin
// there). A webhook the caller cannot read is ENOTFOUND.
func (w *Webhooks) access(ctx context.Context, tx Tx, caller *Token, hook *Webhook, change bool) error {
	if hook.AccountID != caller.AccountID {
		return errNotFound
	}
	if hook.DomainID == 0 {
		l := caller.LevelOn(accountResource(caller.AccountID))
		switch {
		case l < Viewer:
			return errNotFound
		case change && l != Admin:
			return Errorf(EFORBIDDEN, "Changing a webhook of every sending domain needs account admin access")
		}
		return nil
	}
	if change {
		_, err := adminResource(ctx, tx, caller, ResourceDomain, hook.DomainID, "change the webhooks of")
		return err
	}
	_, err := readableResource(ctx, tx, caller, ResourceDomain, hook.DomainID)
	return err
}

// Create adds a webhook: for one sending domain, on which the caller must be
// admin, or for every domain, which takes an account admin. A domain_id that
// does not exist, or names a domain the caller cannot read, is EINVALID (the
// same for both). Its signing secret is returned this once and stored sealed.
func (w *Webhooks) Create(ctx context.Context, caller *Token, in WebhookInput) (*CreatedWebhook, error) {
	var fe FieldErrors
	w.checkURL(&fe, in.URL)
	switch in.WebhookType {
	case "", "email_sending":
	default:
		fe.Add("webhook_type", "must be email_sending: tokend sends email events only")
	}
	types := checkEventTypes(&fe, in.EventTypes)
	format := checkPayloadFormat(&fe, in.PayloadFormat)
	switch in.SendingStream {
	case "", "transactional":
	default:
		fe.Add("sending_stream", "must be transactional: tokend sends no bulk stream")
	}
	if in.DomainID < 0 {
		fe.Add("domain_id", "must be a sending domain's id")
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	secret := newWebhookSecret()
	var out *CreatedWebhook
	err := w.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		now := w.svc.now()
		hook := &Webhook{AccountID: caller.AccountID, URL: in.URL, EventTypes: types, DomainID: in.DomainID, PayloadFormat: format,
			Active: in.Active == nil || *in.Active, SealedSecret: w.svc.opts.Keyring.Seal(webhookSecretPurpose, []byte(secret)),
			CreatedAt: now, UpdatedAt: now}
		if hook.DomainID == 0 && !caller.IsAccountAdmin() {
			return Errorf(EFORBIDDEN, "A webhook of every sending domain needs account admin access: give domain_id for one domain's events")
		}
		if hook.DomainID != 0 {
			if _, err := bodyDomain(ctx, tx, caller, hook.DomainID, "change the webhooks of"); err != nil {
				return err
			}
		} else if err := w.access(ctx, tx, caller, hook, true); err != nil {
			return err
		}
		existing, err := tx.Webhooks(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		if len(existing) >= MaxWebhooksPerAccount {
			return Invalid("base", fmt.Sprintf("an account has at most %d webhooks", MaxWebhooksPerAccount))
		}
		if err := tx.CreateWebhook(ctx, hook); err != nil {
			return err
		}
		out = &CreatedWebhook{Webhook: *hook, Secret: secret}
		return w.svc.audit(ctx, tx, caller.AccountID, caller, "", ActionWebhookCreated, "webhook", hook.ID, webhookDetails(hook))
	})
	return out, err
}

const webhookSecretPurpose = "webhook signing secret"

// newWebhookSecret returns 32 random bytes as 64 hex characters.
func newWebhookSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func webhookDetails(h *Webhook) map[string]any {
	d := map[string]any{"url": h.URL, "event_types": h.EventTypes, "payload_format": h.PayloadFormat, "active": h.Active}
	if h.DomainID != 0 {
		d["domain_id"] = h.DomainID
	}
	return d
}

// List returns the webhooks the caller can read, oldest first.
func (w *Webhooks) List(ctx context.Context, caller *Token) ([]Webhook, error) {
	out := []Webhook{}
	err := w.svc.store.Read(ctx, func(tx Tx) error {
		all, err := tx.Webhooks(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		for i := range all {
			if err := w.access(ctx, tx, caller, &all[i], false); err == nil {
				out = append(out, all[i])
			} else if ErrorCode(err) != ENOTFOUND {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Get returns one webhook the caller can read.
func (w *Webhooks) Get(ctx context.Context, caller *Token, id int64) (*Webhook, error) {
	var out *Webhook
	err := w.svc.store.Read(ctx, func(tx Tx) error {
		var err error
		out, err = w.load(ctx, tx, caller, id, false)
		return err
	})
	return out, err
}

func (w *Webhooks) load(ctx context.Context, tx Tx, caller *Token, id int64, change bool) (*Webhook, error) {
	hook, err := tx.Webhook(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, errNotFound
	} else if err != nil {
		return nil, err
	}
	if err := w.access(ctx, tx, caller, hook, change); err != nil {
		return nil, err
	}
	return hook, nil
}

// Update changes a webhook's URL, event types, format or state. Reactivating
// an endpoint tokend deactivated clears its failure record; deliveries still
// waiting are sent.
func (w *Webhooks) Update(ctx context.Context, caller *Token, id int64, u WebhookUpdate) (*Webhook, error) {
	var fe FieldErrors
	if u.URL != nil {
		w.checkURL(&fe, *u.URL)
	}
	var types []string
	if u.EventTypes != nil {
		types = checkEventTypes(&fe, *u.EventTypes)
	}
	var format string
	if u.PayloadFormat != nil {
		format = checkPayloadFormat(&fe, *u.PayloadFormat)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	var out *Webhook
	err := w.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		hook, err := w.load(ctx, tx, caller, id, true)
		if err != nil {
			return err
		}
		if u.URL != nil {
			hook.URL = *u.URL
		}
		if u.EventTypes != nil {
			hook.EventTypes = types
		}
		if u.PayloadFormat != nil {
			hook.PayloadFormat = format
		}
		if u.Active != nil {
			if *u.Active && !hook.Active {
				hook.FailingSince, hook.DeactivatedAt, hook.DeactivatedReason = nil, nil, ""
			}
			hook.Active = *u.Active
		}
		hook.UpdatedAt = w.svc.now()
		if err := tx.UpdateWebhook(ctx, hook); err != nil {
			return err
		}
		out = hook
		return w.svc.audit(ctx, tx, caller.AccountID, caller, "", ActionWebhookUpdated, "webhook", hook.ID, webhookDetails(hook))
	})
	if err == nil && out.Active && w.opts.Notify != nil {
		w.opts.Notify()
	}
	return out, err
}

// Delete removes a webhook and what waits to be delivered to it.
func (w *Webhooks) Delete(ctx context.Context, caller *Token, id int64) (*Webhook, error) {
	var out *Webhook
	err := w.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		hook, err := w.load(ctx, tx, caller, id, true)
		if err != nil {
			return err
		}
		if err := tx.DeleteWebhook(ctx, id); err != nil {
			return err
		}
		out = hook
		return w.svc.audit(ctx, tx, caller.AccountID, caller, "", ActionWebhookDeleted, "webhook", hook.ID, webhookDetails(hook))
	})
	return out, err
}

// MaxWebhookDeliveriesListed bounds Deliveries.
const MaxWebhookDeliveriesListed = 100

// Deliveries returns a webhook's recent deliveries, newest first.
func (w *Webhooks) Deliveries(ctx context.Context, caller *Token, id int64) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	err := w.svc.store.Read(ctx, func(tx Tx) error {
		if _, err := w.load(ctx, tx, caller, id, false); err != nil {
			return err
		}
		var err error
		out, err = tx.WebhookDeliveries(ctx, id, MaxWebhookDeliveriesListed)
		return err
	})
	if out == nil {
		out = []WebhookDelivery{}
	}
	return out, err
}

// Resend delivers an event to a webhook again, as a new delivery (whatever
// became of the first), and returns it.
func (w *Webhooks) Resend(ctx context.Context, caller *Token, id, deliveryID int64) (*WebhookDelivery, error) {
	var out *WebhookDelivery
	err := w.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		hook, err := w.load(ctx, tx, caller, id, true)
		if err != nil {
			return err
		}
		d, err := tx.WebhookDelivery(ctx, deliveryID)
		if ErrorCode(err) == ENOTFOUND || err == nil && d.WebhookID != hook.ID {
			return errNotFound
		} else if err != nil {
			return err
		}
		ev, err := tx.EmailEvent(ctx, d.EventID)
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(EINVALID, "The event of delivery %d is gone with its message (past the email log retention)", deliveryID)
		} else if err != nil {
			return err
		}
		out, err = enqueueWebhookDelivery(ctx, tx, hook, ev, w.svc.now())
		return err
	})
	if err == nil && w.opts.Notify != nil {
		w.opts.Notify()
	}
	return out, err
}

// enqueueWebhookDelivery writes a delivery of ev to hook, and makes sure a
// job will send it: deliveries go in batches, one job at a time for each
// endpoint (its ordering key), each sending what waits for the endpoint, in
// the order the events happened. A job no worker has taken yet will take
// this delivery too; otherwise (none, or one already under way) another is
// queued behind.
func enqueueWebhookDelivery(ctx context.Context, tx Tx, hook *Webhook, ev *EmailEvent, now time.Time) (*WebhookDelivery, error) {
	d := &WebhookDelivery{WebhookID: hook.ID, AccountID: hook.AccountID, EventID: ev.ID, MessageID: ev.MessageID, EventType: ev.Type,
		State: WebhookPending, CreatedAt: now, UpdatedAt: now}
	if err := tx.CreateWebhookDelivery(ctx, d); err != nil {
		return nil, err
	}
	key := webhookJobKey(hook.ID)
	waiting, err := tx.UnclaimedJob(ctx, WebhookJob, key)
	if err != nil || waiting {
		return d, err
	}
	return d, tx.EnqueueJob(ctx, &Job{Kind: WebhookJob, Payload: []byte(strconv.FormatInt(hook.ID, 10)), NextAttemptAt: now, CreatedAt: now, OrderingKey: key})
}

func webhookJobKey(webhookID int64) string { return "webhook:" + strconv.FormatInt(webhookID, 10) }

// fanOut queues ev for every active webhook of its account that subscribes
// to it, for the message's domain, and reports whether it queued any.
func fanOut(ctx context.Context, tx Tx, ev *EmailEvent, domainID int64, now time.Time) (bool, error) {
	hooks, err := tx.Webhooks(ctx, ev.AccountID)
	if err != nil || len(hooks) == 0 {
		return false, err
	}
	queued := false
	for i := range hooks {
		h := &hooks[i]
		if !h.Active || h.DomainID != 0 && h.DomainID != domainID || !slices.Contains(h.EventTypes, string(ev.Type)) {
			continue
		}
		if _, err := enqueueWebhookDelivery(ctx, tx, h, ev, now); err != nil {
			return false, err
		}
		queued = true
	}
	return queued, nil
}

// MaxWebhookBatch bounds the events of one webhook request.
const MaxWebhookBatch = 100

// OutgoingWebhook is one request to an endpoint: a batch of its waiting
// deliveries, oldest first, as the dispatcher sends it.
type OutgoingWebhook struct {
	WebhookID   int64
	DeliveryIDs []int64
	URL         string
	Secret      string
	ID          string // the request's id for the receiver: the same for the same batch on every attempt
	ContentType string
	Body        []byte
}

// errWebhookInactive defers a delivery to an endpoint that is not active:
// it is sent if the endpoint is reactivated within the retry time.
var errWebhookInactive = errors.New("the webhook is inactive: its deliveries wait until it is reactivated")

// Outgoing returns the request a job asks for: up to MaxWebhookBatch of the
// endpoint's waiting deliveries. ErrNothingToDeliver when the webhook is
// gone or nothing waits; a retryable error while the webhook is inactive.
func (w *Webhooks) Outgoing(ctx context.Context, j Job) (*OutgoingWebhook, error) {
	id, err := strconv.ParseInt(string(j.Payload), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("webhook job %d: payload %q: %w", j.ID, j.Payload, err)
	}
	var out *OutgoingWebhook
	err = w.svc.store.Read(ctx, func(tx Tx) error {
		hook, err := tx.Webhook(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return ErrNothingToDeliver
		} else if err != nil {
			return err
		}
		if !hook.Active {
			return errWebhookInactive
		}
		waiting, err := tx.PendingWebhookDeliveries(ctx, hook.ID, MaxWebhookBatch)
		if err != nil {
			return err
		}
		events := make([]map[string]any, 0, len(waiting))
		var ids []int64
		for _, d := range waiting {
			ev, err := tx.EmailEvent(ctx, d.EventID)
			if ErrorCode(err) == ENOTFOUND {
				continue // gone with its message, past the log retention
			} else if err != nil {
				return err
			}
			msg, err := tx.Message(ctx, ev.MessageID)
			if ErrorCode(err) == ENOTFOUND {
				continue
			} else if err != nil {
				return err
			}
			e, err := tx.EmailInfo(ctx, msg.EmailID)
			if err != nil {
				return err
			}
			events, ids = append(events, mailtrapEvent(ev, msg, e)), append(ids, d.ID)
		}
		if len(events) == 0 {
			return ErrNothingToDeliver
		}
		secret, err := w.svc.opts.Keyring.Open(webhookSecretPurpose, hook.SealedSecret)
		if err != nil {
			return fmt.Errorf("signing secret of webhook %d: %w", hook.ID, err)
		}
		body, ctype, err := webhookPayload(hook.PayloadFormat, events)
		if err != nil {
			return err
		}
		out = &OutgoingWebhook{WebhookID: hook.ID, DeliveryIDs: ids, URL: hook.URL, Secret: string(secret), ContentType: ctype, Body: body,
			ID: fmt.Sprintf("msg_%d_%d_%d", hook.ID, ids[0], ids[len(ids)-1])}
		return nil
	})
	return out, err
}

// Delivered records that the endpoint took a request (answering status):
// its deliveries are done, and the endpoint is not failing.
func (w *Webhooks) Delivered(ctx context.Context, out *OutgoingWebhook, status int) error {
	now := w.svc.now()
	return w.svc.store.Write(ctx, func(tx Tx) error {
		if err := tx.MarkWebhookDeliveries(ctx, out.DeliveryIDs, WebhookDelivered, status, "", now); err != nil {
			return err
		}
		hook, err := tx.Webhook(ctx, out.WebhookID)
		if ErrorCode(err) == ENOTFOUND || err == nil && hook.FailingSince == nil {
			return nil
		} else if err != nil {
			return err
		}
		hook.FailingSince = nil
		return tx.UpdateWebhook(ctx, hook)
	})
}

// mailtrapEvent is an event as Mailtrap's email sending webhooks send it.
// It never holds a token or a secret: the message's envelope, what the
// sender tagged it with, and the relay's answer.
func mailtrapEvent(ev *EmailEvent, msg *Message, e *StoredEmail) map[string]any {
	out := map[string]any{
		"event": mailtrapEventName(ev.Type), "timestamp": ev.At.Unix(), "sending_stream": "transactional",
		"message_id": ev.MessageID, "email": msg.Recipient, "event_id": strconv.FormatInt(ev.ID, 10),
		"sending_domain_name": e.From.Domain(),
	}
	if e.Category != "" {
		out["category"] = e.Category
	}
	if len(e.CustomVariables) > 0 {
		out["custom_variables"] = e.CustomVariables
	}
	d := ev.Details
	switch ev.Type {
	case EmailSoftBounce, EmailBounce:
		out["response"] = d.Response
		if d.Code != 0 {
			out["response_code"] = d.Code
		}
		if d.BounceCategory != "" {
			out["bounce_category"] = d.BounceCategory
		}
	case EmailReject:
		out["reason"] = d.RejectReason
	}
	return out
}

// mailtrapEventName is the "event" of a payload: Mailtrap writes soft
// bounces with a space there.
func mailtrapEventName(t EmailEventType) string {
	if t == EmailSoftBounce {
		return "soft bounce"
	}
	return string(t)
}

// webhookPayload encodes a batch of events: {"events": [...]} for json, an
// event a line for jsonlines.
func webhookPayload(format string, events []map[string]any) ([]byte, string, error) {
	if format == "jsonlines" {
		var out []byte
		for _, ev := range events {
			b, err := json.Marshal(ev)
			if err != nil {
				return nil, "", fmt.Errorf("encode webhook event: %w", err)
			}
			out = append(append(out, b...), '\n')
		}
		return out, "application/jsonl", nil
	}
	b, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return nil, "", fmt.Errorf("encode webhook events: %w", err)
	}
	return b, "application/json", nil
}

// retried records a failed attempt on the deliveries it carried, and
// deactivates an endpoint that has failed every request for
// DeactivateAfter (or at once, when the policy refuses its address).
func (w *Webhooks) retried(ctx context.Context, tx Tx, j *Job, cause error, at time.Time) error {
	return w.attempted(ctx, tx, j, WebhookPending, cause, at)
}

// finished records a job given up (the retry time ran out): its deliveries
// failed. A job that succeeded was recorded by Delivered.
func (w *Webhooks) finished(ctx context.Context, tx Tx, j *Job, state JobState, cause error, at time.Time) error {
	if state == JobDelivered {
		return nil
	}
	return w.attempted(ctx, tx, j, WebhookFailed, cause, at)
}

func (w *Webhooks) attempted(ctx context.Context, tx Tx, j *Job, state WebhookDeliveryState, cause error, at time.Time) error {
	id, err := strconv.ParseInt(string(j.Payload), 10, 64)
	if err != nil {
		return nil // not a job this version wrote; nothing to record
	}
	hook, err := tx.Webhook(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil // deleted, with its deliveries
	} else if err != nil {
		return err
	}
	var resp *WebhookResponse
	errors.As(cause, &resp)
	if resp == nil {
		// No request was made (the endpoint is inactive, or the batch could
		// not be read): a job given up fails what waits for the endpoint.
		if state != WebhookFailed {
			return nil
		}
		waiting, err := tx.PendingWebhookDeliveries(ctx, hook.ID, MaxWebhookBatch)
		if err != nil {
			return err
		}
		ids := make([]int64, len(waiting))
		for i, d := range waiting {
			ids[i] = d.ID
		}
		return tx.MarkWebhookDeliveries(ctx, ids, WebhookFailed, 0, errorText(cause), at)
	}
	if err := tx.MarkWebhookDeliveries(ctx, resp.DeliveryIDs, state, resp.Status, resp.Err, at); err != nil {
		return err
	}
	permanent := resp.Permanent
	if hook.FailingSince == nil {
		hook.FailingSince = &at
	}
	if hook.Active && (permanent || at.Sub(*hook.FailingSince) >= w.opts.DeactivateAfter) {
		hook.Active, hook.DeactivatedAt = false, &at
		hook.DeactivatedReason = fmt.Sprintf("every delivery failed for %v (last: %s)", w.opts.DeactivateAfter, resp.Err)
		if permanent {
			hook.DeactivatedReason = "its address is one this server may not reach: " + resp.Err
		}
		if err := tx.UpdateWebhook(ctx, hook); err != nil {
			return err
		}
		return w.announceDeactivated(ctx, tx, hook, at)
	}
	return tx.UpdateWebhook(ctx, hook)
}

// announceDeactivated raises the alert of an endpoint tokend stopped.
func (w *Webhooks) announceDeactivated(ctx context.Context, tx Tx, hook *Webhook, at time.Time) error {
	msg := fmt.Sprintf("tokend deactivated webhook %d (%s): %s. Its waiting deliveries are sent if it is reactivated within the retry time.",
		hook.ID, hook.URL, hook.DeactivatedReason)
	e := &AuditEvent{AccountID: hook.AccountID, At: at, Actor: "tokend", Action: ActionWebhookDeactivated, TargetType: "webhook",
		TargetID: hook.ID, Details: map[string]any{"message": msg, "url": hook.URL}}
	if w.opts.Events == nil {
		return w.svc.recordEvent(ctx, tx, e)
	}
	_, err := w.opts.Events.raise(ctx, tx, e, "tokend: webhook deactivated", msg+"\n\nReactivate it in the dashboard or with PATCH /api/accounts/{account_id}/webhooks/{id} {\"webhook\": {\"active\": true}} once the endpoint answers again.\n")
	return err
}
