package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
	redislimits "github.com/tokend/tokend/internal/redis"
	"github.com/tokend/tokend/internal/smtpd"
)

// Config is everything an instance of tokend is made of: what "tokend serve"
// takes from its flags and environment. Default gives every field its
// default; the flags start from it.
type Config struct {
	Addr        string
	DB          string // a SQLite file, or a postgres:// URL
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
	// SecretScanningKeys is the file of GitHub's secret scanning public keys
	// (its public_keys JSON); with it, POST /api/secret_scanning/github
	// takes GitHub's reports of leaked tokens.
	SecretScanningKeys string

	// SMTPRelay is the relay live email goes out through; without it, live
	// sends answer 503.
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
	// EmailLogRetention is how long the logs of sent mail (messages and
	// their events) are kept.
	EmailLogRetention time.Duration
	// WebhookRetryFor is how long a webhook delivery keeps being retried;
	// WebhookAllowHTTP lets webhooks use http:// to loopback hosts, and
	// WebhookAllowPrivate reach private and internal addresses.
	WebhookRetryFor     time.Duration
	WebhookAllowHTTP    bool
	WebhookAllowPrivate bool
	// WebhookDeactivateAfter is how long an endpoint may fail every
	// delivery before it is deactivated.
	WebhookDeactivateAfter time.Duration
	// SendsInFlight and AccountSendsInFlight bound the sends read and
	// rendered at once, in all and per account.
	SendsInFlight        int
	AccountSendsInFlight int

	// SMTPAddr and SMTPSAddr are where apps submit mail over SMTP, with an
	// API token as the password: STARTTLS, and TLS from the first byte.
	// Without --tls-cert, on loopback only, they present a self-signed
	// certificate made at start.
	SMTPAddr  string
	SMTPSAddr string
	// SMTPHostname is the name the SMTP listeners greet with (default: the
	// machine's).
	SMTPHostname string
	// SMTPMaxConnsPerIP bounds the SMTP connections of one client address;
	// SMTPIdle how long an SMTP session may send nothing.
	SMTPMaxConnsPerIP int
	SMTPIdle          time.Duration
	// BounceDomain, when set, gives every live message a return path of its
	// own on it (bounces+<message id>@domain); MXAddr is where tokend takes
	// the bounces sent there (the domain's MX points at it).
	BounceDomain string
	MXAddr       string

	// Redis, when set, holds the limits across instances.
	Redis        string
	RedisFail    string
	RedisTimeout time.Duration
}

// Default is the configuration of "tokend serve" without flags.
func Default() Config {
	return Config{
		Addr: "127.0.0.1:8080", DB: "./tokend.db",
		ResetGrace: 12 * time.Hour, PurgeAfter: 24 * time.Hour,
		TokenPrefix:        apikey.DefaultPrefix,
		LogLevel:           slog.LevelInfo,
		TestRateMultiplier: tokend.DefaultTestRateMultiplier,
		AuthFailureLimit:   tokend.DefaultAuthFailureLimit,
		UsageFlush:         10 * time.Second,
		AlertThreshold:     20, AlertWindow: time.Minute,
		AuthCache:              true,
		SMTPRetryFor:           24 * time.Hour,
		NoticeFrom:             "tokend <no-reply@localhost.localdomain>",
		DNSRecheck:             time.Hour,
		CaptureRetention:       tokend.DefaultCaptureRetention,
		EmailLogRetention:      tokend.DefaultEmailLogRetention,
		WebhookRetryFor:        72 * time.Hour,
		WebhookDeactivateAfter: tokend.WebhookDeactivateAfter,
		SendsInFlight:          api.DefaultSendsInFlight,
		AccountSendsInFlight:   api.DefaultSendsPerAccount,
		SMTPMaxConnsPerIP:      smtpd.DefaultMaxConnsPerIP,
		SMTPIdle:               smtpd.DefaultIdle,
		RedisFail:              string(redislimits.FailOpen),
		RedisTimeout:           redislimits.DefaultTimeout,
	}
}

