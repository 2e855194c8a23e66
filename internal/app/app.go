// Package app is tokend's application: built from one Config, it owns every
// component (store, service, verifier, mailer, domain checks, alerts, the
// HTTP API and dashboard) and runs all background work under one lifecycle.
// "tokend serve" and the end-to-end tests build it the same way; tests pass
// a clock, a store, a DNS resolver or a relay through Options, never a copy
// of the wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/alert"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/dns"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/metrics"
	redislimits "github.com/tokend/tokend/internal/redis"
	"github.com/tokend/tokend/internal/secretscan"
	"github.com/tokend/tokend/internal/smtpd"
	"github.com/tokend/tokend/internal/web"
)

// Options are what a caller gives the application besides its Config: the
// logger, and for tests the fakes that replace what the Config names.
type Options struct {
	Logger   *slog.Logger // default: discard
	Operator string       // who starts tokend, for the audit log (default "tokend")
	// Now is the clock (default time.Now). Background loops tick on real
	// time; what they decide reads this clock.
	Now func() time.Time
	// Store is an open store to use instead of opening Config.DB; the
	// application does not close it.
	Store tokend.Store
	// Keyring seals DKIM keys instead of the secrets key file; with Store
	// and without Keyring, a key that lives as long as the process does.
	Keyring *tokend.Keyring
	// Resolver answers domain checks instead of Config.DNSResolver.
	Resolver tokend.DNSResolver
	// Relay delivers live mail instead of Config.SMTPRelay.
	Relay mail.Sender
	// Limits hold the plan limits and throttles instead of Config.Redis's or
	// this process's memory (instances of a test sharing them, say).
	Limits tokend.Limits
	// DKIMKeyBits is the size of new domains' keys (default 2048).
	DKIMKeyBits int
	// SandboxQuota replaces the plans' capture quotas.
	SandboxQuota func(tokend.Plan) tokend.SandboxQuota
	// Retry shortens the outbox's waits between attempts (tests).
	Retry *RetryTiming
	// WrapStore wraps the store the service uses (to count or fail calls).
	WrapStore func(tokend.Store) tokend.Store
	// DeliveryResult, AlertResult and WebhookResult are told each outbox
	// attempt's result of email, alert webhook and email event webhook
	// deliveries (and AlertResult "dropped" for an alert the monitor could
	// not record); may be nil.
	DeliveryResult, AlertResult, WebhookResult func(result string)
}

// RetryTiming is how soon failed outbox jobs are tried again and how often
// idle workers look for due ones.
type RetryTiming struct {
	Backoff, MaxBackoff, Poll time.Duration
}

// App is one running instance of tokend. Build it with New; serve it with
// Serve (or run its background with Run); Close it when done.
type App struct {
	Config   Config
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	Store    tokend.Store // as the service sees it (metrics around the database)
	Service  *tokend.Service
	Verifier *tokend.Verifier
	Mailer   *tokend.Mailer
	Logs     *tokend.EmailLogs
	Suppress *tokend.Suppressions
	Webhooks *tokend.Webhooks
	Domains  *tokend.Domains
	Events   *tokend.TokenEvents // expiry warnings and leaks: audit log, alert webhook, email
	Monitor  *alert.Monitor
	Handler  http.Handler // the API and dashboard
	// Submission and MX are the SMTP servers, when the Config asks for them.
	Submission *smtpd.Server
	MX         *smtpd.MX

	now      func() time.Time
	operator string
	limits   limits // the plan limits and throttles: in memory, or Redis
	runners  []*jobs.Runner
	done     chan struct{} // closed as the HTTP server shuts down: ends change streams
	closers  []func() error
	stopOnce sync.Once
}

