package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/sqlite"
	"github.com/tokend/tokend/internal/testutil"
)

// BenchmarkEmailLogsList measures GET /api/accounts/{id}/email_logs over
// loopback HTTP on SQLite holding 1,000,000 messages (10,000 emails of 100
// recipients each, over 30 days, a tenth of them bounced), as the account's
// admin: each query's latency, reported as p50 and p99. Set
// TOKEND_BENCH_LOG_ROWS for another size.
//
//	go test -run '^$' -bench EmailLogsList -benchtime 200x -timeout 30m ./internal/api
func BenchmarkEmailLogsList(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TOKEND_BENCH_LOG_ROWS")); err == nil && v > 0 {
		rows = v
	}
	const perEmail = 100
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "logs.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	a := testutil.App(b, nil, app.Options{Store: store, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
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
	start := time.Now()
	t0 := time.Now().Add(-30 * 24 * time.Hour)
	emails := rows / perEmail
	var probe string // a recipient in the middle
	for batch := 0; batch < emails; batch += 100 {
		err := store.Write(ctx, func(tx tokend.Tx) error {
			for i := batch; i < min(batch+100, emails); i++ {
				at := t0.Add(time.Duration(float64(30*24*time.Hour) * float64(i) / float64(emails)))
				e := &tokend.StoredEmail{AccountID: admin.AccountID, TokenID: admin.ID, DomainID: d.ID, MailFrom: "news@bench.example.com",
					From: tokend.Address{Email: "news@bench.example.com"}, To: tokend.Address{Email: "x@example.org"},
					Subject: fmt.Sprintf("Newsletter %d", i), Category: "news", Raw: []byte{}, CreatedAt: at, UpdatedAt: at}
				msgs := make([]tokend.Message, perEmail)
				for j := range msgs {
					state := tokend.MessageDelivered
					if j%10 == 0 {
						state = tokend.MessageFailed
					}
					msgs[j] = tokend.Message{ID: uuid.NewString(), AccountID: admin.AccountID, DomainID: d.ID,
						Recipient: fmt.Sprintf("user%d-%d@example.org", i, j), State: state, Attempts: 1, CreatedAt: at, UpdatedAt: at}
				}
				if err := tx.CreateEmail(ctx, e, msgs); err != nil {
					return err
				}
				for _, m := range msgs {
					typ := tokend.EmailDelivery
					if m.State == tokend.MessageFailed {
						typ = tokend.EmailBounce
					}
					if err := tx.AddEmailEvent(ctx, &tokend.EmailEvent{MessageID: m.ID, AccountID: m.AccountID, Type: typ, At: at}); err != nil {
						return err
					}
				}
				if i == emails/2 {
					probe = msgs[perEmail/2].Recipient
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d messages (with an event each) written in %v", emails*perEmail, time.Since(start).Round(time.Second))
	srv := httptest.NewServer(a.Handler)
	defer srv.Close()
	base := fmt.Sprintf("%s/api/accounts/%d/email_logs", srv.URL, admin.AccountID)
	get := func(b *testing.B, query url.Values) []byte {
		req, _ := http.NewRequest("GET", base+"?"+query.Encode(), nil)
		req.Header.Set("Api-Token", admin.Value)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			b.Fatalf("%d %s", res.StatusCode, body)
		}
		return body
	}
	var deep string // a cursor half way down
	{
		var page struct {
			Messages []struct {
				MessageID string `json:"message_id"`
			} `json:"messages"`
		}
		q := url.Values{"filters[sent_before]": {t0.Add(15 * 24 * time.Hour).Format(time.RFC3339)}}
		if err := json.Unmarshal(get(b, q), &page); err != nil || len(page.Messages) == 0 {
			b.Fatalf("the page half way down: %v", err)
		}
		deep = page.Messages[0].MessageID
	}
	for _, c := range []struct {
		name  string
		query url.Values
	}{
		{"first_page", url.Values{}},
		{"deep_page", url.Values{"search_after": {deep}}},
		{"to_ci_equal", url.Values{"filters[to][operator]": {"ci_equal"}, "filters[to][value]": {probe}}},
		{"status_not_delivered", url.Values{"filters[status][operator]": {"equal"}, "filters[status][value]": {"not_delivered"}}},
		{"last_day", url.Values{"filters[sent_after]": {time.Now().Add(-24 * time.Hour).Format(time.RFC3339)}}},
		{"event_bounce", url.Values{"filters[events][operator]": {"include_event"}, "filters[events][value]": {"bounce"}}},
		{"subject_contains", url.Values{"filters[subject][operator]": {"ci_contain"}, "filters[subject][value]": {"letter 99"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			took := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t := time.Now()
				get(b, c.query)
				took = append(took, time.Since(t))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
