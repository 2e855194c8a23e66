package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/metrics"
	redislimits "github.com/tokend/tokend/internal/redis"
	"github.com/tokend/tokend/internal/web"
)

// ServeConfig is everything "tokend serve" takes from flags and the environment.
type ServeConfig struct {
	Addr        string
	DB          string
	ResetGrace  time.Duration
	PurgeAfter  time.Duration
	DefaultTTL  time.Duration
	TokenPrefix string
	TLSCert     string
	TLSKey      string
	LogLevel    slog.Level

	// TrustedProxies are the peers whose X-Forwarded-For and Forwarded headers
	// name the client; they also vouch that TLS ends in front of tokend.
	TrustedProxies api.Prefixes
	// InsecureHTTP allows plain HTTP on a non-loopback address.
	InsecureHTTP bool

	MetricsAddr        string
	TestRateMultiplier int
	AuthFailureLimit   int
	UsageFlush         time.Duration
	AlertWebhook       string
	AlertThreshold     int
	AlertWindow        time.Duration
	AuthCache          bool

	// SMTPRelay is the relay live email goes out through; without it, live sends answer 503.
	SMTPRelay      string
	SMTPRetryFor   time.Duration
	SPF            string
	SecretsKeyFile string
	// NoticeFrom is the sender of tokend's own mail (domain setup instructions).
	NoticeFrom string
	// DNSResolver is the DNS server domain checks ask ("" for the system's);
	// DNSRecheck how often verified domains are checked again.
	DNSResolver string
	DNSRecheck  time.Duration

	// CaptureRetention is how long captured mail (test keys, sandbox sends) is kept.
	CaptureRetention time.Duration
	// SendsInFlight and AccountSendsInFlight bound the sends read and
	// rendered at once, in all and per account.
	SendsInFlight        int
	AccountSendsInFlight int

	// Redis, when set, holds the limits across instances.
	Redis        string
	RedisFail    string
	RedisTimeout time.Duration
}

// serveFlags defines serve's flags on a new flag set, writing into cfg.
func serveFlags(cfg *ServeConfig, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.DB, "db", "./tokend.db", "SQLite database file (created if missing), or a postgres://user:pass@host:port/db URL")
	fs.DurationVar(&cfg.ResetGrace, "reset-grace", 12*time.Hour, "how long a reset token keeps working")
	fs.DurationVar(&cfg.PurgeAfter, "purge-after", 24*time.Hour, "expired tokens are deleted at most this long after expiry")
	fs.DurationVar(&cfg.DefaultTTL, "default-ttl", 0, "lifetime of tokens created without expires_at (0: never expire)")
	fs.StringVar(&cfg.TokenPrefix, "token-prefix", apikey.DefaultPrefix, "prefix of token values, as in tk_live_...")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file")
	fs.Var(&cfg.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of reverse proxies that terminate TLS; the client address comes from X-Forwarded-For/Forwarded only when the peer is one of them")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address without TLS or a trusted proxy in front")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the API address")
	fs.IntVar(&cfg.TestRateMultiplier, "test-rate-multiplier", 5, "test keys get this many times their plan's rate limit")
	fs.IntVar(&cfg.AuthFailureLimit, "auth-failure-limit", 20, "failed authentications per minute a client address may make before 429")
	fs.DurationVar(&cfg.UsageFlush, "usage-flush", 10*time.Second, "how often usage counts are written to the database")
	fs.StringVar(&cfg.AlertWebhook, "alert-webhook", "", "URL that receives unusual-activity alerts as JSON POSTs")
	fs.IntVar(&cfg.AlertThreshold, "alert-threshold", 20, "401/403/429 answers within --alert-window that raise an alert for a token or address")
	fs.DurationVar(&cfg.AlertWindow, "alert-window", time.Minute, "window for --alert-threshold")
	fs.BoolVar(&cfg.AuthCache, "auth-cache", true, "authenticate from an in-memory cache (false: a database lookup per request, for comparison)")
	fs.StringVar(&cfg.SMTPRelay, "smtp-relay", "", "SMTP relay live email is delivered through: smtp://[user:pass@]host[:port] (STARTTLS when offered) or smtps://... (TLS); without it, live sends answer 503")
	fs.DurationVar(&cfg.SMTPRetryFor, "smtp-retry-for", 24*time.Hour, "how long a message the relay defers is retried before it is given up")
	fs.StringVar(&cfg.SPF, "spf", "", "SPF mechanism for the relay shown in sending domains' DNS records, such as include:_spf.relay.example (default: a mx)")
	fs.StringVar(&cfg.NoticeFrom, "notice-from", "tokend <no-reply@localhost.localdomain>", "sender of tokend's own mail, such as domain setup instructions: an address your relay accepts")
	fs.StringVar(&cfg.DNSResolver, "dns-resolver", "", "DNS server sending domains' records are checked with, HOST:PORT (default: the system's resolvers)")
	fs.DurationVar(&cfg.DNSRecheck, "dns-recheck", time.Hour, "how often verified sending domains' DNS records are checked again (a domain whose records are gone twice in a row loses its verification)")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis that holds the plan limits and the failed-authentication throttle across instances: redis://[user:pass@]host:port[/db]; without it they count per instance")
	fs.StringVar(&cfg.RedisFail, "redis-fail", "open", "when Redis is slow or down: open (count in this instance meanwhile) or closed (refuse with 503)")
	fs.DurationVar(&cfg.RedisTimeout, "redis-timeout", redislimits.DefaultTimeout, "bound of one call to Redis; a slower answer counts as a failure (three in a row skip Redis for 2 s)")
	fs.DurationVar(&cfg.CaptureRetention, "capture-retention", tokend.DefaultCaptureRetention, "how long captured mail (test keys' and sandbox sends') is kept before it is deleted")
	fs.IntVar(&cfg.SendsInFlight, "sends-in-flight", api.DefaultSendsInFlight, "sends this instance reads and renders at once; more wait briefly, then get 503")
	fs.IntVar(&cfg.AccountSendsInFlight, "account-sends-in-flight", api.DefaultSendsPerAccount, "sends one account may have in flight on this instance; more wait briefly, then get 429")
	fs.StringVar(&cfg.SecretsKeyFile, "secrets-key-file", "", "file with the key that seals DKIM private keys, created on first start (default: the database path + .key)")
	return fs
}

