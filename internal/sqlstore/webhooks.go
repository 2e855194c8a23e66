package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokend/tokend"
)

const webhookColumns = `id, account_id, url, event_types, domain_id, payload_format, active, secret, failing_since,
	deactivated_at, deactivated_reason, created_at, updated_at`

func scanWebhook(rs row) (tokend.Webhook, error) {
	var w tokend.Webhook
	var types string
	var domain, failing, deactivated sql.NullInt64
	var created, updated int64
	if err := rs.Scan(&w.ID, &w.AccountID, &w.URL, &types, &domain, &w.PayloadFormat, &w.Active, &w.SealedSecret, &failing,
		&deactivated, &w.DeactivatedReason, &created, &updated); err != nil {
		return w, err
	}
	if err := json.Unmarshal([]byte(types), &w.EventTypes); err != nil {
		return w, fmt.Errorf("event types of webhook %d: %w", w.ID, err)
	}
	w.DomainID, w.FailingSince, w.DeactivatedAt = domain.Int64, timePtr(failing), timePtr(deactivated)
	w.CreatedAt, w.UpdatedAt = fromMicros(created), fromMicros(updated)
	return w, nil
}

func eventTypesJSON(types []string) (string, error) {
	if types == nil {
		types = []string{}
	}
	b, err := json.Marshal(types)
	if err != nil {
		return "", fmt.Errorf("encode event types: %w", err)
	}
	return string(b), nil
}

// CreateWebhook inserts w and sets its ID.
func (x *Tx) CreateWebhook(ctx context.Context, w *tokend.Webhook) error {
	types, err := eventTypesJSON(w.EventTypes)
	if err != nil {
		return err
	}
	err = x.q.QueryRowContext(ctx, `INSERT INTO webhooks (account_id, url, event_types, domain_id, payload_format, active, secret,
		failing_since, deactivated_at, deactivated_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		w.AccountID, w.URL, types, nullID(w.DomainID), w.PayloadFormat, w.Active, w.SealedSecret, nullMicros(w.FailingSince),
		nullMicros(w.DeactivatedAt), w.DeactivatedReason, micros(w.CreatedAt), micros(w.UpdatedAt)).Scan(&w.ID)
	if err != nil {
		return fmt.Errorf("insert webhook: %w", err)
	}
	return nil
}

// Webhook returns one webhook.
func (x *Tx) Webhook(ctx context.Context, id int64) (*tokend.Webhook, error) {
	w, err := scanWebhook(x.q.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook")
	} else if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &w, nil
}

// Webhooks lists an account's webhooks, oldest first.
func (x *Tx) Webhooks(ctx context.Context, accountID int64) ([]tokend.Webhook, error) {
	return queryAll(ctx, x, "webhooks", `SELECT `+webhookColumns+` FROM webhooks WHERE account_id = ? ORDER BY id`, []any{accountID}, scanWebhook)
}

// UpdateWebhook stores a webhook's changeable fields.
func (x *Tx) UpdateWebhook(ctx context.Context, w *tokend.Webhook) error {
	types, err := eventTypesJSON(w.EventTypes)
	if err != nil {
		return err
	}
	res, err := x.q.ExecContext(ctx, `UPDATE webhooks SET url = ?, event_types = ?, payload_format = ?, active = ?, failing_since = ?,
		deactivated_at = ?, deactivated_reason = ?, updated_at = ? WHERE id = ?`,
		w.URL, types, w.PayloadFormat, w.Active, nullMicros(w.FailingSince), nullMicros(w.DeactivatedAt), w.DeactivatedReason, micros(w.UpdatedAt), w.ID)
	return expectOne(res, err, "webhook")
}

// DeleteWebhook deletes a webhook and, by cascade, its deliveries.
func (x *Tx) DeleteWebhook(ctx context.Context, id int64) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	return expectOne(res, err, "webhook")
}

const webhookDeliveryColumns = `id, webhook_id, account_id, event_id, message_id, event_type, state, attempts, last_status, last_error, created_at, updated_at`

func scanWebhookDelivery(rs row) (tokend.WebhookDelivery, error) {
	var d tokend.WebhookDelivery
	var typ, state string
	var created, updated int64
	err := rs.Scan(&d.ID, &d.WebhookID, &d.AccountID, &d.EventID, &d.MessageID, &typ, &state, &d.Attempts, &d.LastStatus, &d.LastError, &created, &updated)
	d.EventType, d.State, d.CreatedAt, d.UpdatedAt = tokend.EmailEventType(typ), tokend.WebhookDeliveryState(state), fromMicros(created), fromMicros(updated)
	return d, err
}

// CreateWebhookDelivery inserts d and sets its ID.
func (x *Tx) CreateWebhookDelivery(ctx context.Context, d *tokend.WebhookDelivery) error {
	err := x.q.QueryRowContext(ctx, `INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, message_id, event_type, state,
		attempts, last_status, last_error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		d.WebhookID, d.AccountID, d.EventID, d.MessageID, string(d.EventType), string(d.State), d.Attempts, d.LastStatus, d.LastError,
		micros(d.CreatedAt), micros(d.UpdatedAt)).Scan(&d.ID)
	if err != nil {
		return fmt.Errorf("insert webhook delivery: %w", err)
	}
	return nil
}