// ConfigError is a configuration that cannot run; its message names the
// setting as a flag.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return &ConfigError{"--tls-cert and --tls-key go together"}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"reset-grace", c.ResetGrace}, {"purge-after", c.PurgeAfter}, {"default-ttl", c.DefaultTTL}} {
		if d.v < 0 {
			return &ConfigError{fmt.Sprintf("--%s must not be negative, got %v", d.name, d.v)}
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"test-rate-multiplier", c.TestRateMultiplier}, {"auth-failure-limit", c.AuthFailureLimit}, {"alert-threshold", c.AlertThreshold},
		{"sends-in-flight", c.SendsInFlight}, {"account-sends-in-flight", c.AccountSendsInFlight}} {
		if n.v < 1 {
			return &ConfigError{fmt.Sprintf("--%s must be at least 1", n.name)}
		}
	}
	if c.RedisTimeout < time.Millisecond || c.RedisTimeout > 10*time.Second {
		return &ConfigError{fmt.Sprintf("--redis-timeout must be between 1ms and 10s, not %v", c.RedisTimeout)}
	}
	if c.RedisFail != string(redislimits.FailOpen) && c.RedisFail != string(redislimits.FailClosed) {
		return &ConfigError{fmt.Sprintf("--redis-fail must be open or closed, not %q", c.RedisFail)}
	}
	if c.UsageFlush <= 0 || c.AlertWindow <= 0 || c.SMTPRetryFor <= 0 || c.CaptureRetention <= 0 || c.EmailLogRetention <= 0 ||
		c.WebhookRetryFor <= 0 || c.WebhookDeactivateAfter <= 0 {
		return &ConfigError{"--usage-flush, --alert-window, --smtp-retry-for, --capture-retention, --email-log-retention, --webhook-retry-for " +
			"and --webhook-deactivate-after must be positive"}
	}
	if c.SMTPMaxConnsPerIP < 1 || c.SMTPIdle < time.Second {
		return &ConfigError{"--smtp-max-conns-per-ip must be at least 1 and --smtp-idle at least 1s"}
	}
	if c.MXAddr != "" && c.BounceDomain == "" {
		return &ConfigError{"--mx-addr needs --bounce-domain: the MX takes bounces for the return paths on that domain"}
	}
	if c.BounceDomain != "" && !tokend.ValidAddress("bounces@"+c.BounceDomain) {
		return &ConfigError{fmt.Sprintf("--bounce-domain %q is not a domain name", c.BounceDomain)}
	}
	if c.TLSCert == "" {
		for _, l := range []struct{ flag, addr string }{{"smtp-addr", c.SMTPAddr}, {"smtps-addr", c.SMTPSAddr}} {
			if l.addr != "" && !loopbackAddr(l.addr) {
				return &ConfigError{fmt.Sprintf("--%s %s is not a loopback address: give the certificate SMTP clients will check with --tls-cert and --tls-key "+
					"(without them, tokend makes a self-signed one, on loopback only)", l.flag, l.addr)}
			}
		}
	}
	if c.DNSRecheck < time.Second {
		return &ConfigError{"--dns-recheck: must be at least 1s"}
	}
	if c.AlertWebhook != "" {
		if u, err := url.Parse(c.AlertWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &ConfigError{fmt.Sprintf("--alert-webhook %q is not an http or https URL", c.AlertWebhook)}
		}
	}
	if _, err := apikey.NewFormat(c.TokenPrefix); err != nil {
		return &ConfigError{err.Error()}
	}
	if IsPostgres(c.DB) && c.SecretsKeyFile == "" {
		return &ConfigError{"--secrets-key-file is required with a PostgreSQL database: every instance must seal and open DKIM keys with the same key"}
	}
	return nil
}

// loopbackAddr reports whether addr (host:port) names a loopback address or
// localhost.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// IsPostgres reports whether a --db value names a PostgreSQL database.
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// DBName is a --db value fit for a log: a URL without its password.
func DBName(db string) string {
	if u, err := url.Parse(db); err == nil && IsPostgres(db) {
		return u.Redacted()
	}
	return db
}

// SecretsKeyPath is where the secrets key lives: --secrets-key-file, or the
// database's path with ".key" appended.
func SecretsKeyPath(db, keyFile string) string {
	if keyFile != "" {
		return keyFile
	}
	return db + ".key"
}
