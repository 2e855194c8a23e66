package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/jobs"
)

// WebhookJob is the outbox kind of alert webhook deliveries.
const WebhookJob = "alert_webhook"

// Webhook delivers alerts as JSON POSTs to one URL.
type Webhook struct {
	URL    string
	Client *http.Client // default: http.DefaultClient; each attempt is bounded by its context
}

// Job is the outbox job that delivers e: its payload is the body the webhook receives.
func (w *Webhook) Job(e Event) (*tokend.Job, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode alert: %w", err)
	}
	return &tokend.Job{Kind: WebhookJob, Payload: body}, nil
}

// Deliver POSTs a job's payload. A 2xx answer delivers it. A 4xx answer
// other than 408 and 429 is permanent: the receiver refuses this alert, and
// asking again will not change that. Anything else is retried.
func (w *Webhook) Deliver(ctx context.Context, j tokend.Job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(j.Payload))
	if err != nil {
		return jobs.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokend-alerts")
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	res.Body.Close()
	switch {
	case res.StatusCode/100 == 2:
		return nil
	case res.StatusCode/100 == 4 && res.StatusCode != http.StatusRequestTimeout && res.StatusCode != http.StatusTooManyRequests:
		return jobs.Permanent(fmt.Errorf("webhook answered %s", res.Status))
	}
	return fmt.Errorf("webhook answered %s", res.Status)
}
