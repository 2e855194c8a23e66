// Package metrics holds tokend's Prometheus collectors and a Store wrapper
// that counts store errors.
package metrics

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokend/tokend"
)

// Metrics is one registry with every collector tokend exports.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // route, method, status
	Latency         *prometheus.HistogramVec // route
	AuthOutcomes    *prometheus.CounterVec   // outcome
	RateLimited     *prometheus.CounterVec   // scope: account, messages or address
	StoreErrors     *prometheus.CounterVec   // op
	UsageFlushes    *prometheus.CounterVec   // result
	Alerts          *prometheus.CounterVec   // type
	AlertDeliveries *prometheus.CounterVec   // result
	// WebhookDeliveries counts email event webhook attempts by result.
	WebhookDeliveries *prometheus.CounterVec
	Emails            *prometheus.CounterVec // event: accepted, captured, delivered, deferred, failed
	EmailsQueued      prometheus.Gauge       // live messages waiting for delivery
	CapturedDeleted   *prometheus.CounterVec // reason: quota or retention
	// SMTP counts what the SMTP listeners see, by server (submission or mx),
	// what (connection, auth, message, bounce) and result.
	SMTP         *prometheus.CounterVec
	RedisErrors  prometheus.Counter // failed calls to Redis
	RedisCircuit prometheus.Gauge   // 1 while Redis is skipped after failures
}

// New returns collectors registered on a fresh registry, with Go and process metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokend_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		AuthOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_auth_attempts_total", Help: "Authentication attempts by outcome: ok, missing, invalid, expired, throttled, ip_not_allowed.",
		}, []string{"outcome"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_rate_limited_total", Help: "Requests refused with 429, by scope: account (plan limit), messages (message allowance) or address (failed authentication).",
		}, []string{"scope"}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_store_errors_total", Help: "Store operations that failed for a reason other than the caller's input.",
		}, []string{"op"}),
		UsageFlushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_usage_flushes_total", Help: "Batched usage writes by result.",
		}, []string{"result"}),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_alerts_total", Help: "Unusual-activity alerts raised, by type.",
		}, []string{"type"}),
		AlertDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_alert_deliveries_total", Help: "Webhook delivery attempts by result: delivered, retried, failed, dropped.",
		}, []string{"result"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_webhook_deliveries_total", Help: "Email event webhook delivery attempts by result: delivered, retried, failed.",
		}, []string{"result"}),
	}
	m.Emails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_emails_total", Help: "Emails by event: accepted (live, queued for delivery), captured (test key or sandbox), " +
			"delivered, deferred (a delivery attempt failed and will be retried) and failed (given up), counted per recipient.",
	}, []string{"event"})
	for _, ev := range []string{"accepted", "captured", "delivered", "deferred", "failed"} {
		m.Emails.WithLabelValues(ev)
	}
	m.EmailsQueued = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tokend_emails_queued", Help: "Live messages waiting for delivery, as last counted.",
	})
	m.CapturedDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_captured_emails_deleted_total", Help: "Captured emails deleted by tokend, by reason: quota (the oldest of a full sandbox, " +
			"to make room) or retention (older than --capture-retention).",
	}, []string{"reason"})
	for _, r := range []string{"quota", "retention"} {
		m.CapturedDeleted.WithLabelValues(r)
	}
	m.SMTP = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_smtp_events_total", Help: "What the SMTP listeners see, by server (submission or mx), what (connection: refused:reason; " +
			"auth: ok, invalid, expired, throttled, ip_not_allowed, error; message: accepted, refused; bounce: recorded, refused, unknown_recipient, relay_denied) and result.",
	}, []string{"server", "what", "result"})
	m.RedisErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokend_redis_errors_total", Help: "Calls to Redis (shared limits) that failed or timed out.",
	})
	m.RedisCircuit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tokend_redis_circuit_open", Help: "1 while Redis is skipped after failing and limits follow --redis-fail; 0 otherwise.",
	})
	m.Registry.MustRegister(m.Requests, m.Latency, m.AuthOutcomes, m.RateLimited, m.StoreErrors,
		m.UsageFlushes, m.Alerts, m.AlertDeliveries, m.WebhookDeliveries, m.Emails, m.EmailsQueued, m.CapturedDeleted, m.SMTP, m.RedisErrors, m.RedisCircuit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Store wraps s so that failures other than domain errors (not found, invalid,
// ...) count in StoreErrors.
func (m *Metrics) Store(s tokend.Store) tokend.Store { return &store{Store: s, m: m} }

type store struct {
	tokend.Store
	m *Metrics
}

func (s *store) count(op string, err error) error {
	if tokend.ErrorCode(err) == tokend.EINTERNAL {
		s.m.StoreErrors.WithLabelValues(op).Inc()
	}
	return err
}

func (s *store) Read(ctx context.Context, fn func(tokend.Tx) error) error {
	return s.count("read", s.Store.Read(ctx, fn))
}

func (s *store) Write(ctx context.Context, fn func(tokend.Tx) error) error {
	return s.count("write", s.Store.Write(ctx, fn))
}

func (s *store) TokenByHash(ctx context.Context, hash []byte) (*tokend.Token, error) {
	t, err := s.Store.TokenByHash(ctx, hash)
	return t, s.count("token_by_hash", err)
}