func serve(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	var cfg ServeConfig
	fs := serveFlags(&cfg, stderr)
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return &UsageError{"--tls-cert and --tls-key go together"}
	}
	for name, d := range map[string]time.Duration{"reset-grace": cfg.ResetGrace, "purge-after": cfg.PurgeAfter, "default-ttl": cfg.DefaultTTL} {
		if err := nonNegative(name, d); err != nil {
			return err
		}
	}
	for name, n := range map[string]int{"test-rate-multiplier": cfg.TestRateMultiplier, "auth-failure-limit": cfg.AuthFailureLimit, "alert-threshold": cfg.AlertThreshold,
		"sends-in-flight": cfg.SendsInFlight, "account-sends-in-flight": cfg.AccountSendsInFlight} {
		if n < 1 {
			return &UsageError{fmt.Sprintf("--%s must be at least 1", name)}
		}
	}
	if cfg.RedisTimeout < time.Millisecond || cfg.RedisTimeout > 10*time.Second {
		return &UsageError{fmt.Sprintf("--redis-timeout must be between 1ms and 10s, not %v", cfg.RedisTimeout)}
	}
	if cfg.RedisFail != "open" && cfg.RedisFail != "closed" {
		return &UsageError{fmt.Sprintf("--redis-fail must be open or closed, not %q", cfg.RedisFail)}
	}
	if cfg.UsageFlush <= 0 || cfg.AlertWindow <= 0 || cfg.SMTPRetryFor <= 0 || cfg.CaptureRetention <= 0 {
		return &UsageError{"--usage-flush, --alert-window, --smtp-retry-for and --capture-retention must be positive"}
	}
	if cfg.AlertWebhook != "" {
		if u, err := url.Parse(cfg.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &UsageError{fmt.Sprintf("--alert-webhook %q is not an http or https URL", cfg.AlertWebhook)}
		}
	}
	logs := newBufferedWriter(stderr, 100*time.Millisecond)
	defer logs.Close()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return Serve(ctx, cfg, getenv("USER"), stdout, logger)
}

