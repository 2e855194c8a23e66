package app

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/alert"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/mail"
)

// Email delivery timing: the first retry after seconds, doubling to a
// minute, so that mail reaches a relay within a minute of its return; each
// attempt bounded so that a crashed worker's messages are claimed again
// (their lease running out) well within a minute.
const (
	emailBackoff    = 2 * time.Second
	emailMaxBackoff = time.Minute
	emailTimeout    = 30 * time.Second
	emailLease      = emailTimeout + 5*time.Second
)

// newMailer wires sending: the Mailer, spending message allowances through
// the application's Verifier (so that they are shared as its plan limits
// are), and with a relay the runners that deliver its outbox jobs.
func (a *App) newMailer(ctx context.Context, opts Options) error {
	cfg, logger, m, svc := a.Config, a.Logger, a.Metrics, a.Service
	relay := opts.Relay
	var relayName string
	if relay == nil && cfg.SMTPRelay != "" {
		r, err := mail.ParseRelay(cfg.SMTPRelay, mail.RelayOptions{})
		if err != nil {
			return &ConfigError{"--smtp-relay: " + err.Error()}
		}
		relay, relayName = r, r.String()
		a.closers = append(a.closers, r.Close)
	}
	noticeFrom, err := tokend.ParseNoticeAddress(cfg.NoticeFrom)
	if err != nil {
		return &ConfigError{"--notice-from: " + err.Error()}
	}
	var runner, notices *jobs.Runner
	a.Mailer = tokend.NewMailer(svc, mail.Composer{}, tokend.MailerOptions{
		Verifier:     a.Verifier,
		Deliver:      relay != nil,
		BounceDomain: cfg.BounceDomain,
		NoticeFrom:   noticeFrom,
		Notify: func() {
			if runner != nil {
				runner.Notify()
			}
		},
		NotifyNotice: func() {
			if notices != nil {
				notices.Notify()
			}
		},
		Observe: func(event string, n int) {
			switch event {
			case "evicted":
				m.CapturedDeleted.WithLabelValues("quota").Add(float64(n))
			case "expired":
				m.CapturedDeleted.WithLabelValues("retention").Add(float64(n))
			default:
				m.Emails.WithLabelValues(event).Add(float64(n))
			}
		},
		SandboxQuota:     opts.SandboxQuota,
		CaptureRetention: cfg.CaptureRetention,
	})
	if relay == nil {
		if n, err := svc.Outbox().Pending(ctx, tokend.EmailJob); err == nil && n > 0 {
			logger.Warn("live messages are waiting for delivery but --smtp-relay is not set; they are delivered once it is", "pending", n)
		}
		logger.Info("email delivery is off: live sends answer 503 until --smtp-relay is set; test keys and sandbox sends are captured")
		return nil
	}
	d := &mail.Dispatcher{Mailer: a.Mailer, Relay: relay}
	rt := RetryTiming{Backoff: emailBackoff, MaxBackoff: emailMaxBackoff}
	if opts.Retry != nil {
		rt = *opts.Retry
	}
	runner = jobs.New(svc.Outbox(), jobs.Options{
		Kind: tokend.EmailJob, Workers: 4, Attempts: 1 << 30, MaxAge: cfg.SMTPRetryFor,
		Backoff: rt.Backoff, MaxBackoff: rt.MaxBackoff, Poll: rt.Poll, Timeout: emailTimeout, Lease: emailLease, Logger: logger,
		Result: func(result string) {
			switch result {
			case jobs.ResultDelivered:
				m.Emails.WithLabelValues("delivered").Inc()
			case jobs.ResultRetried:
				m.Emails.WithLabelValues("deferred").Inc()
			case jobs.ResultFailed:
				m.Emails.WithLabelValues("failed").Inc()
			}
			if opts.DeliveryResult != nil {
				opts.DeliveryResult(result)
			}
		},
	}, d.Deliver)
	notices = jobs.New(svc.Outbox(), jobs.Options{
		Kind: tokend.NoticeJob, Workers: 1, Attempts: 1 << 30, MaxAge: cfg.SMTPRetryFor,
		Backoff: rt.Backoff, MaxBackoff: rt.MaxBackoff, Poll: rt.Poll, Timeout: emailTimeout, Lease: emailLease, Logger: logger,
	}, d.DeliverNotice)
	a.runners = append(a.runners, runner, notices)
	if relayName != "" {
		logger.Info("email delivery on", "relay", relayName, "retry_for", cfg.SMTPRetryFor)
	}
	return nil
}

// newAlerts wires unusual-activity alerts: each goes to the audit log at
// once, with its webhook delivery (when --alert-webhook is set) written in the
// same transaction as an outbox job, which a runner of the application
// delivers. It returns the options that send the domain checks' alerts the
// same way.
func (a *App) newAlerts(ctx context.Context, opts Options) tokend.DomainOptions {
	cfg, logger, m, svc := a.Config, a.Logger, a.Metrics, a.Service
	var webhook *alert.Webhook
	var deliveries *jobs.Runner
	if cfg.AlertWebhook != "" {
		webhook = &alert.Webhook{URL: cfg.AlertWebhook, Client: &http.Client{}}
		jo := jobs.Options{
			Kind: alert.WebhookJob, Timeout: 5 * time.Second, Logger: logger,
			Result: func(result string) {
				m.AlertDeliveries.WithLabelValues(result).Inc()
				if opts.AlertResult != nil {
					opts.AlertResult(result)
				}
			},
		}
		if rt := opts.Retry; rt != nil {
			jo.Backoff, jo.MaxBackoff, jo.Poll = rt.Backoff, rt.MaxBackoff, rt.Poll
		}
		deliveries = jobs.New(svc.Outbox(), jo, webhook.Deliver)
		a.runners = append(a.runners, deliveries)
	} else if n, err := svc.Outbox().Pending(ctx, alert.WebhookJob); err == nil && n > 0 {
		logger.Warn("alert webhook deliveries are pending but --alert-webhook is not set; they wait for it", "pending", n)
	}
	a.Monitor = alert.New(alert.Options{
		Threshold: cfg.AlertThreshold, Window: cfg.AlertWindow, Logger: logger, Now: a.now,
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
		Dropped: func(string) {
			m.AlertDeliveries.WithLabelValues("dropped").Inc()
			if opts.AlertResult != nil {
				opts.AlertResult("dropped")
			}
		},
	})
	// Alerts raised by the domain checks (a domain that lost its
	// verification) go out through the same webhook.
	return tokend.DomainOptions{
		Alert: func(e *tokend.AuditEvent) ([]*tokend.Job, error) {
			// Alerts are audited as alert.<type>; token events under
			// their own name (token.expiring), which is their type.
			typ := strings.TrimPrefix(e.Action, tokend.ActionAlertPrefix)
			m.Alerts.WithLabelValues(typ).Inc()
			if webhook == nil {
				return nil, nil
			}
			msg, _ := e.Details["message"].(string)
			ev := alert.Event{Type: typ, At: e.At, Message: msg, AccountID: e.AccountID}
			if e.TargetType == "api_token" {
				ev.TokenID = e.TargetID
			}
			j, err := webhook.Job(ev)
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
}
