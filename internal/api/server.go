// Package api serves tokend over HTTP: the API Tokens contract, the resources
// its permissions name, usage, the audit log, health, metrics and the OpenAPI
// document.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/alert"
	"github.com/tokend/tokend/internal/metrics"
)

// Options are the server's dependencies and limits. Verifier, Mailer and
// Domains are required: the application (internal/app) builds them once,
// for every way in. Other zero values take the defaults.
type Options struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics // default: a fresh registry
	Alerts  *alert.Monitor   // nil: no unusual-activity alerts
	// ServeMetrics serves GET /metrics on this handler (when no separate metrics address is used).
	ServeMetrics bool
	// Dashboard, when set, serves its pages beside the API on the same mux
	// (and its page for any path outside /api that no route serves).
	Dashboard Dashboard
	// Verifier decides who calls; Mailer sends and captures email, spending
	// message allowances through the same Verifier; Domains checks sending
	// domains' DNS.
	Verifier *tokend.Verifier
	Mailer   *tokend.Mailer
	Domains  *tokend.Domains
	// Logs serve the email logs; Suppressions the suppression lists;
	// Webhooks the endpoints that receive email events.
	Logs         *tokend.EmailLogs
	Suppressions *tokend.Suppressions
	Webhooks     *tokend.Webhooks
	// TrustedProxies are the peers whose X-Forwarded-For / Forwarded headers
	// are believed for the client address (and X-Forwarded-Proto for HSTS).
	TrustedProxies Prefixes
	Now            func() time.Time // the clock; time.Now if nil
	// SendLimits bound the sends in flight, per account and in all.
	SendLimits SendLimits
	// SecretScanning, when set, takes GitHub's secret scanning reports at
	// POST /api/secret_scanning/github (it checks their signatures itself);
	// without it that route answers 503.
	SecretScanning http.Handler
	// Done, when closed, ends the long-lived responses (the change streams
	// of GET /api/auth_changes), so that a graceful shutdown need not wait
	// for them. Close it as the HTTP server starts shutting down.
	Done <-chan struct{}
}

// Dashboard is what the API needs of the dashboard (internal/web).
type Dashboard interface {
	Routes(handle func(pattern string, h http.Handler))
	NotFound(w http.ResponseWriter, r *http.Request)
}

// Server is the HTTP API. Create it with NewServer.
type Server struct {
	svc      *tokend.Service
	opts     Options
	log      *slog.Logger
	metrics  *metrics.Metrics
	mux      *http.ServeMux
	verifier *tokend.Verifier
	mailer   *tokend.Mailer
	domains  *tokend.Domains
	ids      *requestIDs
	sends    *sendLimiter

	// Counters of the hot path, resolved once instead of by label per request.
	authOK, authMissing, authInvalid, authExpired, authThrottled, authIPRefused prometheus.Counter
	limitedAccount, limitedAddress, limitedMessages                             prometheus.Counter
}

// NewServer returns the API handler over svc. It panics when a required
// dependency is missing: that is a wiring mistake, not a condition to serve.
func NewServer(svc *tokend.Service, opts Options) http.Handler {
	if opts.Verifier == nil || opts.Mailer == nil || opts.Domains == nil || opts.Logs == nil || opts.Suppressions == nil || opts.Webhooks == nil {
		panic("api.NewServer: Options.Verifier, Mailer, Domains, Logs, Suppressions and Webhooks are required (internal/app builds them)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger, metrics: opts.Metrics, mux: http.NewServeMux(),
		ids: newRequestIDs(), sends: newSendLimiter(opts.SendLimits)}
	s.verifier, s.mailer, s.domains = opts.Verifier, opts.Mailer, opts.Domains
	a, rl := opts.Metrics.AuthOutcomes, opts.Metrics.RateLimited
	s.authOK, s.authMissing, s.authInvalid = a.WithLabelValues("ok"), a.WithLabelValues("missing"), a.WithLabelValues("invalid")
	s.authExpired, s.authThrottled = a.WithLabelValues("expired"), a.WithLabelValues("throttled")
	s.authIPRefused = a.WithLabelValues("ip_not_allowed")
	s.limitedAccount, s.limitedAddress = rl.WithLabelValues("account"), rl.WithLabelValues("address")
	s.limitedMessages = rl.WithLabelValues("messages")
	s.routes()
	return s
}

// ServeHTTP runs the request, then accounts for it once: access log, metrics,
// the token's usage and alert observation. A panic becomes a 500. Every
// response carries X-Request-Id and X-Content-Type-Options, and HSTS when the
// client reached tokend over HTTPS.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &StatusRecorder{ResponseWriter: w}
	ip, viaProxy := s.clientAddr(r)
	st := &requestState{id: s.ids.from(r.Header)}
	h := w.Header()
	st.header[0] = st.id
	h[headerRequestID] = st.header[:]
	h[headerNoSniff] = noSniff
	if r.TLS != nil || viaProxy && forwardedHTTPS(r.Header) {
		h[headerHSTS] = hsts
		st.https = true
	}
	ctx := context.WithValue(tokend.WithClientAddr(r.Context(), ip), stateKey{}, st)
	r = r.WithContext(ctx)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(ctx, "panic serving request", "request_id", st.id, "method", MethodLabel(r.Method),
				"path", clip(r.URL.Path, maxLoggedPath), "panic", v)
			if rec.status == 0 {
				encode(rec, http.StatusInternalServerError, map[string]any{"error": "Internal Server Error"})
			}
		}
		s.account(r, rec.Code(), time.Since(start), ip, st)
	}()
	s.mux.ServeHTTP(rec, r)
}

