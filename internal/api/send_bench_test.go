package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	tokenddns "github.com/tokend/tokend/internal/dns"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/sqlite"
	"github.com/tokend/tokend/internal/testutil"
)

// BenchmarkSend measures accepted sends per second, one recipient each, from
// 16 concurrent clients over loopback HTTP, on SQLite: "live" is queued in
// the accepting transaction while four workers deliver to a local relay
// (competing for the same database, each delivery recording its event),
// "live_webhook" also has a webhook subscribed to deliveries (four more
// workers posting them to a local endpoint), "test" is captured into a
// sandbox.
//
//	go test -run '^$' -bench Send -benchtime 5s ./internal/api
func BenchmarkSend(b *testing.B) {
	for _, c := range []struct {
		name    string
		env     tokend.Environment
		webhook bool
	}{{"live", tokend.Live, false}, {"live_webhook", tokend.Live, true}, {"test", tokend.Test, false}} {
		env := c.env
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "send.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			dnsServer := testutil.StartDNS(b)
			resolver, err := tokenddns.New(dnsServer.Addr(), tokenddns.Options{})
			if err != nil {
				b.Fatal(err)
			}
			relay := testutil.StartSMTP(b, testutil.SMTPOptions{})
			r, _ := mail.ParseRelay("smtp://"+relay.Addr, mail.RelayOptions{})
			defer r.Close()
			var hooks atomic.Int64
			receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				hooks.Add(1)
			}))
			defer receiver.Close()
			a := testutil.App(b, func(c *app.Config) { c.SendsInFlight, c.AccountSendsInFlight, c.WebhookAllowHTTP = 16, 16, true },
				app.Options{Store: store, DKIMKeyBits: 2048, Resolver: resolver, Relay: r, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
			svc := a.Service
			_, admin, err := svc.CreateAccount(ctx, "Bench", tokend.PlanFree, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := svc.SetPlan(ctx, admin.AccountID, tokend.PlanEnterprise, 1<<30, 1<<30, "bench"); err != nil {
				b.Fatal(err)
			}
			d, err := svc.CreateDomain(ctx, &admin.Token, "bench.example.com")
			if err != nil {
				b.Fatal(err)
			}
			// Verified through a real DNS server, whose queries during the run
			// must stay at zero: a send reads the domain's status from the store.
			for _, r := range d.DNS {
				dnsServer.AddTXT(r.Domain, r.Value)
			}
			if v, err := a.Domains.VerifyAsOperator(ctx, d.ID, "bench"); err != nil || v.DNSState.VerifiedAt == nil {
				b.Fatalf("verify the domain: %v", err)
			}
			if c.webhook {
				if _, err := a.Webhooks.Create(ctx, &admin.Token, tokend.WebhookInput{URL: receiver.URL, EventTypes: []string{"delivery"}}); err != nil {
					b.Fatal(err)
				}
			}
			token := admin.Value
			if env == tokend.Test {
				t, err := svc.CreateToken(ctx, &admin.Token, tokend.TokenInput{Name: "test", Environment: tokend.Test,
					Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: admin.AccountID, Level: tokend.Admin}}})
				if err != nil {
					b.Fatal(err)
				}
				token = t.Value
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- a.Run(runCtx) }() // the outbox's deliveries, as serve runs them
			defer func() { cancel(); <-done }()
			srv := httptest.NewServer(a.Handler)
			defer srv.Close()
			body, _ := json.Marshal(map[string]any{"from": map[string]any{"email": "news@bench.example.com"},
				"to": []any{map[string]any{"email": "user@example.org"}}, "subject": "Benchmark", "text": "Hello from the benchmark"})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(8) // 16 clients on this 2-core machine
			queriesBefore := dnsServer.Queries()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", srv.URL+"/api/send", bytes.NewReader(body))
					req.Header.Set("Api-Token", token)
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
			b.StopTimer()
			if q := dnsServer.Queries() - queriesBefore; q != 0 {
				b.Errorf("%d DNS queries during %d sends: the request path must not look DNS up", q, b.N)
			}
			if env == tokend.Live {
				b.ReportMetric(float64(len(relay.Mails())), "delivered")
			}
			if c.webhook {
				b.ReportMetric(float64(hooks.Load()), "webhooks")
			}
		})
	}
}
