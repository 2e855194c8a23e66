package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/app"
	tokenddns "github.com/tokend/tokend/internal/dns"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// env is a running API over a real SQLite file, with two accounts: Acme
// (admin token e.admin) and Other (admin token e.otherAdmin).
type env struct {
	t          *testing.T
	srv        *httptest.Server
	svc        *tokend.Service
	store      tokend.Store
	mailer     *tokend.Mailer
	domains    *tokend.Domains
	dns        *testutil.DNSServer // what the domains' checks ask
	clock      *testutil.Clock
	dump       func() [][]byte // what the store holds, for secret scans
	logs       *testutil.Buffer
	acme       int64
	admin      string
	adminID    int64
	other      int64
	otherAdmin string
	secrets    *secrets // every token value issued, to check logs never hold one
	cfg        envConfig
	app        *app.App
}

type secrets struct {
	mu     sync.Mutex
	values []string
}

func (s *secrets) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values = append(s.values, v)
}

// with returns e reporting to t, for use inside subtests.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// envConfig is what newEnv builds: the application's configuration and
// options, and the plan of the two accounts.
type envConfig struct {
	app          app.Config
	opts         app.Options
	plan         tokend.Plan
	rateLimit    int
	messageLimit int // enterprise only; 0: the plan's default
	// deliver false is a server without a relay: live sends answer 503.
	// With one and no relay of the test's, live mail is queued and never
	// delivered.
	deliver bool
	// streams keeps change streams open until the test ends; otherwise each
	// ends after its ready event, so that a plain request gets a whole answer.
	streams bool
	// dump reads back what the store holds (with withDB).
	dump func() [][]byte
}

type envOption func(*envConfig)

func withDefaultTTL(d time.Duration) envOption { return func(c *envConfig) { c.app.DefaultTTL = d } }

// withPlan puts both accounts on plan (with limit for enterprise).
func withPlan(plan tokend.Plan, limit int) envOption {
	return func(c *envConfig) { c.plan, c.rateLimit = plan, limit }
}

// withMessageLimit gives both (enterprise) accounts a message allowance of
// their own.
func withMessageLimit(n int) envOption { return func(c *envConfig) { c.messageLimit = n } }

// withConfig changes the application's configuration, as serve's flags do.
func withConfig(f func(*app.Config)) envOption { return func(c *envConfig) { f(&c.app) } }

// withAlerts sends unusual-activity alerts of threshold events a window to
// the webhook at url, as serve --alert-webhook does; result is told each
// delivery's outcome ("delivered", "retried", "failed", "dropped").
func withAlerts(url string, threshold int, result func(string)) envOption {
	return func(c *envConfig) {
		c.app.AlertWebhook, c.app.AlertThreshold = url, threshold
		c.opts.AlertResult = result
	}
}

func withStore(wrap func(tokend.Store) tokend.Store) envOption {
	return func(c *envConfig) { c.opts.WrapStore = wrap }
}

// withRelay delivers live mail through relay, as serve --smtp-relay does.
func withRelay(relay mail.Sender) envOption { return func(c *envConfig) { c.opts.Relay = relay } }

// withStreams keeps GET /api/auth_changes streams open until the test ends.
func withStreams() envOption { return func(c *envConfig) { c.streams = true } }

// withoutDelivery is a server started without --smtp-relay.
func withoutDelivery() envOption { return func(c *envConfig) { c.deliver = false } }

// withSandboxQuota gives every sandbox quota, whatever its account's plan.
func withSandboxQuota(quota tokend.SandboxQuota) envOption {
	return func(c *envConfig) { c.opts.SandboxQuota = func(tokend.Plan) tokend.SandboxQuota { return quota } }
}

// withCaptureRetention keeps captured mail for d.
func withCaptureRetention(d time.Duration) envOption {
	return func(c *envConfig) { c.app.CaptureRetention = d }
}

// withSendLimits bounds the sends in flight as l says.
func withSendLimits(l api.SendLimits) envOption {
	return func(c *envConfig) { c.app.SendsInFlight, c.app.AccountSendsInFlight = l.Total, l.PerAccount }
}

