package tokend_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/sqlite"
)

// BenchmarkScale1M fills a SQLite store with 1,000,000 tokens (10,000 accounts
// of 100, each with one permission), then reports what the issue asks for at
// that size: how long warming the authentication cache takes, the heap each
// cached token costs, and a verification's latency. Run it alone:
//
//	go test -run '^$' -bench Scale1M -benchtime 1x -timeout 30m .
func BenchmarkScale1M(b *testing.B) {
	const accounts, perAccount = 10_000, 100
	const n = accounts * perAccount
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "scale.db")
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	format, _ := apikey.NewFormat("tk")
	value, _ := format.Generate("live")
	fill := time.Now()
	for a := 0; a < accounts; a++ {
		err := store.Write(ctx, func(tx tokend.Tx) error {
			acct := &tokend.Account{Name: fmt.Sprint("account ", a), Plan: tokend.PlanPro, RateLimit: 1000, MessageLimit: 10_000, CreatedAt: fill}
			if err := tx.CreateAccount(ctx, acct); err != nil {
				return err
			}
			for i := 0; i < perAccount; i++ {
				var h [32]byte
				if a == 0 && i == 0 {
					h = apikey.Hash(value)
				} else {
					binary.LittleEndian.PutUint64(h[:], uint64(a*perAccount+i))
					h = sha256.Sum256(h[:])
				}
				t := &tokend.Token{AccountID: acct.ID, Name: fmt.Sprintf("service token %d", i), Hash: h[:], Last4: "abcd",
					Environment: tokend.Live, CreatedBy: "bench", CreatedAt: fill,
					Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: acct.ID, Level: tokend.Viewer}}}
				if err := tx.CreateToken(ctx, t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("filled %d tokens in %v", n, time.Since(fill))

	for b.Loop() {
		svc := tokend.NewService(store, tokend.Options{Format: format})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		loaded, err := svc.WarmAuthCache(ctx)
		warm := time.Since(start)
		if err != nil || loaded != n {
			b.Fatalf("warmed %d tokens, %v; want %d", loaded, err, n)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(warm.Seconds(), "warm-s")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/token")

		const verifications = 1_000_000
		start = time.Now()
		for i := 0; i < verifications; i++ {
			if _, err := svc.Authenticate(ctx, value); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/verifications, "ns/verify")
		runtime.KeepAlive(svc)
	}
}
