package main_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tokend/tokend/internal/testutil"
)

// loggedAddr returns the addr of the first log line of p with message msg.
func loggedAddr(t *testing.T, p *testutil.Process, msg string) string {
	t.Helper()
	for _, line := range strings.Split(p.Stderr.String(), "\n") {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg {
			return l.Addr
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, p.Stderr.String())
	return ""
}

// A message answered 250 over SMTP is in the outbox: tokend killed -9 at
// once, with the relay down, delivers it after a restart.
func TestSMTPAcceptedMessageSurvivesAKill(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.Stop()
	db := filepath.Join(t.TempDir(), "smtp.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	args := []string{"--db", db, "--smtp-relay", "smtp://" + relay.Addr, "--dns-resolver", dns.Addr(), "--smtp-addr", "127.0.0.1:0",
		"--bounce-domain", "bounces.example.net"}
	s := tokend.Serve(t, nil, args...)
	dkimRecord(t, s.URL, account, admin, "example.com", dns)

	c, err := smtp.DialStartTLS(loggedAddr(t, s, "listening for SMTP submission (STARTTLS)"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "api", admin)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		to := fmt.Sprintf("r%d@example.org", i)
		if err := c.Mail("app@example.com", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(to, nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "From: app@example.com\r\nTo: %s\r\nSubject: kept %d\r\n\r\nhello\r\n", to, i)
		resp, err := w.CloseWithResponse()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.StatusText, "2.0.0 OK: queued as ") {
			t.Fatalf("DATA answered 250 %q", resp.StatusText)
		}
		ids = append(ids, strings.TrimPrefix(resp.StatusText, "2.0.0 OK: queued as "))
	}
	s.Kill(t) // right after the last 250
	relay.Start(t)
	tokend.Serve(t, nil, args...)
	mails := relay.WaitMails(t, 5, 60*time.Second)
	got := map[string]bool{}
	for _, m := range mails {
		got[m.From] = true
	}
	for _, id := range ids {
		if !got["bounces+"+id+"@bounces.example.net"] {
			t.Errorf("message %s, answered 250 before the kill, was not delivered after the restart (got %v)", id, got)
		}
	}
}
