package testutil

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
)

// TokendServer is a tokend API served in-process over a real store, with
// one account and its admin token, for the tests of programs that talk to
// tokend (the client, the middleware, the gateway).
type TokendServer struct {
	URL       string
	Svc       *tokend.Service
	Store     tokend.Store
	AccountID int64
	Admin     *tokend.IssuedToken // an account admin token
	srv       *httptest.Server
}

// TokendOptions shape a TokendServer. Zero values take the defaults.
type TokendOptions struct {
	// RateLimit is the account's requests per minute (default 1,000,000).
	RateLimit int
	// Wrap, when set, wraps the API handler: to count or refuse requests.
	Wrap func(http.Handler) http.Handler
	// HTTP2 serves HTTPS with HTTP/2 (use the server's Client).
	HTTP2 bool
}

// Tokend starts a tokend API on loopback, built as serve builds it and
// closed with t; its background runs until t ends.
func Tokend(t testing.TB, opts TokendOptions) *TokendServer {
	t.Helper()
	a := App(t, nil, app.Options{})
	var h http.Handler = a.Handler
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	srv := httptest.NewUnstartedServer(h)
	if opts.HTTP2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	Background(t, a) // stops first: it ends the change streams the server waits for
	svc := a.Service
	ctx := context.Background()
	acct, admin, err := svc.CreateAccount(ctx, "Acme", tokend.PlanEnterprise, "tests")
	if err != nil {
		t.Fatal(err)
	}
	limit := opts.RateLimit
	if limit <= 0 {
		limit = 1_000_000
	}
	if _, err := svc.SetPlan(ctx, acct.ID, tokend.PlanEnterprise, limit, 0, "tests"); err != nil {
		t.Fatal(err)
	}
	return &TokendServer{URL: srv.URL, Svc: svc, Store: a.Store, AccountID: acct.ID, Admin: admin, srv: srv}
}

// App builds the application as serve does, for a test: over a new store of
// the kind StoreEnv names (unless opts gives one), with 1024-bit DKIM keys,
// no throttle a test would trip (a million failed authentications a
// minute), and no DNS (checks answer that DNS cannot be asked) unless opts
// gives a resolver. configure, when not nil, changes the configuration
// first. It is closed with t; nothing runs in its background until
// Background.
func App(t testing.TB, configure func(*app.Config), opts app.Options) *app.App {
	t.Helper()
	cfg := app.Default()
	cfg.DB, cfg.AuthFailureLimit = "", 1_000_000
	if configure != nil {
		configure(&cfg)
	}
	if opts.Store == nil {
		opts.Store, _ = Store(t)
	}
	if opts.DKIMKeyBits == 0 {
		opts.DKIMKeyBits = 1024
	}
	if opts.Resolver == nil {
		opts.Resolver = noDNS{}
	}
	a, err := app.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// Background runs a's background work until t ends.
func Background(t testing.TB, a *app.App) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the application's background: %v", err)
		}
	})
}

// noDNS is a resolver for tests that check no domain: every lookup fails.
type noDNS struct{}

func (noDNS) LookupTXT(context.Context, string) ([]string, error) {
	return nil, errors.New("this test asks no DNS server")
}

// Token creates a token of the account with perms (account viewer when none).
func (s *TokendServer) Token(t testing.TB, name string, perms ...tokend.Permission) *tokend.IssuedToken {
	t.Helper()
	if len(perms) == 0 {
		perms = []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: s.AccountID, Level: tokend.Viewer}}
	}
	tok, err := s.Svc.CreateToken(context.Background(), &s.Admin.Token, tokend.TokenInput{Name: name, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Client is an HTTP client that trusts the server (and speaks HTTP/2 to it
// when the server does).
func (s *TokendServer) Client() *http.Client { return s.srv.Client() }

// CloseClientConnections drops every open connection, change streams included.
func (s *TokendServer) CloseClientConnections() { s.srv.CloseClientConnections() }

// Undelivered is a relay for tests whose live mail is queued and never
// delivered: every attempt fails as a relay that is down would.
type Undelivered struct{}

func (Undelivered) Send(context.Context, string, string, []byte) error {
	return errors.New("this test's relay delivers nothing")
}
