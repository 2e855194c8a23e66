package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/metrics"
)

// secretsKeyPath is where the secrets key lives: --secrets-key-file, or the
// database's path with ".key" appended.
func secretsKeyPath(cfg ServeConfig) string {
	if cfg.SecretsKeyFile != "" {
		return cfg.SecretsKeyFile
	}
	return cfg.DB + ".key"
}

// loadKeyring reads the secrets key, or creates it (mode 0600) when the file
// is missing and the database holds no secrets yet. A database whose secrets
// were sealed with a key that is now missing refuses to start: a new key
// could not open them.
func loadKeyring(ctx context.Context, cfg ServeConfig, store tokend.Store, logger *slog.Logger) (*tokend.Keyring, error) {
	path := secretsKeyPath(cfg)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := tokend.ParseSecretsKey(string(raw))
		if err != nil {
			return nil, fmt.Errorf("secrets key file %s: %w", path, err)
		}
		return tokend.NewKeyring(key)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	has, err := tokend.HasSecrets(ctx, store)
	if err != nil {
		return nil, err
	}
	if has {
		return nil, fmt.Errorf("secrets key file %s is missing, but database %s holds secrets (DKIM keys) sealed with a key: "+
			"restore the key file from your backup, or point --secrets-key-file at it", path, dbName(cfg.DB))
	}
	encoded := tokend.NewSecretsKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secrets key file: %w", err)
	}
	if _, err := f.WriteString(encoded + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secrets key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write secrets key file %s: %w", path, err)
	}
	abs, _ := filepath.Abs(path)
	logger.Info("created the secrets key file; back it up with the database: without it, DKIM keys cannot be opened", "file", abs)
	key, _ := tokend.ParseSecretsKey(encoded)
	return tokend.NewKeyring(key)
}

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
// verifier (the server's, so that they are shared as its plan limits are),
// and with a relay the dispatcher that delivers its outbox jobs (nil without
// one; it must run as long as the server).
func newMailer(ctx context.Context, cfg ServeConfig, svc *tokend.Service, verifier *tokend.Verifier, m *metrics.Metrics, logger *slog.Logger) (*tokend.Mailer, []*jobs.Runner, *mail.Relay, error) {
	var relay *mail.Relay
	if cfg.SMTPRelay != "" {
		var err error
		if relay, err = mail.ParseRelay(cfg.SMTPRelay, mail.RelayOptions{}); err != nil {
			return nil, nil, nil, &UsageError{"--smtp-relay: " + err.Error()}
		}
	}
	noticeFrom, err := tokend.ParseNoticeAddress(cfg.NoticeFrom)
	if err != nil {
		return nil, nil, nil, &UsageError{"--notice-from: " + err.Error()}
	}
	var runner, notices *jobs.Runner
	mailer := tokend.NewMailer(svc, mail.Composer{}, tokend.MailerOptions{
		Verifier:   verifier,
		Deliver:    relay != nil,
		NoticeFrom: noticeFrom,
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
		CaptureRetention: cfg.CaptureRetention,
	})
	if relay == nil {
		if n, err := svc.Outbox().Pending(ctx, tokend.EmailJob); err == nil && n > 0 {
			logger.Warn("live messages are waiting for delivery but --smtp-relay is not set; they are delivered once it is", "pending", n)
		}
		logger.Info("email delivery is off: live sends answer 503 until --smtp-relay is set; test keys and sandbox sends are captured")
		return mailer, nil, nil, nil
	}
	d := &mail.Dispatcher{Mailer: mailer, Relay: relay}
	runner = jobs.New(svc.Outbox(), jobs.Options{
		Kind: tokend.EmailJob, Workers: 4, Attempts: 1 << 30, MaxAge: cfg.SMTPRetryFor,
		Backoff: emailBackoff, MaxBackoff: emailMaxBackoff, Timeout: emailTimeout, Lease: emailLease, Logger: logger,
		Result: func(result string) {
			switch result {
			case jobs.ResultDelivered:
				m.Emails.WithLabelValues("delivered").Inc()
			case jobs.ResultRetried:
				m.Emails.WithLabelValues("deferred").Inc()
			case jobs.ResultFailed:
				m.Emails.WithLabelValues("failed").Inc()
			}
		},
	}, d.Deliver)
	notices = jobs.New(svc.Outbox(), jobs.Options{
		Kind: tokend.NoticeJob, Workers: 1, Attempts: 1 << 30, MaxAge: cfg.SMTPRetryFor,
		Backoff: emailBackoff, MaxBackoff: emailMaxBackoff, Timeout: emailTimeout, Lease: emailLease, Logger: logger,
	}, d.DeliverNotice)
	logger.Info("email delivery on", "relay", relay.String(), "retry_for", cfg.SMTPRetryFor)
	return mailer, []*jobs.Runner{runner, notices}, relay, nil
}