// transport decides whether cfg may serve: tokens must not cross a network in
// clear, so plain HTTP on an address other than loopback needs the operator
// to say that TLS ends at a trusted proxy in front (--trusted-proxies) or to
// opt out (--insecure-http). It returns how tokend is reached, for the log.
func transport(ctx context.Context, cfg ServeConfig) (string, error) {
	switch {
	case cfg.TLSCert != "":
		return "https", nil
	case loopbackOnly(ctx, cfg.Addr):
		return "http on loopback", nil
	case len(cfg.TrustedProxies) > 0:
		return "http behind trusted proxies " + cfg.TrustedProxies.String() + " that terminate TLS", nil
	case cfg.InsecureHTTP:
		return "plain http on a network address (--insecure-http): tokens cross the network in clear", nil
	}
	return "", &UsageError{fmt.Sprintf("refusing to serve plain HTTP on %s, which is not a loopback address: API tokens would cross the network in clear. "+
		"Serve HTTPS with --tls-cert and --tls-key; or, if a reverse proxy in front terminates TLS, name it with --trusted-proxies CIDR; "+
		"or accept plain HTTP anyway with --insecure-http", cfg.Addr)}
}

// loopbackOnly reports whether addr can only be reached from this machine:
// a loopback IP, or a name that resolves to loopback addresses only. An empty
// host listens on every interface.
func loopbackOnly(ctx context.Context, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().IsLoopback()
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return false
		}
	}
	return true
}

