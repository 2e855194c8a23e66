package main_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// cliLog is an email log as tokend email log --json prints it.
type cliLog struct {
	MessageID      string `json:"message_id"`
	Status         string `json:"status"`
	DeliveryStatus string `json:"delivery_status"`
	To             string `json:"to"`
	RFCMessageID   string `json:"rfc_message_id"`
	SendingDomain  string `json:"sending_domain"`
	Events         []struct {
		EventType string         `json:"event_type"`
		Details   map[string]any `json:"details"`
	} `json:"events"`
}

// The operator reads an account's email logs, one message's events and the
// suppression list from the command line, beside a running server whose
// relay delivers one recipient, bounces another for good, and never sees a
// suppressed third.
func TestEmailLogsAndSuppressionsFromTheCLI(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.RefuseRecipient("gone@example.org", 550, "5.1.1", "no such user here")
	db := filepath.Join(t.TempDir(), "tokend.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	s := tokend.Serve(t, []string{"TOKEND_SMTP_RELAY=smtp://" + relay.Addr}, "--db", db, "--dns-resolver", dns.Addr())
	dkimRecord(t, s.URL, account, admin, "mail.example.com", dns)
	if code, body := call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/suppressions", s.URL, account), admin,
		`{"email": "left@example.org", "type": "unsubscription"}`); code != 201 {
		t.Fatalf("suppress left@example.org: %d %s", code, body)
	}
	code, body := call(t, "POST", s.URL+"/api/send", admin,
		`{"from": {"email": "news@mail.example.com"}, "to": [{"email": "ok@example.org"}, {"email": "gone@example.org"}, {"email": "left@example.org"}],
		  "subject": "Hello", "text": "Hello from tokend"}`)
	var sent struct {
		MessageIDs []string `json:"message_ids"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &sent) != nil || len(sent.MessageIDs) != 3 {
		t.Fatalf("send: %d %s", code, body)
	}
	okID, goneID, leftID := sent.MessageIDs[0], sent.MessageIDs[1], sent.MessageIDs[2]
	waitFor(t, 10*time.Second, "the relay's answers in the logs", func() bool {
		_, ok := call(t, "GET", s.URL+"/api/email_logs/"+okID, admin, "")
		_, gone := call(t, "GET", s.URL+"/api/email_logs/"+goneID, admin, "")
		return strings.Contains(ok, `"status":"delivered"`) && strings.Contains(gone, `"status":"not_delivered"`)
	})

	run := func(t *testing.T, args ...string) testutil.Result {
		t.Helper()
		r := tokend.Run(t, nil, append(args, "--db", db)...)
		if r.Code != 0 {
			t.Fatalf("tokend %s: %+v", strings.Join(args, " "), r)
		}
		return r
	}

	// The listing, as a table: one row a message (one send's, in no
	// particular order among themselves).
	table := run(t, "email", "logs").Stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "MESSAGE ID") || lines[4] != "3 of 3 messages." {
		t.Fatalf("email logs:\n%s", table)
	}
	for i, want := range [][]string{{okID, "ok@example.org", "delivered"}, {goneID, "gone@example.org", "not_delivered"}, {leftID, "left@example.org", "opted_out"}} {
		for _, w := range append(want, "Hello") {
			if !strings.Contains(table, w) || !strings.Contains(strings.Join(lines[1:4], "\n"), w) {
				t.Errorf("email logs lacks %q for message %d:\n%s", w, i, table)
			}
		}
	}

	// Filters are said on the command line only, never by TOKEND_* variables.
	if r := tokend.Run(t, []string{"TOKEND_STATUS=lost", "TOKEND_TO=nobody@example.org", "TOKEND_LIMIT=1"}, "email", "logs", "--db", db); r.Code != 0 ||
		!strings.Contains(r.Stdout, "3 of 3 messages.") {
		t.Errorf("email logs with filters in the environment: %+v", r)
	}

	// Filters, as JSON.
	for _, tt := range []struct {
		name  string
		args  []string
		want  []string // message ids, in any order
		total int
		more  bool // a next_page_cursor: want is then how many
	}{
		{"by status", []string{"--status", "not_delivered"}, []string{goneID}, 1, false},
		{"by recipient", []string{"--to", "LEFT@example.org"}, []string{leftID}, 1, false},
		{"by domain", []string{"--domain", "1"}, []string{okID, goneID, leftID}, 3, false},
		{"by another domain", []string{"--domain", "2"}, nil, 0, false},
		{"sent after", []string{"--after", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil, 0, false},
		{"sent before", []string{"--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, []string{okID, goneID, leftID}, 3, false},
		{"limited", []string{"--limit", "2"}, make([]string, 2), 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, append([]string{"email", "logs", "--json"}, tt.args...)...)
			var page struct {
				Messages       []cliLog `json:"messages"`
				TotalCount     int      `json:"total_count"`
				NextPageCursor *string  `json:"next_page_cursor"`
			}
			if err := json.Unmarshal([]byte(r.Stdout), &page); err != nil {
				t.Fatalf("--json: %v\n%s", err, r.Stdout)
			}
			var ids []string
			for _, m := range page.Messages {
				ids = append(ids, m.MessageID)
			}
			slices.Sort(ids)
			want := slices.Sorted(slices.Values(tt.want))
			if len(ids) != len(want) || !tt.more && !slices.Equal(ids, want) || page.TotalCount != tt.total || (page.NextPageCursor != nil) != tt.more {
				t.Errorf("messages %v of %d, cursor %v; want %v of %d, a cursor: %v", ids, page.TotalCount, page.NextPageCursor, tt.want, tt.total, tt.more)
			}
		})
	}

	// One message's timeline, as text and JSON.
	gone := run(t, "email", "log", goneID).Stdout
	for _, want := range []string{"Message " + goneID + " to gone@example.org: not_delivered (failed) after 1 delivery attempts",
		"From news@mail.example.com, subject \"Hello\"", "sending domain 1 mail.example.com", "TIME", "accepted",
		"bounce", "550 5.1.1 no such user here; bounce category bad_mailbox; attempt 1"} {
		if !strings.Contains(gone, want) {
			t.Errorf("email log lacks %q:\n%s", want, gone)
		}
	}
	var left cliLog
	if err := json.Unmarshal([]byte(run(t, "email", "log", leftID, "--json").Stdout), &left); err != nil {
		t.Fatal(err)
	}
	if left.Status != "opted_out" || left.DeliveryStatus != "suppressed" || left.RFCMessageID != "<"+leftID+"@mail.example.com>" ||
		left.SendingDomain != "mail.example.com" || len(left.Events) != 2 || left.Events[1].EventType != "reject" ||
		left.Events[1].Details["reject_reason"] != "Recipient in suppression list. Reason: unsubscription" {
		t.Errorf("email log --json of the suppressed recipient: %+v", left)
	}

	// The suppression list: the hard bounce, for its domain, and the
	// unsubscription, for every domain.
	list := run(t, "suppression", "list").Stdout
	for _, want := range []string{"gone@example.org  hard bounce     1 mail.example.com", goneID, "left@example.org  unsubscription  every domain"} {
		if !strings.Contains(list, want) {
			t.Errorf("suppression list lacks %q:\n%s", want, list)
		}
	}
	var sups []struct {
		Email                 string  `json:"email"`
		Type                  string  `json:"type"`
		DomainID              *int64  `json:"domain_id"`
		MessageID             *string `json:"message_id"`
		MessageBounceCategory *string `json:"message_bounce_category"`
	}
	if err := json.Unmarshal([]byte(run(t, "suppression", "list", "--email", "GONE@example.org", "--json").Stdout), &sups); err != nil {
		t.Fatal(err)
	}
	if len(sups) != 1 || sups[0].Type != "hard bounce" || sups[0].DomainID == nil || *sups[0].DomainID != 1 ||
		sups[0].MessageID == nil || *sups[0].MessageID != goneID || sups[0].MessageBounceCategory == nil || *sups[0].MessageBounceCategory != "bad_mailbox" {
		t.Errorf("suppression list --email --json: %+v", sups)
	}
	if r := run(t, "suppression", "list", "--email", "nobody@example.org"); r.Stdout != "No address of account 1 is suppressed.\n" {
		t.Errorf("an address not suppressed: %q", r.Stdout)
	}

	// What the commands refuse, and what they do not find.
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"email", "logs", "--status", "lost"}, 2, "email logs: --status must be delivered, not_delivered, enqueued, opted_out or captured"},
		{[]string{"email", "logs", "--after", "2026-03-01"}, 2, "want a date-time such as 2026-03-01T12:00:00Z (RFC 3339)"},
		{[]string{"email", "logs", "--after", "2026-03-02T00:00:00Z", "--before", "2026-03-01T00:00:00Z"}, 2, "email logs: --after must be before --before"},
		{[]string{"email", "logs", "--limit", "0"}, 2, "--limit must be a positive number"},
		{[]string{"email", "logs", "--account", "9"}, 1, "email logs: no account 9 in " + db},
		{[]string{"email", "log"}, 2, "missing MESSAGE_ID"},
		{[]string{"email", "log", "nope"}, 1, `email log: no message "nope" in account 1 of ` + db},
		{[]string{"email", "send"}, 2, "unknown command"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := tokend.Run(t, nil, append(tt.args, "--db", db)...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", r.Code, r.Stderr, tt.code, tt.says)
			}
		})
	}

	// With a second account, the commands need to be told which.
	createAccount(t, db, "Beta")
	if r := tokend.Run(t, nil, "email", "logs", "--db", db); r.Code != 2 || !strings.Contains(r.Stderr, "--account ID is required") {
		t.Errorf("email logs with two accounts and no --account: %+v", r)
	}
	if r := run(t, "email", "logs", "--account", "2"); r.Stdout != "No email logs of account 2 match.\n" {
		t.Errorf("the new account's logs: %q", r.Stdout)
	}
	if r := tokend.Run(t, nil, "email", "log", goneID, "--account", "2", "--db", db); r.Code != 1 || !strings.Contains(r.Stderr, "no message") {
		t.Errorf("a message of account 1 looked up in account 2: %+v", r)
	}
	if r := run(t, "email", "log", goneID, "--account", fmt.Sprint(account)); !strings.Contains(r.Stdout, "bad_mailbox") {
		t.Errorf("email log --account %d: %q", account, r.Stdout)
	}
	s.Stop(t)
}
