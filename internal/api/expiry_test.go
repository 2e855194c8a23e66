package api_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// Before a token expires, at 7 days and at 1 day, tokend raises one
// token.expiring event each: in the audit log, on the alert webhook, and
// by email to the account's users; never twice, however often (or from
// however many processes) the check runs. The clock reads 2026-03-01 12:00.
func TestExpiryWarnings(t *testing.T) {
	smtp := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay, _ := mail.ParseRelay("smtp://"+smtp.Addr, mail.RelayOptions{})
	rc := newReceiver(t, 0, nil)
	e := newEnv(t, withRelay(relay), monitorFor(rc, 1000, &deliveries{counts: map[string]int{}}))
	ctx := context.Background()
	if _, err := e.svc.Users().Create(ctx, tokend.NewUser{AccountID: e.acme, Email: "ann@example.com", Name: "Ann", Role: tokend.Admin, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	var tok apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "deploy", "resources": []any{}, "expires_at": "2026-03-11T12:00:00Z"}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	check := func(want int) {
		t.Helper()
		if n, err := e.app.Events.CheckExpiring(ctx); err != nil || n != want {
			t.Fatalf("check at %v: raised %d (%v), want %d", e.clock.Now(), n, err, want)
		}
	}
	check(0) // ten days left

	e.clock.Advance(3*24*time.Hour + time.Hour) // 6 days 23 hours left
	var wg sync.WaitGroup
	raised := make([]int, 4)
	for i := range raised {
		wg.Add(1)
		go func() { // as several instances at once would
			defer wg.Done()
			raised[i], _ = e.app.Events.CheckExpiring(ctx)
		}()
	}
	wg.Wait()
	if raised[0]+raised[1]+raised[2]+raised[3] != 1 {
		t.Fatalf("four checks at once raised %v, want one warning in all", raised)
	}
	got := rc.await(t, "token.expiring")
	if got.TokenID != tok.ID || got.AccountID != e.acme || !strings.Contains(got.Message, "expires on 2026-03-11 12:00 UTC, in 7 days or less") {
		t.Errorf("the webhook's event: %+v", got)
	}
	m := smtp.WaitMails(t, 1, 10*time.Second)[0]
	if m.To[0] != "ann@example.com" || !strings.Contains(string(m.Data), `Subject: API token "deploy" expires in 7 days or less`) ||
		strings.Contains(string(m.Data), tok.Token) {
		t.Errorf("the email: to %v\n%s", m.To, m.Data)
	}
	var audit auditPage
	e.get("/api/audit_log?limit=1", e.admin).want(200).decode(&audit)
	if ev := audit.Data[0]; ev.Action != "token.expiring" || ev.Actor != "tokend" || *ev.TargetID != tok.ID || ev.Details["days"] != float64(7) {
		t.Errorf("the audit log's event: %+v", ev)
	}
	check(0) // once

	e.clock.Advance(6 * 24 * time.Hour) // 23 hours left
	check(1)
	check(0)
	e.clock.Advance(24 * time.Hour) // expired: nothing more
	check(0)
	if n := len(smtp.WaitMails(t, 2, 10*time.Second)); n != 2 {
		t.Errorf("%d emails, want 2", n)
	}
}

// A token created with less than a day left gets the 1-day warning only;
// a token reset (on its way out) gets none; an account that asks for no
// warnings gets none.
func TestExpiryWarningsNearestOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	soon := e.clock.Now().Add(12 * time.Hour).UTC().Format(time.RFC3339)
	var short, resetOne apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "short", "resources": []any{}, "expires_at": soon}).want(200).decode(&short)
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "old", "resources": []any{}}).want(200).decode(&resetOne)
	var next apiToken
	e.post(e.path("/api/api_tokens/%d/reset", resetOne.ID), e.admin, map[string]any{}).want(200).decode(&next)
	e.secrets.add(short.Token)
	e.secrets.add(resetOne.Token)
	e.secrets.add(next.Token)
	if n, err := e.app.Events.CheckExpiring(ctx); err != nil || n != 1 {
		t.Fatalf("raised %d (%v), want 1: the short token's, not the replaced one's", n, err)
	}
	var audit auditPage
	e.get("/api/audit_log?limit=1", e.admin).want(200).decode(&audit)
	if ev := audit.Data[0]; ev.Action != "token.expiring" || *ev.TargetID != short.ID || ev.Details["days"] != float64(1) {
		t.Errorf("the warning: %+v", ev)
	}
	e.patch(e.path("/api/accounts/%d/token_settings", e.acme), e.admin, map[string]any{"expiry_warning_days": []int{}}).want(200)
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "short 2", "resources": []any{}, "expires_at": soon}).want(200)
	if n, err := e.app.Events.CheckExpiring(ctx); err != nil || n != 0 {
		t.Errorf("with no warning days: raised %d (%v)", n, err)
	}
}
