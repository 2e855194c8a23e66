package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/app"
	tokenddns "github.com/tokend/tokend/internal/dns"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// env is a real tokend API in-process, over a SQLite store (or the one
// TOKEND_TEST_STORE names), with two accounts: Acme (admin token admin) and
// Other (otherAdmin). Its clock only moves when the test moves it.
type env struct {
	t          *testing.T
	url        string
	svc        *tokend.Service
	clock      *testutil.Clock
	dns        *testutil.DNSServer // what domain checks ask
	acme       int64
	admin      string
	adminID    int64
	other      int64
	otherAdmin string
}

type envConfig struct {
	plan       tokend.Plan
	limit      int
	defaultTTL time.Duration
	deliver    bool // live mail is queued (no relay ever takes it); false answers 503
	// relay, when set, delivers live mail, and webhook deliveries go out
	// (http:// to loopback allowed), in the background as serve runs them.
	relay mail.Sender
}

type envOption func(*envConfig)

// withPlan puts both accounts on plan, with limit requests a minute for enterprise.
func withPlan(plan tokend.Plan, limit int) envOption {
	return func(c *envConfig) { c.plan, c.limit = plan, limit }
}

func withDefaultTTL(d time.Duration) envOption { return func(c *envConfig) { c.defaultTTL = d } }

// withRelay delivers live mail through relay and sends webhook deliveries,
// as serve --smtp-relay --webhook-allow-http does.
func withRelay(relay mail.Sender) envOption { return func(c *envConfig) { c.relay = relay } }

// withoutDelivery is a server started without --smtp-relay.
func withoutDelivery() envOption { return func(c *envConfig) { c.deliver = false } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	cfg := envConfig{plan: tokend.PlanEnterprise, limit: 1_000_000, deliver: true}
	for _, o := range opts {
		o(&cfg)
	}
	e := &env{t: t, clock: testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	e.dns = testutil.StartDNS(t)
	resolver, err := tokenddns.New(e.dns.Addr(), tokenddns.Options{Timeout: 300 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	appOpts := app.Options{Now: e.clock.Now, Resolver: resolver}
	switch {
	case cfg.relay != nil:
		appOpts.Relay = cfg.relay
		appOpts.Retry = &app.RetryTiming{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: 20 * time.Millisecond}
	case cfg.deliver:
		appOpts.Relay = testutil.Undelivered{} // queued; the background that would deliver does not run
	}
	instance := testutil.App(t, func(c *app.Config) {
		c.TokenPrefix, c.DefaultTTL = "tk", cfg.defaultTTL
		if cfg.relay != nil {
			// The outbox retries on real time, while this clock stands
			// before it: what the clock stamps must not look old.
			c.SMTPRetryFor = 100 * 365 * 24 * time.Hour
			c.WebhookRetryFor, c.WebhookAllowHTTP = c.SMTPRetryFor, true
		}
	}, appOpts)
	if cfg.relay != nil {
		testutil.Background(t, instance)
	}
	e.svc = instance.Service
	srv := httptest.NewServer(instance.Handler)
	t.Cleanup(srv.Close)
	t.Cleanup(instance.EndStreams) // runs first: the server waits for open change streams
	e.url = srv.URL

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
	e.other, e.otherAdmin = b.ID, tok2.Value
	for _, id := range []int64{a.ID, b.ID} {
		limit := cfg.limit
		if cfg.plan != tokend.PlanEnterprise {
			limit = 0
		}
		if _, err := e.svc.SetPlan(ctx, id, cfg.plan, limit, 0, "ops"); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// client returns a client of the server authenticating with token.
func (e *env) client(token string, opts ...client.Option) *client.Client {
	e.t.Helper()
	c, err := client.New(e.url, token, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// ok fails the test on err.
func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// apiError returns the *client.Error in err's chain, failing the test when
// there is none or its status is not status.
func apiError(t *testing.T, err error, status int) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *client.Error with status %d", err, err, status)
	}
	if e.Status != status {
		t.Fatalf("status %d (%v), want %d", e.Status, e, status)
	}
	return e
}

// countingTransport counts the requests made to each path.
type countingTransport struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[path]
}

func perm(typ string, id int64, level int) client.Permission {
	return client.Permission{ResourceType: typ, ResourceID: id, AccessLevel: level}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
