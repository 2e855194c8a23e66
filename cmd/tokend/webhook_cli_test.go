package main_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// cliWebhook is a webhook as the webhook commands print it with --json.
type cliWebhook struct {
	ID                     int64    `json:"id"`
	URL                    string   `json:"url"`
	Active                 bool     `json:"active"`
	PayloadFormat          string   `json:"payload_format"`
	DomainID               *int64   `json:"domain_id"`
	EventTypes             []string `json:"event_types"`
	SigningSecret          string   `json:"signing_secret"`
	StandardWebhooksSecret string   `json:"standard_webhooks_secret"`
}

// cliDelivery is a webhook delivery as webhook deliveries --json prints it.
type cliDelivery struct {
	ID         int64  `json:"id"`
	EventType  string `json:"event_type"`
	MessageID  string `json:"message_id"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus *int   `json:"last_status"`
}

// auditEntries returns the account's newest audit log entries.
func auditEntries(t *testing.T, url, token string) []struct {
	Action  string         `json:"action"`
	Actor   string         `json:"actor"`
	Details map[string]any `json:"details"`
} {
	t.Helper()
	code, body := call(t, "GET", url+"/api/audit_log?limit=50", token, "")
	var page struct {
		Data []struct {
			Action  string         `json:"action"`
			Actor   string         `json:"actor"`
			Details map[string]any `json:"details"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil {
		t.Fatalf("audit log: %d %s", code, body)
	}
	return page.Data
}

