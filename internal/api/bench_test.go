package api_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/sqlite"
	"github.com/tokend/tokend/internal/testutil"
)

// benchServer is the application's handler, as serve builds it, over a real
// SQLite store with one account on an enterprise plan whose limit never
// interferes, and that account's admin token.
func benchServer(b *testing.B) (http.Handler, tokend.Store, *tokend.IssuedToken) {
	b.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	a := testutil.App(b, func(c *app.Config) { c.AuthFailureLimit = tokend.DefaultAuthFailureLimit },
		app.Options{Store: store, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	_, admin, err := a.Service.CreateAccount(ctx, "Bench", tokend.PlanFree, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Service.SetPlan(ctx, admin.AccountID, tokend.PlanEnterprise, 1<<30, 1<<30, "bench"); err != nil {
		b.Fatal(err)
	}
	benchApp = a
	return a.Handler, store, admin
}

// benchApp is the application benchServer built last.
var benchApp *app.App

// BenchmarkAuthenticatedRequest measures one authenticated GET of a token
// through the whole handler (authentication lookup on SQLite, visibility, JSON),
// without a network in between.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	h, _, tok := benchServer(b)
	path := "/api/api_tokens/1"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Api-Token", tok.Value)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}

// BenchmarkMiddleware measures the HTTP layer around the cheapest routes, in
// process (no network): /healthz, the floor, and /api/whoami, the whole
// authentication middleware (credential, checksum, hash, cache, rate limit,
// usage count, metrics, access log) answered without a store read. The
// guarded cases use a token with an IP allowlist and a rate limit of its own.
func BenchmarkMiddleware(b *testing.B) {
	h, _, tok := benchServer(b)
	everywhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.0/24")}
	rate := &tokend.Rate{Limit: tokend.MaxRateLimit, Per: time.Minute}
	guarded, err := benchApp.Service.CreateToken(context.Background(), &tok.Token, tokend.TokenInput{Name: "guarded",
		Permissions: tok.Permissions, Guards: tokend.GuardsInput{AllowedIPs: &everywhere, RateLimit: &rate}})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct{ name, path, token string }{
		{"healthz", "/healthz", tok.Value},
		{"whoami", "/api/whoami", tok.Value},
		{"whoami-guarded", "/api/whoami", guarded.Value},
		{"verify", "/api/verify", tok.Value},
		{"verify-guarded", "/api/verify", guarded.Value},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, c.path, nil) // from 192.0.2.1
			req.Header.Set("Api-Token", c.token)
			want := http.StatusOK
			if c.path == "/api/verify" {
				want = http.StatusNoContent
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != want {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// BenchmarkListTokens10k lists 10,000 tokens visible to an account admin
// through the handler.
func BenchmarkListTokens10k(b *testing.B) {
	ctx := context.Background()
	h, store, admin := benchServer(b)
	err := store.Write(ctx, func(tx tokend.Tx) error {
		for i := 1; i < 10_000; i++ {
			h := sha256.Sum256([]byte(fmt.Sprint("list", i)))
			if err := tx.CreateToken(ctx, &tokend.Token{AccountID: admin.AccountID, Name: fmt.Sprint("token ", i), Hash: h[:],
				Last4: "abcd", Environment: tokend.Live, CreatedBy: "bench", CreatedAt: time.Now(),
				Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: admin.AccountID, Level: tokend.Viewer}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/api_tokens", nil)
	req.Header.Set("Api-Token", admin.Value)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.Len() < 10_000*100 {
			b.Fatalf("status %d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
}
