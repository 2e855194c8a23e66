package app

import (
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/webhook"
)

// Webhook delivery timing: the first retry after seconds, doubling to five
// minutes apart, for Config.WebhookRetryFor; each attempt bounded at 30 s.
const (
	webhookBackoff    = 5 * time.Second
	webhookMaxBackoff = 5 * time.Minute
	webhookTimeout    = 30 * time.Second
)

// newWebhooks wires the email event webhooks: the endpoints' URLs checked
// and their deliveries made under the operator's policy, by a runner of
// the application.
func (a *App) newWebhooks(opts Options) {
	cfg, m := a.Config, a.Metrics
	policy := webhook.Policy{AllowHTTP: cfg.WebhookAllowHTTP, AllowPrivate: cfg.WebhookAllowPrivate}
	var runner *jobs.Runner
	a.Webhooks = tokend.NewWebhooks(a.Service, tokend.WebhookOptions{
		CheckURL: policy.ValidateURL,
		Notify: func() {
			if runner != nil {
				runner.Notify()
			}
		},
		Events:          a.Events,
		DeactivateAfter: cfg.WebhookDeactivateAfter,
	})
	jo := jobs.Options{
		Kind: tokend.WebhookJob, Workers: 4, Attempts: 1 << 30, MaxAge: cfg.WebhookRetryFor,
		Backoff: webhookBackoff, MaxBackoff: webhookMaxBackoff, Timeout: webhookTimeout, Logger: a.Logger,
		Result: func(result string) {
			m.WebhookDeliveries.WithLabelValues(result).Inc()
			if opts.WebhookResult != nil {
				opts.WebhookResult(result)
			}
		},
	}
	if rt := opts.Retry; rt != nil {
		jo.Backoff, jo.MaxBackoff, jo.Poll = rt.Backoff, rt.MaxBackoff, rt.Poll
	}
	d := &webhook.Dispatcher{Hooks: a.Webhooks, Client: policy.Client(webhookTimeout)}
	runner = jobs.New(a.Service.Outbox(), jo, d.Deliver)
	a.runners = append(a.runners, runner)
}