// The operator manages an account's webhooks from the command line beside
// a running server: a webhook the command creates gets the server's
// deliveries signed with the secret the command printed (so the command
// sealed it with serve's key), the command refuses the URLs serve refuses,
// and every change is audited under the operator's name, via cli.
func TestWebhooksFromTheCLI(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	db := filepath.Join(t.TempDir(), "tokend.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	s := tokend.Serve(t, []string{"TOKEND_SMTP_RELAY=smtp://" + relay.Addr}, "--db", db, "--dns-resolver", dns.Addr(), "--webhook-allow-http")
	dkimRecord(t, s.URL, account, admin, "mail.example.com", dns)
	operator := []string{"USER=oncall"}
	run := func(t *testing.T, env []string, args ...string) testutil.Result {
		t.Helper()
		r := tokend.Run(t, append(env, operator...), append(args, "--db", db)...)
		if r.Code != 0 {
			t.Fatalf("tokend %s: %+v", strings.Join(args, " "), r)
		}
		return r
	}
	decode := func(t *testing.T, r testutil.Result, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
			t.Fatalf("--json: %v\n%s", err, r.Stdout)
		}
	}

	// An https endpoint of every domain: its secret, in both forms, once.
	// (It takes no event of the mail sent below: no delivery leaves the
	// machine.)
	var hooks cliWebhook
	decode(t, run(t, nil, "webhook", "create", "--url", "https://hooks.example.org/tokend", "--events", "soft_bounce, bounce", "--json"), &hooks)
	if hooks.ID != 1 || hooks.URL != "https://hooks.example.org/tokend" || !hooks.Active || hooks.PayloadFormat != "json" || hooks.DomainID != nil ||
		!slices.Equal(hooks.EventTypes, []string{"soft_bounce", "bounce"}) || len(hooks.SigningSecret) != 64 ||
		hooks.StandardWebhooksSecret != "whsec_"+base64.StdEncoding.EncodeToString([]byte(hooks.SigningSecret)) {
		t.Fatalf("webhook create --json: %+v", hooks)
	}
	if code, body := call(t, "GET", fmt.Sprintf("%s/api/accounts/%d/webhooks/%d", s.URL, account, hooks.ID), admin, ""); code != 200 ||
		!strings.Contains(body, `"url":"https://hooks.example.org/tokend"`) || strings.Contains(body, "signing_secret") {
		t.Errorf("the server's view of the webhook: %d %s", code, body)
	}
	text := run(t, nil, "webhook", "create", "--url", "https://hooks.example.org/second", "--events", "reject", "--domain", "1", "--format", "jsonlines", "--inactive").Stdout
	for _, want := range []string{"Created webhook 2 of account 1:", "https://hooks.example.org/second", "Sending domain:  1 mail.example.com",
		"Format:          jsonlines", "State:           inactive", "signing_secret:           ", "standard_webhooks_secret: whsec_",
		"this is the only time it is shown"} {
		if !strings.Contains(text, want) {
			t.Errorf("webhook create lacks %q:\n%s", want, text)
		}
	}

	// Another database's secrets key, made as the first webhook there is.
	otherDB := filepath.Join(t.TempDir(), "other.db")
	tokend.EnterpriseAccount(t, otherDB)
	if r := tokend.Run(t, nil, "webhook", "create", "--url", "https://hooks.example.org/", "--events", "delivery", "--db", otherDB); r.Code != 0 ||
		!strings.Contains(r.Stderr, "created the secrets key file") {
		t.Fatalf("the first webhook of a database serve never opened: %+v", r)
	}

	// What serve refuses, the command refuses, in the policy's words; what
	// serve's flags or variables allow, it allows.
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		code int
		says string
	}{
		{"a private address", nil, []string{"--url", "https://10.0.0.1/hook", "--events", "delivery"}, 2,
			"tokend: webhook create: --url points to a private or internal address; the operator can allow it (--webhook-allow-private)"},
		{"the metadata address", nil, []string{"--url", "https://169.254.169.254/latest", "--events", "delivery"}, 2, "points to a private or internal address"},
		{"plain http", nil, []string{"--url", "http://127.0.0.1:9/hook", "--events", "delivery"}, 2,
			"--url http:// is only allowed for loopback hosts, and only when the operator allows it (--webhook-allow-http)"},
		{"an unknown event", nil, []string{"--url", "https://hooks.example.org/", "--events", "delivery,opened"}, 2, `--events "opened" is not an event type`},
		{"no events", nil, []string{"--url", "https://hooks.example.org/"}, 2, "--events can't be blank"},
		{"no url, whatever TOKEND_URL says", []string{"TOKEND_URL=" + s.URL}, []string{"--events", "delivery"}, 2, "--url can't be blank"},
		{"a bad format", nil, []string{"--url", "https://hooks.example.org/", "--events", "delivery", "--format", "xml"}, 2, "--format must be json or jsonlines"},
		{"a domain that is not there", nil, []string{"--url", "https://hooks.example.org/", "--events", "delivery", "--domain", "9"}, 1,
			"webhook create: no sending domain 9 in account 1 of " + db},
		{"no account", nil, []string{"--url", "https://hooks.example.org/", "--events", "delivery", "--account", "7"}, 1, "webhook create: no account 7 in " + db},
		{"another database's secrets key", nil, []string{"--url", "https://hooks.example.org/", "--events", "delivery", "--secrets-key-file", otherDB + ".key"}, 1,
			"secrets key file " + otherDB + ".key: the secrets key does not open this database's secrets"},
		{"a secrets key file that is not there", nil, []string{"--url", "https://hooks.example.org/", "--events", "delivery", "--secrets-key-file", db + ".lost"}, 1,
			"secrets key file " + db + ".lost is missing, but database"},
		{"a private address, allowed by the variable", []string{"TOKEND_WEBHOOK_ALLOW_PRIVATE=true"},
			[]string{"--url", "https://10.0.0.1/hook", "--events", "delivery", "--inactive"}, 0, ""},
	} {
		t.Run("create: "+tt.name, func(t *testing.T) {
			r := tokend.Run(t, append(tt.env, operator...), append([]string{"webhook", "create", "--db", db}, tt.args...)...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", r.Code, r.Stderr, tt.code, tt.says)
			}
		})
	}
	run(t, nil, "webhook", "delete", "3")

	// A loopback receiver, allowed as serve allows it: the server signs its
	// deliveries with the secret the command printed.
	rcv := startEventReceiver(t)
	var local cliWebhook
	decode(t, run(t, nil, "webhook", "create", "--url", rcv.url, "--events", "delivery", "--domain", "1", "--webhook-allow-http", "--json"), &local)
	code, body := call(t, "POST", s.URL+"/api/send", admin, sendBody("news@mail.example.com", "ok@example.org"))
	var sent struct {
		MessageIDs []string `json:"message_ids"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &sent) != nil || len(sent.MessageIDs) != 1 {
		t.Fatalf("send: %d %s", code, body)
	}
	waitFor(t, 15*time.Second, "the delivery event at the receiver", func() bool { return len(rcv.byMessage()[sent.MessageIDs[0]]) > 0 })
	rcv.mu.Lock()
	mac := hmac.New(sha256.New, []byte(local.SigningSecret))
	mac.Write(rcv.bodies[0])
	if rcv.sigs[0] != hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("the delivery is not signed with the secret webhook create printed")
	}
	rcv.mu.Unlock()

	list := run(t, nil, "webhook", "list").Stdout
	for _, want := range []string{"ID  URL", "1   https://hooks.example.org/tokend  soft_bounce,bounce", "every domain", "2   https://hooks.example.org/second",
		"1 mail.example.com", "inactive", rcv.url} {
		if !strings.Contains(list, want) {
			t.Errorf("webhook list lacks %q:\n%s", want, list)
		}
	}
	var all []cliWebhook
	decode(t, run(t, nil, "webhook", "list", "--json"), &all)
	if len(all) != 3 || all[0].ID != 1 || all[2].ID != local.ID || all[2].SigningSecret != "" {
		t.Errorf("webhook list --json: %+v", all)
	}
	if show := run(t, nil, "webhook", "show", fmt.Sprint(local.ID)).Stdout; !strings.Contains(show, fmt.Sprintf("Webhook %d of account 1:", local.ID)) ||
		!strings.Contains(show, "URL:             "+rcv.url) || !strings.Contains(show, "State:           active") {
		t.Errorf("webhook show:\n%s", show)
	}

	// Its deliveries, and one sent again as a new delivery.
	var deliveries []cliDelivery
	waitFor(t, 10*time.Second, "the delivery recorded as delivered", func() bool {
		decode(t, run(t, nil, "webhook", "deliveries", fmt.Sprint(local.ID), "--json"), &deliveries)
		return len(deliveries) == 1 && deliveries[0].State == "delivered"
	})
	if d := deliveries[0]; d.EventType != "delivery" || d.MessageID != sent.MessageIDs[0] || d.Attempts != 1 || d.LastStatus == nil || *d.LastStatus != 200 {
		t.Errorf("the delivery: %+v", d)
	}
	table := run(t, nil, "webhook", "deliveries", fmt.Sprint(local.ID)).Stdout
	if !strings.Contains(table, "EVENT") || !strings.Contains(table, sent.MessageIDs[0]) || !strings.Contains(table, "delivered") {
		t.Errorf("webhook deliveries:\n%s", table)
	}
	resent := run(t, nil, "webhook", "resend", fmt.Sprint(local.ID), fmt.Sprint(deliveries[0].ID)).Stdout
	if !strings.HasPrefix(resent, fmt.Sprintf("Queued delivery %d: the delivery event of message %s, to webhook %d again.", deliveries[0].ID+1, sent.MessageIDs[0], local.ID)) {
		t.Errorf("webhook resend: %q", resent)
	}
	waitFor(t, 15*time.Second, "the resent event at the receiver", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.bodies) >= 2
	})

	// Changes, as JSON and as the server sees them.
	var updated cliWebhook
	decode(t, run(t, nil, "webhook", "update", fmt.Sprint(hooks.ID), "--events", "delivery,soft_bounce", "--format", "jsonlines", "--active", "false", "--json"), &updated)
	if updated.Active || updated.PayloadFormat != "jsonlines" || !slices.Equal(updated.EventTypes, []string{"delivery", "soft_bounce"}) || updated.URL != hooks.URL {
		t.Errorf("webhook update --json: %+v", updated)
	}
	if _, body := call(t, "GET", fmt.Sprintf("%s/api/accounts/%d/webhooks/%d", s.URL, account, hooks.ID), admin, ""); !strings.Contains(body, `"active":false`) {
		t.Errorf("the server's view after the update: %s", body)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"update: nothing to change", []string{"update", "1"}, 2, "webhook update: nothing to change: give --url, --events, --format or --active"},
		{"update: a private URL", []string{"update", "1", "--url", "https://192.168.1.1/"}, 2, "webhook update: --url points to a private or internal address"},
		{"update: active neither true nor false", []string{"update", "1", "--active", "maybe"}, 2, "want true or false"},
		{"update: no webhook", []string{"update", "99", "--active", "true"}, 1, "webhook update: no webhook 99 in account 1 of " + db},
		{"show: not an ID", []string{"show", "x"}, 2, `webhook show: "x" is not a webhook ID`},
		{"deliveries: no webhook", []string{"deliveries", "99"}, 1, "webhook deliveries: no webhook 99 in account 1 of " + db},
		{"resend: no delivery ID", []string{"resend", "1"}, 2, `webhook resend: missing DELIVERY_ID (run "tokend help webhook resend")`},
		{"resend: a delivery of another webhook", []string{"resend", "1", fmt.Sprint(deliveries[0].ID)}, 1, fmt.Sprintf("webhook resend: webhook 1 has no delivery %d", deliveries[0].ID)},
		{"resend: no webhook", []string{"resend", "99", "1"}, 1, "webhook resend: no webhook 99 in account 1 of " + db},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tokend.Run(t, nil, append(append([]string{"webhook"}, tt.args...), "--db", db)...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", r.Code, r.Stderr, tt.code, tt.says)
			}
		})
	}

	if r := run(t, nil, "webhook", "delete", "2"); r.Stdout != "Deleted webhook 2 (https://hooks.example.org/second) of account 1, and the deliveries waiting for it.\n" {
		t.Errorf("webhook delete: %q", r.Stdout)
	}
	if r := tokend.Run(t, nil, "webhook", "show", "2", "--db", db); r.Code != 1 || !strings.Contains(r.Stderr, "no webhook 2 in account 1") {
		t.Errorf("a deleted webhook: %+v", r)
	}

	// Every change is the operator's in the audit log, via cli.
	counts := map[string]int{}
	for _, e := range auditEntries(t, s.URL, admin) {
		if strings.HasPrefix(e.Action, "webhook.") {
			if e.Actor != "oncall" || e.Details["via"] != "cli" {
				t.Errorf("audit entry %s by %q, details %v; want the operator's, via cli", e.Action, e.Actor, e.Details)
			}
			counts[e.Action]++
		}
	}
	if counts["webhook.created"] != 4 || counts["webhook.updated"] != 1 || counts["webhook.deleted"] != 2 {
		t.Errorf("webhook changes in the audit log: %v", counts)
	}
	s.Stop(t)
}

// The operator adds addresses to an account's suppression list and removes
// them from the command line, as its admin: the running server stops
// relaying to them, and the audit log names the operator, via cli.
func TestSuppressionAddAndRemoveFromTheCLI(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	db := filepath.Join(t.TempDir(), "tokend.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	s := tokend.Serve(t, []string{"TOKEND_SMTP_RELAY=smtp://" + relay.Addr}, "--db", db, "--dns-resolver", dns.Addr())
	dkimRecord(t, s.URL, account, admin, "mail.example.com", dns)
	run := func(t *testing.T, args ...string) testutil.Result {
		t.Helper()
		r := tokend.Run(t, []string{"USER=oncall", "TOKEND_TYPE=spam complaint"}, append(args, "--db", db)...)
		if r.Code != 0 {
			t.Fatalf("tokend %s: %+v", strings.Join(args, " "), r)
		}
		return r
	}

	for _, tt := range []struct {
		name string
		args []string
		says string
	}{
		{"for every domain", []string{"Left@Example.org", "--type", "unsubscription"},
			"Suppressed left@example.org for every sending domain of account 1 (unsubscription), as suppression "},
		{"again", []string{"left@example.org"}, "left@example.org was already suppressed for every sending domain of account 1 (unsubscription), as suppression "},
		{"for one domain, the type given by no variable", []string{"--domain", "1", "gone@example.org"},
			"Suppressed gone@example.org for sending domain 1 mail.example.com of account 1 (manual import), as suppression "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := run(t, append([]string{"suppression", "add"}, tt.args...)...); !strings.HasPrefix(r.Stdout, tt.says) {
				t.Errorf("suppression add: %q; want it to start %q", r.Stdout, tt.says)
			}
		})
	}
	var added struct {
		ID       string `json:"id"`
		Email    string `json:"email"`
		Type     string `json:"type"`
		DomainID *int64 `json:"domain_id"`
	}
	if err := json.Unmarshal([]byte(run(t, "suppression", "add", "ann@example.org", "--domain", "1", "--json").Stdout), &added); err != nil ||
		added.Email != "ann@example.org" || added.Type != "manual import" || added.DomainID == nil || *added.DomainID != 1 {
		t.Fatalf("suppression add --json: %+v %v", added, err)
	}
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"add", "not an address"}, 2, "tokend: suppression add: EMAIL address is invalid"},
		{[]string{"add", "x@example.org", "--type", "annoyed"}, 2, `suppression add: --type must be one of "hard bounce"`},
		{[]string{"add", "x@example.org", "--domain", "8"}, 1, "suppression add: no sending domain 8 in account 1 of " + db},
		{[]string{"add"}, 2, "suppression add: missing EMAIL"},
		{[]string{"remove", "no-such-id"}, 1, `suppression remove: no suppression "no-such-id" in account 1 of ` + db},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := tokend.Run(t, nil, append(append([]string{"suppression"}, tt.args...), "--db", db)...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", r.Code, r.Stderr, tt.code, tt.says)
			}
		})
	}

	// The running server keeps live mail from the suppressed addresses.
	code, body := call(t, "POST", s.URL+"/api/send", admin,
		`{"from": {"email": "news@mail.example.com"}, "to": [{"email": "left@example.org"}, {"email": "gone@example.org"}], "subject": "Hi", "text": "Hi"}`)
	if code != 200 {
		t.Fatalf("send: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "both messages opted out", func() bool {
		_, list := call(t, "GET", fmt.Sprintf("%s/api/accounts/%d/email_logs?filters[status][operator]=equal&filters[status][value]=opted_out", s.URL, account), admin, "")
		return strings.Contains(list, `"total_count":2`)
	})

	// Removed, the address is off the list the server reads.
	removed := run(t, "suppression", "remove", added.ID).Stdout
	if removed != "Removed suppression "+added.ID+" of ann@example.org for sending domain 1 mail.example.com of account 1: it receives live mail again.\n" {
		t.Errorf("suppression remove: %q", removed)
	}
	if _, list := call(t, "GET", fmt.Sprintf("%s/api/accounts/%d/suppressions?email=ann@example.org", s.URL, account), admin, ""); strings.Contains(list, added.ID) {
		t.Errorf("the removed suppression is still listed: %s", list)
	}
	if r := tokend.Run(t, nil, "suppression", "remove", added.ID, "--db", db); r.Code != 1 || !strings.Contains(r.Stderr, "no suppression") {
		t.Errorf("removing it again: %+v", r)
	}

	counts := map[string]int{}
	for _, e := range auditEntries(t, s.URL, admin) {
		if strings.HasPrefix(e.Action, "suppression.") {
			if e.Actor != "oncall" || e.Details["via"] != "cli" {
				t.Errorf("audit entry %s by %q, details %v; want the operator's, via cli", e.Action, e.Actor, e.Details)
			}
			counts[e.Action]++
		}
	}
	if counts["suppression.created"] != 3 || counts["suppression.deleted"] != 1 {
		t.Errorf("suppression changes in the audit log: %v", counts)
	}
	s.Stop(t)
}