// withDB runs the server over db, which dump reads back.
func withDB(db tokend.Store, dump func() [][]byte) envOption {
	return func(c *envConfig) { c.opts.Store, c.dump = db, dump }
}

// newEnv starts the application as serve builds it (internal/app), over a
// fresh SQLite store, with the test's clock, a DNS server on loopback for
// domain checks, and debug logs kept for the secret scan.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), logs: &testutil.Buffer{}, secrets: &secrets{}}
	cfg := envConfig{
		plan: tokend.PlanEnterprise, rateLimit: 1_000_000,
		// Live mail is accepted and queued; nothing delivers it.
		deliver: true,
	}
	cfg.app = app.Default()
	cfg.app.DB, cfg.app.AuthFailureLimit = "", 1_000_000
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.opts.Store == nil {
		cfg.opts.Store, cfg.dump = testutil.Store(t)
	}
	key := make([]byte, tokend.SecretsKeySize)
	rand.Read(key)
	cfg.opts.Keyring, _ = tokend.NewKeyring(key)
	cfg.opts.Now = e.clock.Now
	cfg.opts.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.dns = testutil.StartDNS(t)
	resolver, err := tokenddns.New(e.dns.Addr(), tokenddns.Options{Timeout: 300 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg.opts.Resolver = resolver
	background := cfg.opts.Relay != nil || cfg.app.AlertWebhook != ""
	switch {
	case cfg.opts.Relay != nil:
		cfg.opts.Retry = &app.RetryTiming{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: 20 * time.Millisecond}
		// The outbox retries on real time, while this clock stands months
		// before it: messages stamped by the clock must not look a day old.
		cfg.app.SMTPRetryFor = 100 * 365 * 24 * time.Hour
		cfg.app.WebhookRetryFor = cfg.app.SMTPRetryFor
	case cfg.deliver:
		cfg.opts.Relay = testutil.Undelivered{}
	}
	if cfg.app.AlertWebhook != "" && cfg.opts.Retry == nil {
		cfg.opts.Retry = &app.RetryTiming{Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: 20 * time.Millisecond}
	}
	e.cfg = cfg
	e.app = testutil.App(t, func(c *app.Config) { *c = cfg.app }, cfg.opts)
	e.svc, e.store, e.mailer, e.domains, e.dump = e.app.Service, e.app.Store, e.app.Mailer, e.app.Domains, cfg.dump
	e.srv = httptest.NewServer(e.app.Handler)
	t.Cleanup(e.srv.Close)
	if background {
		// Deliveries of mail and alerts run beside the server, as serve runs them.
		testutil.Background(t, e.app)
	}
	if cfg.streams {
		t.Cleanup(e.app.EndStreams) // before the server closes: it waits for them
	} else {
		e.app.EndStreams() // change streams end after their ready event
	}

	ctx := context.Background()
	a, tok, err := e.svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	e.acme, e.admin, e.adminID = a.ID, tok.Value, tok.ID
	b, tok2, err := e.svc.CreateAccount(ctx, "Other", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{a.ID, b.ID} {
		limit, messages := cfg.rateLimit, cfg.messageLimit
		if cfg.plan != tokend.PlanEnterprise {
			limit, messages = 0, 0
		}
		if _, err := e.svc.SetPlan(ctx, id, cfg.plan, limit, messages, "ops"); err != nil {
			t.Fatal(err)
		}
	}
	e.other, e.otherAdmin = b.ID, tok2.Value
	e.secrets.add(tok.Value)
	e.secrets.add(tok2.Value)
	t.Cleanup(func() {
		logs := e.logs.String()
		for _, s := range e.secrets.values {
			if strings.Contains(logs, s) || strings.Contains(logs, s[8:]) {
				t.Errorf("a token value appears in the logs")
			}
		}
	})
	return e
}

// response is what a request got back, already checked against the OpenAPI document.
type response struct {
	t      *testing.T
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r *response) object() map[string]any {
	r.t.Helper()
	var m map[string]any
	r.decode(&m)
	return m
}

// want fails the test unless the status is code.
func (r *response) want(code int) *response {
	r.t.Helper()
	if r.Status != code {
		r.t.Fatalf("status %d, want %d; body %s", r.Status, code, r.Body)
	}
	return r
}

// request is one HTTP request: token goes in Api-Token unless header says otherwise.
type request struct {
	method, path string
	token        string
	header       http.Header
	body         any    // string and []byte are sent raw, anything else as JSON
	from         string // client IP on loopback to send from; default 127.0.0.1
}

func (e *env) send(req request) *response {
	e.t.Helper()
	var body io.Reader
	var raw []byte
	switch b := req.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	if raw != nil {
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequest(req.method, e.srv.URL+req.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if raw != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		hr.Header.Set("Api-Token", req.token)
	}
	for k, vs := range req.header {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	res, err := clientFrom(req.from).Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &response{t: e.t, Status: res.StatusCode, Header: res.Header, Body: b}
	validate(e.t, req, raw, r)
	return r
}

var (
	clientsMu sync.Mutex
	clients   = map[string]*http.Client{}
)

// clientFrom returns an HTTP client whose connections come from ip, so that
// the server sees different client addresses. All of 127.0.0.0/8 is loopback.
func clientFrom(ip string) *http.Client {
	if ip == "" {
		ip = "127.0.0.1"
	}
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c := clients[ip]; c != nil {
		return c
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 64}}
	clients[ip] = c
	return c
}

func (e *env) get(path, token string) *response {
	e.t.Helper()
	return e.send(request{method: "GET", path: path, token: token})
}

func (e *env) post(path, token string, body any) *response {
	e.t.Helper()
	return e.send(request{method: "POST", path: path, token: token, body: body})
}

func (e *env) patch(path, token string, body any) *response {
	e.t.Helper()
	return e.send(request{method: "PATCH", path: path, token: token, body: body})
}

func (e *env) del(path, token string) *response {
	e.t.Helper()
	return e.send(request{method: "DELETE", path: path, token: token})
}

// apiToken is the decoded ApiToken / ApiTokenWithToken shape.
type apiToken struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	Last4       string     `json:"last_4_digits"`
	CreatedBy   string     `json:"created_by"`
	ExpiresAt   *time.Time `json:"expires_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Environment string     `json:"environment"`
	Token       string     `json:"token"`
	Resources   []struct {
		ResourceType string `json:"resource_type"`
		ResourceID   int64  `json:"resource_id"`
		AccessLevel  int    `json:"access_level"`
	} `json:"resources"`
}

func perm(typ string, id int64, level int) map[string]any {
	return map[string]any{"resource_type": typ, "resource_id": id, "access_level": level}
}

// createToken creates a token as caller through the API and returns it with its value.
func (e *env) createToken(caller, name string, perms ...map[string]any) apiToken {
	e.t.Helper()
	if perms == nil {
		perms = []map[string]any{}
	}
	var t apiToken
	e.post("/api/api_tokens", caller, map[string]any{"name": name, "resources": perms}).want(200).decode(&t)
	if t.Token == "" {
		e.t.Fatalf("create %q returned no token value", name)
	}
	e.secrets.add(t.Token)
	return t
}

func (e *env) createProject(caller, name string) int64 {
	e.t.Helper()
	var p struct{ ID int64 }
	e.post(fmt.Sprintf("/api/accounts/%d/projects", e.acme), caller, map[string]any{"project": map[string]any{"name": name}}).want(200).decode(&p)
	return p.ID
}

func (e *env) createSandbox(caller string, project int64, name string) int64 {
	e.t.Helper()
	var s struct{ ID int64 }
	e.post(fmt.Sprintf("/api/accounts/%d/projects/%d/inboxes", e.acme, project), caller, map[string]any{"inbox": map[string]any{"name": name}}).want(200).decode(&s)
	return s.ID
}

// createDomain creates a domain and returns its ID and its own token.
func (e *env) createDomain(caller, name string) (int64, apiToken) {
	e.t.Helper()
	var d struct {
		ID       int64    `json:"id"`
		APIToken apiToken `json:"api_token"`
	}
	e.post(fmt.Sprintf("/api/accounts/%d/sending_domains", e.acme), caller,
		map[string]any{"sending_domain": map[string]any{"domain_name": name}}).want(200).decode(&d)
	e.secrets.add(d.APIToken.Token)
	return d.ID, d.APIToken
}

// domainJSON is a sending domain as the API answers it.
type domainJSON struct {
	ID            int64   `json:"id"`
	Name          string  `json:"domain_name"`
	DNSVerified   bool    `json:"dns_verified"`
	DNSVerifiedAt *string `json:"dns_verified_at"`
	DNSCheckError *string `json:"dns_check_error"`
	Compliance    string  `json:"compliance_status"`
	Trusted       bool    `json:"trusted"`
	Records       []struct {
		Key, Domain, Name, Type, Value, Status, Detail string
		Found                                          []string
	} `json:"dns_records"`
}

// record returns the domain's record of key.
func (d domainJSON) record(t *testing.T, key string) (name, value, status string) {
	t.Helper()
	for _, r := range d.Records {
		if r.Key == key {
			return r.Domain, r.Value, r.Status
		}
	}
	t.Fatalf("domain %s has no %s record: %+v", d.Name, key, d.Records)
	return
}

// domain reads a sending domain of Acme as the admin.
func (e *env) domain(id int64) domainJSON {
	e.t.Helper()
	var d domainJSON
	e.get(e.path("/api/accounts/%d/sending_domains/%d", e.acme, id), e.admin).want(200).decode(&d)
	return d
}

// publish puts every record of a domain in the test DNS server, as its
// owner would.
func (e *env) publish(d domainJSON) {
	for _, r := range d.Records {
		e.dns.AddTXT(r.Domain, r.Value)
	}
}

// verifyDomain checks a domain of account as caller and returns the answer.
func (e *env) verifyDomain(caller string, account, id int64) domainJSON {
	e.t.Helper()
	var d domainJSON
	e.post(e.path("/api/accounts/%d/sending_domains/%d/verify", account, id), caller, nil).want(200).decode(&d)
	return d
}

// verifiedDomain creates a domain in Acme, publishes its records and
// verifies it: live keys may send from it.
func (e *env) verifiedDomain(caller, name string) (int64, apiToken) {
	e.t.Helper()
	id, tok := e.createDomain(caller, name)
	e.publish(e.domain(id))
	if d := e.verifyDomain(e.admin, e.acme, id); !d.DNSVerified {
		e.t.Fatalf("domain %s not verified with every record published: %+v", name, d)
	}
	return id, tok
}

func (e *env) path(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// transcript records every response the tests see; the e2e module holds
// each against the OpenAPI document (TestAPIResponsesMatchTheContract).
var transcript = testutil.NewTranscript("internal/api")

// validate records a response for the check against the OpenAPI document.
func validate(t *testing.T, req request, raw []byte, r *response) {
	t.Helper()
	transcript.Response(t, req.method, req.path, raw, r.Status, r.Header, r.Body)
}

// captureFixture sends one email (text, HTML and an attachment) into sandbox
// sb as the account admin, and returns its first message id and the id of
// the captured message.
func (e *env) captureFixture(sb int64) (string, int64) {
	e.t.Helper()
	var sent struct {
		MessageIDs []string `json:"message_ids"`
	}
	e.post(e.path("/api/send/%d", sb), e.admin, map[string]any{
		"from": map[string]any{"email": "qa@anywhere.example", "name": "QA"}, "to": []any{map[string]any{"email": "dev@example.org"}},
		"subject": "Fixture capture", "text": "fixture text", "html": "<p>fixture html</p>",
		"attachments": []any{map[string]any{"filename": "notes.txt", "content": "bm90ZXM="}},
	}).want(200).decode(&sent)
	var list []struct {
		ID int64 `json:"id"`
	}
	e.get(e.path("/api/accounts/%d/inboxes/%d/messages", e.acme, sb), e.admin).want(200).decode(&list)
	if len(sent.MessageIDs) != 1 || len(list) == 0 {
		e.t.Fatalf("fixture capture: ids %v, sandbox holds %v", sent.MessageIDs, list)
	}
	return sent.MessageIDs[0], list[0].ID
}