// New builds the application: opens (or takes) the store, loads the secrets
// key, connects Redis, prepares domains and the authentication cache, and
// wires the API. Nothing runs in the background until Serve or Run.
func New(ctx context.Context, cfg Config, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Operator == "" {
		opts.Operator = "tokend"
	}
	logger := opts.Logger
	a := &App{Config: cfg, Logger: logger, Metrics: metrics.New(), now: opts.Now, operator: opts.Operator, done: make(chan struct{})}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	format, _ := apikey.NewFormat(cfg.TokenPrefix) // Validate checked it
	db := opts.Store
	if db == nil {
		if db, err = OpenStore(ctx, cfg.DB, true); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, db.Close)
	}
	store := a.Metrics.Store(db)
	if opts.WrapStore != nil {
		store = opts.WrapStore(store)
	}
	a.Store = store
	// Without a database of its own (a test's store) and without a keyring,
	// the service seals with a key that lives as long as the process.
	keyring := opts.Keyring
	if keyring == nil && opts.Store == nil {
		if keyring, err = LoadKeyring(ctx, cfg.DB, cfg.SecretsKeyFile, store, logger); err != nil {
			return nil, err
		}
	}
	a.Service = tokend.NewService(store, tokend.Options{
		ResetGrace: cfg.ResetGrace, PurgeAfter: cfg.PurgeAfter, DefaultTTL: cfg.DefaultTTL, Format: format,
		DisableAuthCache: !cfg.AuthCache, Keyring: keyring, SPF: cfg.SPF, Now: opts.Now, DKIMKeyBits: opts.DKIMKeyBits,
	})
	svc := a.Service
	if _, err := svc.CheckSecretsKey(ctx); errors.Is(err, tokend.ErrSecretsKeyMismatch) {
		return nil, fmt.Errorf("secrets key file %s: %w; restore the key file this database was used with", SecretsKeyPath(cfg.DB, cfg.SecretsKeyFile), err)
	} else if err != nil {
		return nil, err
	}
	if err := a.shareLimits(ctx, opts.Limits); err != nil {
		return nil, err
	}
	if n, err := svc.EnsureDomainKeys(ctx); err != nil {
		return nil, fmt.Errorf("make DKIM keys: %w", err)
	} else if n > 0 {
		logger.Info("made DKIM keys for sending domains that had none; publish their DNS records", "domains", n)
	}
	if n, err := svc.EnsureDomainDNS(ctx); err != nil {
		return nil, fmt.Errorf("prepare DNS checks: %w", err)
	} else if n > 0 {
		logger.Warn("sending domains made before DNS verification start unverified: live keys send from them once their records pass "+
			"(POST .../sending_domains/{id}/verify, or tokend domain trust ID for internal domains)", "domains", n)
	}
	resolver := opts.Resolver
	if resolver == nil {
		r, err := dns.New(cfg.DNSResolver, dns.Options{})
		if err != nil {
			return nil, &ConfigError{"--dns-resolver: " + err.Error()}
		}
		resolver = r
	}
	a.Verifier = tokend.NewVerifier(svc, tokend.VerifierOptions{Limits: a.limits,
		TestRateMultiplier: cfg.TestRateMultiplier, AuthFailureLimit: cfg.AuthFailureLimit, Now: opts.Now})
	if err := a.newMailer(ctx, opts); err != nil {
		return nil, err
	}
	a.Logs, a.Suppress = tokend.NewEmailLogs(svc, cfg.EmailLogRetention), tokend.NewSuppressions(svc)
	domainOpts := a.newAlerts(ctx, opts)
	// The sign-in ceiling's alert goes out as the domain checks' do.
	svc.Users().AnnounceAlerts(domainOpts.Alert, domainOpts.Alerted)
	a.Events = tokend.NewTokenEvents(svc, a.Mailer, tokend.EventOptions{Alert: domainOpts.Alert, Alerted: domainOpts.Alerted})
	a.newWebhooks(opts)
	if err := a.newSMTP(); err != nil {
		return nil, err
	}
	domainOpts.Resolver, domainOpts.Recheck = resolver, cfg.DNSRecheck
	a.Domains = tokend.NewDomains(svc, a.Mailer, domainOpts)
	var scanning http.Handler
	if cfg.SecretScanningKeys != "" {
		keys, err := secretscan.LoadKeys(cfg.SecretScanningKeys, secretscan.KeysOptions{Now: opts.Now,
			OnReloadError: func(err error) {
				logger.Error("the secret scanning key file changed and cannot be used; the last good keys stay", "err", err)
			}})
		if err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("--secret-scanning-keys: %v", err)}
		}
		scanning = secretscan.Handler(keys, leakReporter{a.Events}, secretscan.HandlerOptions{Logger: logger})
	}
	a.Handler = api.NewServer(svc, api.Options{
		Done:   a.done,
		Logger: logger, Metrics: a.Metrics, Alerts: a.Monitor, ServeMetrics: cfg.MetricsAddr == "",
		TrustedProxies: cfg.TrustedProxies, Mailer: a.Mailer, Verifier: a.Verifier, Domains: a.Domains, Now: opts.Now,
		Logs: a.Logs, Suppressions: a.Suppress, Webhooks: a.Webhooks,
		SendLimits: api.SendLimits{Total: cfg.SendsInFlight, PerAccount: cfg.AccountSendsInFlight}, SecretScanning: scanning,
		Dashboard: web.New(svc, a.Mailer, web.Options{Logger: logger, HTTPS: api.IsHTTPS, Domains: a.Domains, Now: opts.Now, Logs: a.Logs, Suppressions: a.Suppress, Webhooks: a.Webhooks}),
	})
	if cfg.AuthCache {
		start := time.Now()
		n, err := svc.WarmAuthCache(ctx)
		if err != nil {
			return nil, fmt.Errorf("warm the authentication cache: %w", err)
		}
		logger.Info("authentication cache warm", "tokens", n, "duration", time.Since(start))
	}
	return a, nil
}

