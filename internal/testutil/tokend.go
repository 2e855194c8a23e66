package testutil

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
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

// Tokend starts a tokend API on loopback, closed with t. Change streams stay
// open until t ends.
func Tokend(t testing.TB, opts TokendOptions) *TokendServer {
	t.Helper()
	store, _ := Store(t)
	format, _ := apikey.NewFormat(apikey.DefaultPrefix)
	svc := tokend.NewService(store, tokend.Options{Format: format, DKIMKeyBits: 1024})
	done := make(chan struct{})
	var h http.Handler = api.NewServer(svc, api.Options{Done: done, AuthFailureLimit: 1_000_000})
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
	t.Cleanup(func() { close(done) }) // first: the server waits for open streams
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
	return &TokendServer{URL: srv.URL, Svc: svc, Store: store, AccountID: acct.ID, Admin: admin, srv: srv}
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
