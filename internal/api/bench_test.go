package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/apikey"
	"github.com/tokend/tokend/internal/sqlite"
)

// BenchmarkAuthenticatedRequest measures one authenticated GET of a token
// through the whole handler (authentication lookup on SQLite, visibility, JSON),
// without a network in between.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	format, _ := apikey.NewFormat("tk")
	svc := tokend.NewService(store, tokend.Options{Format: format})
	_, tok, err := svc.CreateAccount(context.Background(), "Bench", tokend.PlanFree, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.SetPlan(context.Background(), tok.AccountID, tokend.PlanEnterprise, 1<<30, "bench"); err != nil {
		b.Fatal(err)
	}
	h := api.NewServer(svc, api.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
// usage count, metrics, access log) answered without a store read.
func BenchmarkMiddleware(b *testing.B) {
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	format, _ := apikey.NewFormat("tk")
	svc := tokend.NewService(store, tokend.Options{Format: format})
	_, tok, err := svc.CreateAccount(context.Background(), "Bench", tokend.PlanFree, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.SetPlan(context.Background(), tok.AccountID, tokend.PlanEnterprise, 1<<30, "bench"); err != nil {
		b.Fatal(err)
	}
	h := api.NewServer(svc, api.Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	for name, path := range map[string]string{"healthz": "/healthz", "whoami": "/api/whoami"} {
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Api-Token", tok.Value)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
