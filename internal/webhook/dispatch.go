package webhook

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/jobs"
)

// Dispatcher delivers the outbox's webhook jobs: each sends a batch of the
// email events waiting for one endpoint, signed with the endpoint's secret.
type Dispatcher struct {
	Hooks  *tokend.Webhooks
	Client *http.Client     // from Policy.Client
	Now    func() time.Time // the clock of webhook-timestamp; time.Now if nil
}

// Deliver is the jobs.Handler of tokend.WebhookJob jobs. A 2xx answer
// delivers; any other answer, or none, is retried by the runner, but a
// destination the policy refuses fails at once. The attempt's log line
// names the webhook and the delivery, never the URL's query or the secret.
func (d *Dispatcher) Deliver(ctx context.Context, j tokend.Job) error {
	out, err := d.Hooks.Outgoing(ctx, j)
	if errors.Is(err, tokend.ErrNothingToDeliver) {
		jobs.Annotate(ctx, "skipped", "the webhook, its event or its delivery is gone, or already final")
		return nil
	} else if err != nil {
		return err
	}
	jobs.Annotate(ctx, "webhook_id", out.WebhookID, "events", len(out.DeliveryIDs))
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	// The signature's timestamp is the attempt's, so that receivers that
	// refuse old timestamps (Standard Webhooks allows 5 minutes) take retries.
	res, err := Deliver(ctx, d.Client, out.URL, out.Secret, out.ID, now(), out.ContentType, out.Body)
	if err == nil {
		// Recorded at once: a failure to record it makes the batch go again
		// (at least once), never lost.
		return d.Hooks.Delivered(ctx, out, res.Status)
	}
	resp := &tokend.WebhookResponse{DeliveryIDs: out.DeliveryIDs, Status: res.Status, Err: err.Error(), Permanent: IsPermanent(err)}
	if resp.Permanent {
		return jobs.Permanent(resp)
	}
	return resp
}