// Canonical header names and shared values, set without canonicalization or
// allocation on every response. The slices have capacity 1, so an Add by a
// handler copies rather than writes into them.
const (
	headerRequestID = "X-Request-Id"
	headerNoSniff   = "X-Content-Type-Options"
	headerHSTS      = "Strict-Transport-Security"
	headerCache     = "Cache-Control"
)

var (
	noSniff = []string{"nosniff"}[:1:1]
	hsts    = []string{"max-age=63072000; includeSubDomains"}[:1:1]
	noStore = []string{"no-store"}[:1:1]
)

// maxLoggedPath bounds the request path copied into error logs.
const maxLoggedPath = 256

// MethodLabel maps a request method to a fixed set, so that metric labels and
// log fields cannot grow with what clients send.
func MethodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// routeLabel is the matched route pattern, or "unmatched" for anything the
// catch-all answers: both come from the fixed set of registered routes.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" || r.Pattern == "/" {
		return "unmatched"
	}
	return r.Pattern
}

func (s *Server) account(r *http.Request, status int, took time.Duration, ip string, st *requestState) {
	route, method := routeLabel(r), MethodLabel(r.Method)
	s.metrics.Requests.WithLabelValues(route, method, statusLabel(status)).Inc()
	s.metrics.Latency.WithLabelValues(route).Observe(took.Seconds())
	caller := st.token
	if caller != nil {
		s.svc.RecordRequest(caller.ID, status)
	}
	if s.opts.Alerts != nil {
		obs := alert.Observation{At: s.opts.Now(), Addr: ip, Status: status}
		if caller != nil {
			obs.TokenID, obs.AccountID = caller.ID, caller.AccountID
		}
		s.opts.Alerts.Observe(obs)
	}
	// A reverse proxy asks GET /api/verify once per request it forwards and
	// logs that request itself: the passes are logged at debug level only
	// (counted in the metrics and usage all the same), refusals as usual.
	level := slog.LevelInfo
	if status == http.StatusNoContent && st.verifyPass {
		level = slog.LevelDebug
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", st.id),
		slog.String("method", method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", took),
		slog.String("remote", ip),
	}
	if caller != nil {
		attrs = append(attrs, slog.Int64("token_id", caller.ID))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// statusLabel renders a status for the metrics; statuses come from handlers,
// so the set is fixed, but anything outside 100-599 still folds into one value.
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// StatusRecorder remembers the status a handler answered with (Code), for
// the access log and metrics of tokend and its gateway.
type StatusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *StatusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Code is the status answered, 200 when the handler wrote nothing.
func (w *StatusRecorder) Code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *StatusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noRoute answers requests no route matches: 405 with Allow when the path
// exists under other methods, 404 otherwise; the dashboard's own page for a
// path outside the API.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	if s.opts.Dashboard != nil && !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/api" {
		s.opts.Dashboard.NotFound(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 && r.Method != http.MethodHead {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		encode(w, http.StatusMethodNotAllowed, map[string]any{"error": "Method Not Allowed"})
		return
	}
	encode(w, http.StatusNotFound, map[string]any{"error": "Not Found"})
}

// pathID parses a positive integer path parameter; anything else is ENOTFOUND,
// because no such record can exist.
func pathID(r *http.Request, name string) (int64, error) {
	id, ok := parseID(r.PathValue(name))
	if !ok {
		return 0, errNotFound
	}
	return id, nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	encode(w, http.StatusOK, map[string]string{"status": "ok"})
}