// WebhookDelivery returns one delivery.
func (x *Tx) WebhookDelivery(ctx context.Context, id int64) (*tokend.WebhookDelivery, error) {
	d, err := scanWebhookDelivery(x.q.QueryRowContext(ctx, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook delivery")
	} else if err != nil {
		return nil, fmt.Errorf("webhook delivery: %w", err)
	}
	return &d, nil
}

// UpdateWebhookDelivery records an attempt's outcome.
func (x *Tx) UpdateWebhookDelivery(ctx context.Context, d *tokend.WebhookDelivery) error {
	res, err := x.q.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = ?, last_status = ?, last_error = ?, updated_at = ?
		WHERE id = ?`, string(d.State), d.Attempts, d.LastStatus, d.LastError, micros(d.UpdatedAt), d.ID)
	return expectOne(res, err, "webhook delivery")
}

// WebhookDeliveries lists a webhook's deliveries, newest first.
func (x *Tx) WebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]tokend.WebhookDelivery, error) {
	return queryAll(ctx, x, "webhook deliveries", `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries WHERE webhook_id = ?
		ORDER BY id DESC LIMIT ?`, []any{webhookID, limit}, scanWebhookDelivery)
}

// EmailEvent returns one event.
func (x *Tx) EmailEvent(ctx context.Context, id int64) (*tokend.EmailEvent, error) {
	var e tokend.EmailEvent
	var typ, details string
	var at int64
	err := x.q.QueryRowContext(ctx, `SELECT id, message_id, account_id, type, details, created_at FROM email_events WHERE id = ?`, id).
		Scan(&e.ID, &e.MessageID, &e.AccountID, &typ, &details, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("email event")
	} else if err != nil {
		return nil, fmt.Errorf("email event: %w", err)
	}
	e.Type, e.At = tokend.EmailEventType(typ), fromMicros(at)
	if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
		return nil, fmt.Errorf("details of email event %d: %w", e.ID, err)
	}
	return &e, nil
}

// DeleteWebhookDeliveriesBefore deletes final deliveries last changed before cutoff.
func (x *Tx) DeleteWebhookDeliveriesBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := x.q.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < ?`, micros(cutoff))
	if err != nil {
		return 0, fmt.Errorf("delete old webhook deliveries: %w", err)
	}
	return res.RowsAffected()
}

// PendingWebhookDeliveries lists a webhook's pending deliveries, oldest first.
func (x *Tx) PendingWebhookDeliveries(ctx context.Context, webhookID int64, limit int) ([]tokend.WebhookDelivery, error) {
	return queryAll(ctx, x, "pending webhook deliveries", `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
		WHERE webhook_id = ? AND state = 'pending' ORDER BY id LIMIT ?`, []any{webhookID, limit}, scanWebhookDelivery)
}

// MarkWebhookDeliveries records an attempt on pending deliveries.
func (x *Tx) MarkWebhookDeliveries(ctx context.Context, ids []int64, state tokend.WebhookDeliveryState, status int, lastError string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{string(state), status, lastError, micros(at)}
	for _, id := range ids {
		args = append(args, id)
	}
	if _, err := x.q.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?, updated_at = ?
		WHERE state = 'pending' AND id IN (`+placeholders(len(ids))+`)`, args...); err != nil {
		return fmt.Errorf("mark webhook deliveries: %w", err)
	}
	return nil
}