// Serve runs the API until ctx is done, then shuts down gracefully. On an empty
// database it first creates the account "Default" and prints its admin token
// to stdout, once.
func Serve(ctx context.Context, cfg ServeConfig, operator string, stdout io.Writer, logger *slog.Logger) error {
	how, err := transport(ctx, cfg) // before anything is created or printed
	if err != nil {
		return err
	}
	format, err := apikey.NewFormat(cfg.TokenPrefix)
	if err != nil {
		return &UsageError{err.Error()}
	}
	if isPostgres(cfg.DB) && cfg.SecretsKeyFile == "" {
		return &UsageError{"--secrets-key-file is required with a PostgreSQL database: every instance must seal and open DKIM keys with the same key"}
	}
	db, err := openStore(ctx, cfg.DB, true)
	if err != nil {
		return err
	}
	defer db.Close()
	m := metrics.New()
	store := m.Store(db)
	keyring, err := loadKeyring(ctx, cfg, store, logger)
	if err != nil {
		return err
	}
	svc := tokend.NewService(store, tokend.Options{
		ResetGrace: cfg.ResetGrace, PurgeAfter: cfg.PurgeAfter, DefaultTTL: cfg.DefaultTTL, Format: format,
		DisableAuthCache: !cfg.AuthCache, Keyring: keyring, SPF: cfg.SPF,
	})
	if _, err := svc.CheckSecretsKey(ctx); errors.Is(err, tokend.ErrSecretsKeyMismatch) {
		return fmt.Errorf("secrets key file %s: %w; restore the key file this database was used with", secretsKeyPath(cfg), err)
	} else if err != nil {
		return err
	}
	var shared *redislimits.Limits
	if cfg.Redis != "" {
		if shared, err = redislimits.New(ctx, cfg.Redis, redislimits.Options{
			Policy: redislimits.Policy(cfg.RedisFail), Timeout: cfg.RedisTimeout, Logger: logger,
			Errors: m.RedisErrors.Inc,
			State: func(state string) {
				if state == "open" {
					m.RedisCircuit.Set(1)
				} else {
					m.RedisCircuit.Set(0)
				}
			},
		}); err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		defer shared.Close()
		svc.Users().ShareLimits(shared)
		logger.Info("plan rate limits, message allowances and the failed-authentication throttle hold across instances, in Redis", "redis_fail", cfg.RedisFail)
	} else if isPostgres(cfg.DB) {
		logger.Warn("plan rate limits, message allowances and the failed-authentication throttle count per instance (no --redis): " +
			"with N instances on this database an account can make up to N times its limit")
	} else {
		logger.Info("plan rate limits, message allowances and the failed-authentication throttle count in this instance's memory (no --redis)")
	}
	if n, err := svc.EnsureDomainKeys(ctx); err != nil {
		return fmt.Errorf("make DKIM keys: %w", err)
	} else if n > 0 {
		logger.Info("made DKIM keys for sending domains that had none; publish their DNS records", "domains", n)
	}
	if n, err := svc.EnsureDomainDNS(ctx); err != nil {
		return fmt.Errorf("prepare DNS checks: %w", err)
	} else if n > 0 {
		logger.Warn("sending domains made before DNS verification start unverified: live keys send from them once their records pass "+
			"(POST .../sending_domains/{id}/verify, or tokend domain trust ID for internal domains)", "domains", n)
	}
	if cfg.DNSRecheck < time.Second {
		return &UsageError{"--dns-recheck: must be at least 1s"}
	}
	resolver, err := newResolver(cfg.DNSResolver)
	if err != nil {
		return err
	}
	verifier := newVerifier(svc, cfg, shared)
	mailer, dispatchers, relay, err := newMailer(ctx, cfg, svc, verifier, m, logger)
	if err != nil {
		return err
	}
	if relay != nil {
		defer relay.Close()
	}

	acct, first, err := svc.Bootstrap(ctx, operatorName(operator))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	var setupCode string
	if first != nil {
		fmt.Fprintf(stdout, "Created account %q (id %d) and its first admin token:\n\n    %s\n\n"+
			"Store it now: tokend keeps only a hash of it and will not show it again.\n", acct.Name, acct.ID, first.Value)
		if setupCode, err = svc.Users().Invite(ctx, acct.ID, tokend.Admin); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}

	if cfg.AuthCache {
		start := time.Now()
		n, err := svc.WarmAuthCache(ctx)
		if err != nil {
			return fmt.Errorf("warm the authentication cache: %w", err)
		}
		logger.Info("authentication cache warm", "tokens", n, "duration", time.Since(start))
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	monitor, deliveries, domainOpts := newAlerts(ctx, cfg, svc, m, logger)
	monitor.Start()
	// The sign-in ceiling's alert goes out as the domain checks' do.
	svc.Users().AnnounceAlerts(domainOpts.Alert, domainOpts.Alerted)
	domainOpts.Resolver, domainOpts.Recheck = resolver, cfg.DNSRecheck
	domains := tokend.NewDomains(svc, mailer, domainOpts)
	streamsDone := make(chan struct{})
	handler := api.NewServer(svc, api.Options{
		Done:   streamsDone,
		Logger: logger, Metrics: m, Alerts: monitor, ServeMetrics: cfg.MetricsAddr == "",
		TestRateMultiplier: cfg.TestRateMultiplier, AuthFailureLimit: cfg.AuthFailureLimit,
		TrustedProxies: cfg.TrustedProxies, Mailer: mailer, Verifier: verifier, Domains: domains,
		SendLimits: api.SendLimits{Total: cfg.SendsInFlight, PerAccount: cfg.AccountSendsInFlight},
		Dashboard:  web.New(svc, mailer, web.Options{Logger: logger, HTTPS: api.IsHTTPS, Domains: domains}),
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(streamsDone) })
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		logger.Info("serving metrics", "addr", mln.Addr().String(), "url", "http://"+mln.Addr().String()+"/metrics")
		go func() {
			if err := metricsSrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
	}

	logger.Info("listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String(), "db", dbName(cfg.DB), "transport", how)
	if setupCode != "" {
		fmt.Fprintf(stdout, "\nTo use the dashboard, set the owner's email and password within 7 days (this link works once):\n\n    %s://%s/setup?code=%s\n\n",
			scheme, ln.Addr().String(), setupCode)
	}

	var wg sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	every := func(interval time.Duration, job func(ctx context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-bgCtx.Done():
					return
				case <-t.C:
					job(bgCtx)
				}
			}
		}()
	}
	for _, r := range append([]*jobs.Runner{deliveries}, dispatchers...) {
		if r != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.Run(bgCtx)
			}()
		}
	}
	if shared != nil {
		every(time.Minute, func(context.Context) { shared.Sweep(time.Now()) })
	}
	// DNS checks: new domains often, then hourly; verified ones every
	// --dns-recheck. Each process claims the domains it checks.
	checkDomains := func(ctx context.Context) {
		if n, err := domains.CheckDue(ctx); err != nil && ctx.Err() == nil {
			logger.Error("checking sending domains' DNS", "err", err)
		} else if n > 0 {
			logger.Debug("checked sending domains' DNS", "domains", n)
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); checkDomains(bgCtx) }() // the first round at once, without holding up the start
	every(min(15*time.Second, cfg.DNSRecheck), checkDomains)
	if isPostgres(cfg.DB) {
		// The backstop of the change feed: whatever it could ever have missed
		// is looked up afresh at least this often.
		every(authBackstop, func(context.Context) { svc.FlushAuthCache() })
	}
	every(10*time.Second, func(ctx context.Context) {
		if n, err := svc.Outbox().Pending(ctx, tokend.EmailJob); err == nil {
			m.EmailsQueued.Set(float64(n))
		}
	})
	purge(bgCtx, svc, mailer, logger) // expired tokens and old captured mail left from before a restart go at once
	every(svc.PurgeInterval(), func(ctx context.Context) { purge(ctx, svc, mailer, logger) })
	every(cfg.UsageFlush, func(ctx context.Context) {
		if err := svc.FlushUsage(ctx); err != nil {
			m.UsageFlushes.WithLabelValues("error").Inc()
			if ctx.Err() == nil {
				logger.Error("flushing usage", "err", err)
			}
			return
		}
		m.UsageFlushes.WithLabelValues("ok").Inc()
	})
	// A revocation made by another process reaches this one within about the
	// sync interval. If the change log cannot be read for authStaleAfter, the
	// cache may hold what was revoked meanwhile: it is flushed, and lookups go
	// to the database until the feed works again.
	syncEvery := authSyncInterval
	if isPostgres(cfg.DB) {
		syncEvery = authSyncIntervalShared
	}
	lastSync, flushed := time.Now(), false
	every(syncEvery, func(ctx context.Context) {
		err := svc.SyncAuthCache(ctx)
		switch {
		case err == nil:
			if flushed {
				logger.Info("the authentication change log is readable again")
			}
			lastSync, flushed = time.Now(), false
		case ctx.Err() != nil:
		case time.Since(lastSync) > authStaleAfter && !flushed:
			svc.FlushAuthCache()
			flushed = true
			logger.Error("cannot read the authentication change log; flushed the authentication cache", "err", err)
		default:
			logger.Error("syncing the authentication cache", "err", err)
		}
	})

	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()

	select {
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		logger.Info("shutting down")
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if serr := srv.Shutdown(shutCtx); serr != nil {
			err = fmt.Errorf("shutdown: %w", serr)
		}
		if metricsSrv != nil {
			metricsSrv.Shutdown(shutCtx)
		}
	}
	stopBackground()
	wg.Wait()
	// No request is running any more: write what the last ones counted.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelFlush()
	if ferr := svc.FlushUsage(flushCtx); ferr != nil {
		logger.Error("flushing usage at shutdown", "err", ferr)
		err = errors.Join(err, ferr)
	}
	if cerr := monitor.Close(flushCtx); cerr != nil {
		logger.Warn("alerts still queued at shutdown were not delivered", "err", cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	logger.Info("stopped")
	return err
}

// newVerifier is the one authentication policy, with its limits (the plan
// limits, the message allowances sending spends and the failed-authentication
// throttle) shared through Redis when it is configured.
func newVerifier(svc *tokend.Service, cfg ServeConfig, shared *redislimits.Limits) *tokend.Verifier {
	opts := tokend.VerifierOptions{TestRateMultiplier: cfg.TestRateMultiplier, AuthFailureLimit: cfg.AuthFailureLimit}
	if shared != nil {
		opts.Shared = shared
	}
	return tokend.NewVerifier(svc, opts)
}

// dbName is the --db value fit for a log: a URL without its password.
func dbName(db string) string {
	if u, err := url.Parse(db); err == nil && isPostgres(db) {
		return u.Redacted()
	}
	return db
}

// purge deletes expired tokens that are due, and captured mail past the
// capture retention.
func purge(ctx context.Context, svc *tokend.Service, mailer *tokend.Mailer, logger *slog.Logger) {
	if n, err := svc.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
		logger.Error("purging expired tokens", "err", err)
	} else if n > 0 {
		logger.Info("purged expired tokens", "count", n)
	}
	if n, err := mailer.PruneCaptured(ctx); err != nil && ctx.Err() == nil {
		logger.Error("deleting captured mail past its retention", "err", err)
	} else if n > 0 {
		logger.Info("deleted captured mail past its retention", "emails", n, "retention", mailer.CaptureRetention())
	}
}

// authSyncInterval is how often the authentication cache applies changes made
// by other processes: a revocation reaches every process within about this long.
const authSyncInterval = 250 * time.Millisecond

// authSyncIntervalShared is the same on a database several instances share,
// where a revocation must reach every instance within 100 ms.
const authSyncIntervalShared = 40 * time.Millisecond

// authBackstop is how often an instance on a shared database forgets its
// whole authentication cache, whatever the change feed says.
const authBackstop = 10 * time.Minute

// authStaleAfter is how long the change log may be unreadable before the
// cache stops being trusted.
const authStaleAfter = 2 * time.Second

func operatorName(user string) string {
	if user == "" {
		return "tokend"
	}
	return user
}
