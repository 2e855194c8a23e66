package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/tokend/tokend/internal/app"
)

// ServeConfig is everything "tokend serve" takes from flags and the environment.
type ServeConfig = app.Config

// serveFlags defines serve's flags on a new flag set, writing into cfg.
func serveFlags(cfg *ServeConfig, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("serve", stderr)
	def := app.Default()
	fs.StringVar(&cfg.Addr, "addr", def.Addr, "address to listen on")
	fs.StringVar(&cfg.DB, "db", def.DB, "SQLite database file (created if missing), or a postgres://user:pass@host:port/db URL")
	fs.DurationVar(&cfg.ResetGrace, "reset-grace", def.ResetGrace, "how long a reset token keeps working")
	fs.DurationVar(&cfg.PurgeAfter, "purge-after", def.PurgeAfter, "expired tokens are deleted at most this long after expiry")
	fs.DurationVar(&cfg.DefaultTTL, "default-ttl", def.DefaultTTL, "lifetime of tokens created without expires_at (0: never expire)")
	fs.StringVar(&cfg.TokenPrefix, "token-prefix", def.TokenPrefix, "prefix of token values, as in tk_live_...")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file")
	fs.Var(&cfg.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of reverse proxies that terminate TLS; the client address comes from X-Forwarded-For/Forwarded only when the peer is one of them")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address without TLS or a trusted proxy in front")
	fs.TextVar(&cfg.LogLevel, "log-level", def.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the API address")
	fs.IntVar(&cfg.TestRateMultiplier, "test-rate-multiplier", def.TestRateMultiplier, "test keys get this many times their plan's rate limit")
	fs.IntVar(&cfg.AuthFailureLimit, "auth-failure-limit", def.AuthFailureLimit, "failed authentications per minute a client address may make before 429")
	fs.DurationVar(&cfg.UsageFlush, "usage-flush", def.UsageFlush, "how often usage counts are written to the database")
	fs.StringVar(&cfg.AlertWebhook, "alert-webhook", "", "URL that receives unusual-activity alerts as JSON POSTs")
	fs.StringVar(&cfg.SecretScanningKeys, "secret-scanning-keys", "", "file of GitHub's secret scanning public keys (its public_keys JSON, re-read when it changes); enables POST /api/secret_scanning/github")
	fs.IntVar(&cfg.AlertThreshold, "alert-threshold", def.AlertThreshold, "401/403/429 answers within --alert-window that raise an alert for a token or address")
	fs.DurationVar(&cfg.AlertWindow, "alert-window", def.AlertWindow, "window for --alert-threshold")
	fs.BoolVar(&cfg.AuthCache, "auth-cache", def.AuthCache, "authenticate from an in-memory cache (false: a database lookup per request, for comparison)")
	fs.StringVar(&cfg.SMTPRelay, "smtp-relay", "", "SMTP relay live email is delivered through: smtp://[user:pass@]host[:port] (STARTTLS when offered) or smtps://... (TLS); without it, live sends answer 503")
	fs.DurationVar(&cfg.SMTPRetryFor, "smtp-retry-for", def.SMTPRetryFor, "how long a message the relay defers is retried before it is given up")
	fs.StringVar(&cfg.SPF, "spf", "", "SPF mechanism for the relay shown in sending domains' DNS records, such as include:_spf.relay.example (default: a mx)")
	fs.StringVar(&cfg.NoticeFrom, "notice-from", def.NoticeFrom, "sender of tokend's own mail, such as domain setup instructions: an address your relay accepts")
	fs.StringVar(&cfg.DNSResolver, "dns-resolver", "", "DNS server sending domains' records are checked with, HOST:PORT (default: the system's resolvers)")
	fs.DurationVar(&cfg.DNSRecheck, "dns-recheck", def.DNSRecheck, "how often verified sending domains' DNS records are checked again (a domain whose records are gone twice in a row loses its verification)")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis that holds the plan limits and the failed-authentication throttle across instances: redis://[user:pass@]host:port[/db]; without it they count per instance")
	fs.StringVar(&cfg.RedisFail, "redis-fail", def.RedisFail, "when Redis is slow or down: open (count in this instance meanwhile) or closed (refuse with 503)")
	fs.DurationVar(&cfg.RedisTimeout, "redis-timeout", def.RedisTimeout, "bound of one call to Redis; a slower answer counts as a failure (three in a row skip Redis for 2 s)")
	fs.DurationVar(&cfg.CaptureRetention, "capture-retention", def.CaptureRetention, "how long captured mail (test keys' and sandbox sends') is kept before it is deleted")
	fs.DurationVar(&cfg.EmailLogRetention, "email-log-retention", def.EmailLogRetention, "how long the email logs (each sent message's state and events) are kept before they are deleted")
	fs.DurationVar(&cfg.WebhookRetryFor, "webhook-retry-for", def.WebhookRetryFor, "how long a webhook delivery that fails keeps being retried (an endpoint failing every delivery for 24h is deactivated)")
	fs.DurationVar(&cfg.WebhookDeactivateAfter, "webhook-deactivate-after", def.WebhookDeactivateAfter, "how long a webhook endpoint may fail every delivery before it is deactivated (with an alert)")
	fs.BoolVar(&cfg.WebhookAllowHTTP, "webhook-allow-http", def.WebhookAllowHTTP, "let webhooks use http:// URLs of loopback hosts (local development and tests)")
	fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", def.WebhookAllowPrivate, "let webhooks reach addresses that are not public (private, loopback, link-local, other special-purpose ranges, this host's own: an internal receiver); off, such URLs are refused")
	fs.IntVar(&cfg.SendsInFlight, "sends-in-flight", def.SendsInFlight, "sends this instance reads and renders at once; more wait briefly, then get 503")
	fs.IntVar(&cfg.AccountSendsInFlight, "account-sends-in-flight", def.AccountSendsInFlight, "sends one account may have in flight on this instance; more wait briefly, then get 429")
	fs.StringVar(&cfg.SMTPAddr, "smtp-addr", "", "address of the SMTP submission listener (STARTTLS; AUTH with username api and an API token as the password), such as 127.0.0.1:2587")
	fs.StringVar(&cfg.SMTPSAddr, "smtps-addr", "", "address of the SMTP submission listener with TLS from the first byte, such as 127.0.0.1:2465")
	fs.StringVar(&cfg.SMTPHostname, "smtp-hostname", "", "name the SMTP listeners greet with (default: this machine's)")
	fs.IntVar(&cfg.SMTPMaxConnsPerIP, "smtp-max-conns-per-ip", def.SMTPMaxConnsPerIP, "SMTP connections one client address may hold open at once")
	fs.DurationVar(&cfg.SMTPIdle, "smtp-idle", def.SMTPIdle, "how long an SMTP session may send nothing before it is closed")
	fs.StringVar(&cfg.BounceDomain, "bounce-domain", "", "domain of the return paths live mail leaves with (bounces+<message id>@DOMAIN), so that bounces by mail name their message; its MX must reach --mx-addr")
	fs.StringVar(&cfg.MXAddr, "mx-addr", "", "address where tokend takes bounces for --bounce-domain (no AUTH, no relaying), such as 0.0.0.0:25")
	fs.StringVar(&cfg.SecretsKeyFile, "secrets-key-file", "", "file with the key that seals DKIM private keys, created on first start (default: the database path + .key)")
	return fs
}

func serve(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	var cfg ServeConfig
	fs := serveFlags(&cfg, stderr)
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return configError(err)
	}
	logger, closeLogs := newLogger(stderr, cfg.LogLevel)
	defer closeLogs()
	return Serve(ctx, cfg, getenv("USER"), stdout, logger)
}

// configError makes a configuration error a usage error (exit 2); others pass.
func configError(err error) error {
	var ce *app.ConfigError
	if errors.As(err, &ce) {
		return &UsageError{ce.Msg}
	}
	return err
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

// Serve runs tokend until ctx is done, then shuts down gracefully. On an
// empty database it first creates the account "Default" and prints its admin
// token to stdout, once, with a link that sets up the dashboard's owner.
func Serve(ctx context.Context, cfg ServeConfig, operator string, stdout io.Writer, logger *slog.Logger) error {
	how, err := transport(ctx, cfg) // before anything is created or printed
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{Logger: logger, Operator: operatorName(operator)})
	if err != nil {
		return configError(err)
	}
	defer a.Close()
	first, err := a.Bootstrap(ctx)
	if err != nil {
		return err
	}
	if first != nil {
		printNewToken(stdout, fmt.Sprintf("Created account %q (id %d) and its first admin token", first.Account.Name, first.Account.ID), first.Token.Value)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var mln net.Listener
	if cfg.MetricsAddr != "" {
		if mln, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		logger.Info("serving metrics", "addr", mln.Addr().String(), "url", listenURL(mln, false)+"/metrics")
	}
	ls := app.Listeners{HTTP: ln, Metrics: mln}
	if err := a.ListenSMTP(&ls); err != nil {
		ln.Close()
		if mln != nil {
			mln.Close()
		}
		return err
	}
	for _, l := range []struct {
		ln  net.Listener
		msg string
	}{{ls.SMTP, "listening for SMTP submission (STARTTLS)"}, {ls.SMTPS, "listening for SMTP submission (TLS)"}, {ls.MX, "listening for bounces (MX)"}} {
		if l.ln != nil {
			logger.Info(l.msg, "addr", l.ln.Addr().String())
		}
	}
	base := listenURL(ln, cfg.TLSCert != "")
	logger.Info("listening", "addr", ln.Addr().String(), "url", base, "db", app.DBName(cfg.DB), "transport", how)
	if first != nil {
		fmt.Fprintf(stdout, "\nTo use the dashboard, set the owner's email and password within 7 days (this link works once):\n\n    %s\n\n",
			setupURL(base, first.SetupCode))
	}
	return a.Serve(ctx, ls)
}

// listenURL is the URL of what serves on ln: https with TLS, http otherwise.
func listenURL(ln net.Listener, tls bool) string {
	if tls {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

func operatorName(user string) string {
	if user == "" {
		return "tokend"
	}
	return user
}
