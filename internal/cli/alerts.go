package cli

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/alert"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/metrics"
)

// newAlerts wires unusual-activity alerts: each goes to the audit log at
// once, with its webhook delivery (when --alert-webhook is set) written in the
// same transaction as an outbox job, which the returned runner delivers. The
// runner is nil without a webhook; it must run for as long as the server does.
func newAlerts(ctx context.Context, cfg ServeConfig, svc *tokend.Service, m *metrics.Metrics, logger *slog.Logger) (*alert.Monitor, *jobs.Runner, tokend.DomainOptions) {
	var webhook *alert.Webhook
	var deliveries *jobs.Runner
	if cfg.AlertWebhook != "" {
		webhook = &alert.Webhook{URL: cfg.AlertWebhook, Client: &http.Client{}}
		deliveries = jobs.New(svc.Outbox(), jobs.Options{
			Kind: alert.WebhookJob, Timeout: 5 * time.Second, Logger: logger,
			Result: func(result string) { m.AlertDeliveries.WithLabelValues(result).Inc() },
		}, webhook.Deliver)
	} else if n, err := svc.Outbox().Pending(ctx, alert.WebhookJob); err == nil && n > 0 {
		logger.Warn("alert webhook deliveries are pending but --alert-webhook is not set; they wait for it", "pending", n)
	}
	monitor := alert.New(alert.Options{
		Threshold: cfg.AlertThreshold, Window: cfg.AlertWindow, Logger: logger,
		Record: func(ctx context.Context, e alert.Event) error {
			var follow []*tokend.Job
			if webhook != nil {
				j, err := webhook.Job(e)
				if err != nil {
					return err
				}
				follow = append(follow, j)
			}
			if err := svc.RecordEvent(ctx, e.AuditEvent(), follow...); err != nil {
				return err
			}
			if deliveries != nil {
				deliveries.Notify()
			}
			return nil
		},
		NoteNetwork: svc.NoteNetwork,
		Raised:      func(typ string) { m.Alerts.WithLabelValues(typ).Inc() },
		Dropped:     func(string) { m.AlertDeliveries.WithLabelValues("dropped").Inc() },
	})
	// Alerts raised by the domain checks (a domain that lost its
	// verification) go out through the same webhook.
	domainAlerts := tokend.DomainOptions{
		Alert: func(e *tokend.AuditEvent) ([]*tokend.Job, error) {
			m.Alerts.WithLabelValues(e.Action[len(tokend.ActionAlertPrefix):]).Inc()
			if webhook == nil {
				return nil, nil
			}
			msg, _ := e.Details["message"].(string)
			j, err := webhook.Job(alert.Event{Type: e.Action[len(tokend.ActionAlertPrefix):], At: e.At, Message: msg, AccountID: e.AccountID})
			if err != nil {
				return nil, err
			}
			return []*tokend.Job{j}, nil
		},
		Alerted: func() {
			if deliveries != nil {
				deliveries.Notify()
			}
		},
	}
	return monitor, deliveries, domainAlerts
}
