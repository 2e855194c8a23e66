package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/testutil"
)

// BenchmarkLeaseLeftover measures the error of leases: one process admits
// a steady stream of one token's requests (b.N a second for two seconds),
// then the stream stops; "unspent" is what the process still holds of the
// token's lease, requests tokend charged that nobody made, and "reports/s"
// how many usage reports the stream cost.
//
//	go test -run '^$' -bench LeaseLeftover -benchtime 1000x ./middleware
func BenchmarkLeaseLeftover(b *testing.B) {
	var reports atomic.Int64
	tk := testutil.Tokend(b, testutil.TokendOptions{RateLimit: 1 << 30, Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/usage_reports" {
				reports.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}})
	c, err := client.New(tk.URL, tk.Token(b, "gateway").Value)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(c, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !a.Live(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the change stream is not live")
		}
	}
	tok := tk.Token(b, "user")
	h := a.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Value)
	const run = 2 * time.Second
	gap := time.Second / time.Duration(b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; time.Since(start) < run; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("request %d: %d", i, rec.Code)
		}
		if wait := time.Until(start.Add(time.Duration(i+1) * gap)); wait > 0 {
			time.Sleep(wait)
		}
	}
	b.StopTimer()
	time.Sleep(3 * a.opts.ReportInterval) // the last top-ups land
	var unspent int64
	a.ledger.mu.Lock()
	for _, tl := range a.ledger.tokens {
		unspent += tl.avail.Load()
	}
	a.ledger.mu.Unlock()
	b.ReportMetric(float64(unspent), "unspent")
	b.ReportMetric(float64(reports.Load())/run.Seconds(), "reports/s")
	b.ReportMetric(0, "ns/op")
}