// limits are the application's Limits, swept about once a minute.
type limits interface {
	tokend.Limits
	Sweep(now time.Time)
}

// unswept are limits someone else keeps bounded.
type unswept struct{ tokend.Limits }

func (unswept) Sweep(time.Time) {}

// shareLimits makes the application's limits: in Redis when the Config names
// it, so that they hold across instances, in memory otherwise.
func (a *App) shareLimits(ctx context.Context, given tokend.Limits) error {
	cfg, logger, m := a.Config, a.Logger, a.Metrics
	a.limits = tokend.NewLocalLimits(a.now)
	switch {
	case given != nil:
		a.limits = unswept{given}
	case cfg.Redis != "":
		shared, err := redislimits.New(ctx, cfg.Redis, redislimits.Options{
			Policy: redislimits.Policy(cfg.RedisFail), Timeout: cfg.RedisTimeout, Logger: logger,
			Errors: m.RedisErrors.Inc,
			State: func(state string) {
				if state == "open" {
					m.RedisCircuit.Set(1)
				} else {
					m.RedisCircuit.Set(0)
				}
			},
		})
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		a.limits = shared
		a.closers = append(a.closers, shared.Close)
		logger.Info("plan rate limits, message allowances and the failed-authentication throttle hold across instances, in Redis", "redis_fail", cfg.RedisFail)
	case IsPostgres(cfg.DB):
		logger.Warn("plan rate limits, message allowances and the failed-authentication throttle count per instance (no --redis): " +
			"with N instances on this database an account can make up to N times its limit")
	default:
		logger.Info("plan rate limits, message allowances and the failed-authentication throttle count in this instance's memory (no --redis)")
	}
	a.Service.Users().ShareLimits(a.limits)
	return nil
}

// Bootstrap creates the account "Default" with its first admin token and a
// dashboard setup code on an empty database, in the operator's name; on any
// other it returns nil.
func (a *App) Bootstrap(ctx context.Context) (*Bootstrapped, error) {
	acct, first, err := a.Service.Bootstrap(ctx, a.operator)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if first == nil {
		return nil, nil
	}
	code, err := a.Service.Users().Invite(ctx, acct.ID, tokend.Admin)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &Bootstrapped{Account: acct, Token: first, SetupCode: code}, nil
}

// Bootstrapped is what the first start made: shown once.
type Bootstrapped struct {
	Account   *tokend.Account
	Token     *tokend.IssuedToken
	SetupCode string
}

// Close releases what New opened: Redis, the relay, the database (unless
// Options gave it). Call it after Serve or Run returned.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// leakReporter hands secret scanning reports to the token events.
type leakReporter struct{ events *tokend.TokenEvents }

func (l leakReporter) Report(ctx context.Context, m secretscan.Match) (secretscan.Label, error) {
	ok, err := l.events.ReportLeak(ctx, tokend.LeakReport{Value: m.Token, Type: m.Type, URL: m.URL, Source: m.Source})
	if err != nil || !ok {
		return secretscan.FalsePositive, err
	}
	return secretscan.TruePositive, nil
}
