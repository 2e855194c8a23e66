package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/tokend/tokend/internal/testutil"
)

// dkimRecord creates a sending domain, publishes its records in dns (which
// the server asks: --dns-resolver), has tokend verify them, and returns its
// DKIM record's name and value.
func dkimRecord(t *testing.T, url string, account int64, token, domain string, dns *testutil.DNSServer) (string, string) {
	t.Helper()
	code, body := call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/sending_domains", url, account), token,
		`{"sending_domain": {"domain_name": "`+domain+`"}}`)
	var d struct {
		ID         int64
		DNSRecords []struct{ Key, Domain, Value string } `json:"dns_records"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("create domain: %d %s", code, body)
	}
	for _, r := range d.DNSRecords {
		dns.AddTXT(r.Domain, r.Value)
	}
	code, body = call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/sending_domains/%d/verify", url, account, d.ID), token, "")
	if code != 200 || !strings.Contains(body, `"dns_verified":true`) {
		t.Fatalf("verify domain with its records published: %d %s", code, body)
	}
	for _, r := range d.DNSRecords {
		if r.Key == "dkim" {
			return r.Domain, r.Value
		}
	}
	t.Fatalf("no DKIM record in %s", body)
	return "", ""
}

func verifyDKIM(t *testing.T, msg []byte, name, value string) {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(n string) ([]string, error) {
		if n != name {
			return nil, fmt.Errorf("no record %s", n)
		}
		return []string{value}, nil
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Errorf("DKIM does not verify against the published record: %v %+v", err, vs)
	}
}

func sendBody(from, to string) string {
	return fmt.Sprintf(`{"from": {"email": %q}, "to": [{"email": %q}], "subject": "Hello", "text": "Hello from tokend"}`, from, to)
}

// pkcs8RSA is how a DER-encoded RSA private key begins after its length:
// version 0, then the rsaEncryption algorithm. A public key never has it.
var pkcs8RSA = []byte{0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}

// A live send through the binary reaches the relay DKIM-signed; the DKIM key
// is sealed in the database by a key file serve creates, and it still signs
// after a restart. Without its key file, the database refuses to serve.
func TestServeDeliversSignedMailThroughTheRelay(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{User: "tokend", Password: "relay-s3cret"})
	relayURL := "TOKEND_SMTP_RELAY=smtp://tokend:relay-s3cret@" + relay.Addr
	dir := t.TempDir()
	db := filepath.Join(dir, "mail.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	s := tokend.Serve(t, []string{relayURL}, "--db", db, "--dns-resolver", dns.Addr())
	name, value := dkimRecord(t, s.URL, account, admin, "mail.example.com", dns)
	code, body := call(t, "POST", s.URL+"/api/send", admin, sendBody("news@mail.example.com", "ann@example.org"))
	if code != 200 {
		t.Fatalf("send: %d %s", code, body)
	}
	m := relay.WaitMails(t, 1, 10*time.Second)[0]
	if m.From != "news@mail.example.com" || m.To[0] != "ann@example.org" || m.User != "tokend" {
		t.Errorf("envelope %s → %v as %q", m.From, m.To, m.User)
	}
	verifyDKIM(t, m.Data, name, value)
	s.Stop(t)

	info, err := os.Stat(db + ".key")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secrets key file: %v, mode %v", err, info.Mode())
	}
	for _, f := range []string{db, db + "-wal"} {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, pkcs8RSA) {
			t.Errorf("%s holds a private key in clear", f)
		}
	}
	if logs := s.Stderr.String(); strings.Contains(logs, admin) || strings.Contains(logs, "relay-s3cret") || !strings.Contains(logs, "smtp://tokend:xxxxx@") {
		t.Errorf("the log holds a secret, or does not name the relay:\n%s", logs)
	}

	s = tokend.Serve(t, []string{relayURL}, "--db", db, "--dns-resolver", dns.Addr())
	if code, body := call(t, "POST", s.URL+"/api/send", admin, sendBody("news@mail.example.com", "bob@example.org")); code != 200 {
		t.Fatalf("send after restart: %d %s", code, body)
	}
	verifyDKIM(t, relay.WaitMails(t, 2, 10*time.Second)[1].Data, name, value)
	// A test key's send is counted as captured; the live one as accepted, then delivered.
	code, body = call(t, "POST", s.URL+"/api/api_tokens", admin, fmt.Sprintf(
		`{"name": "ci", "environment": "test", "resources": [{"resource_type": "account", "resource_id": %d, "access_level": 100}]}`, account))
	testKey := testutil.TokenPattern.FindString(body)
	if code != 200 || testKey == "" {
		t.Fatalf("create test key: %d %s", code, body)
	}
	if code, body := call(t, "POST", s.URL+"/api/send", testKey, sendBody("news@mail.example.com", "carl@example.org")); code != 200 {
		t.Fatalf("test-key send: %d %s", code, body)
	}
	var last string
	t.Cleanup(func() { // what to look at if the wait below times out
		if t.Failed() {
			var emails []string
			for _, l := range strings.Split(last, "\n") {
				if strings.HasPrefix(l, "tokend_emails") {
					emails = append(emails, l)
				}
			}
			logs := s.Stderr.String()
			t.Logf("email metrics: %v\nserver log (last 4 KiB): %s", emails, logs[max(0, len(logs)-4096):])
		}
	})
	waitFor(t, 20*time.Second, "email metrics", func() bool {
		_, last = call(t, "GET", s.URL+"/metrics", "", "")
		return strings.Contains(last, `tokend_emails_total{event="accepted"} 1`) && strings.Contains(last, `tokend_emails_total{event="delivered"} 1`) &&
			strings.Contains(last, `tokend_emails_total{event="captured"} 1`)
	})
	s.Stop(t)

	os.Rename(db+".key", db+".key.moved")
	r := tokend.Run(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", db)
	if r.Code == 0 || !strings.Contains(r.Stderr, db+".key is missing") || !strings.Contains(r.Stderr, "restore the key file") {
		t.Errorf("serve without its key file: %+v", r)
	}
	os.WriteFile(db+".key", []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600)
	if r := tokend.Run(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", db); r.Code == 0 || !strings.Contains(r.Stderr, "sealed with another key") {
		t.Errorf("serve with another key: %+v", r)
	}
}

var messageIDHeader = regexp.MustCompile(`Message-ID: <([0-9a-f-]{36})@`)

// kill -9 of serve during a burst of sends: after a restart, every message
// answered 200 reaches the relay (at least once, its Message-ID telling
// copies apart).
func TestKilledDuringSendsDeliversEveryAcceptedMessage(t *testing.T) {
	// A relay slow enough that mail is still queued and in flight at the kill.
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{Delay: 5 * time.Millisecond})
	db := filepath.Join(t.TempDir(), "kill.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	s := tokend.Serve(t, nil, "--db", db, "--smtp-relay", "smtp://"+relay.Addr, "--dns-resolver", dns.Addr())
	dkimRecord(t, s.URL, account, admin, "example.com", dns)

	var mu sync.Mutex
	accepted := map[string]bool{}
	var refused atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	stopAt := time.Now().Add(1500 * time.Millisecond)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && time.Now().Before(stopAt.Add(2*time.Second)); i++ {
				req, _ := http.NewRequest("POST", s.URL+"/api/send", strings.NewReader(sendBody("app@example.com", fmt.Sprintf("w%d-%d@example.org", w, i))))
				req.Header.Set("Api-Token", admin)
				res, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var out struct {
					MessageIDs []string `json:"message_ids"`
				}
				json.NewDecoder(res.Body).Decode(&out)
				res.Body.Close()
				if res.StatusCode != 200 {
					refused.Add(1)
					continue
				}
				mu.Lock()
				for _, id := range out.MessageIDs {
					accepted[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Until(stopAt))
	s.Kill(t)
	wg.Wait()
	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n < 50 {
		t.Fatalf("only %d sends were accepted before the kill (%d refused)", n, refused.Load())
	}
	before := len(relay.Mails())
	t.Logf("%d messages accepted before kill -9, %d delivered by then, %d refused", n, before, refused.Load())

	restart := time.Now()
	s = tokend.Serve(t, nil, "--db", db, "--smtp-relay", "smtp://"+relay.Addr, "--dns-resolver", dns.Addr())
	deadline := time.Now().Add(90 * time.Second)
	for {
		delivered := map[string]int{}
		for _, m := range relay.Mails() {
			if id := messageIDHeader.FindSubmatch(m.Data); id != nil {
				delivered[string(id[1])]++
			}
		}
		missing, dups := 0, 0
		for id := range accepted {
			if delivered[id] == 0 {
				missing++
			} else if delivered[id] > 1 {
				dups++
			}
		}
		if missing == 0 {
			t.Logf("all %d accepted messages delivered %v after the restart; %d delivered twice", n, time.Since(restart).Round(time.Second), dups)
			if time.Since(restart) > time.Minute {
				t.Errorf("recovery took %v, want within a minute of the restart", time.Since(restart))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never reached the relay", missing, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.Stop(t)
}

// logLines parses a server's JSON log, one object a line.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		lines = append(lines, line)
	}
	return lines
}

// Each delivery attempt logs one line naming the message, its sending
// domain, the attempt and its outcome, and never the recipient's address,
// even where the relay's reply repeats it. Durations read as durations.
func TestServeLogsDeliveriesWithoutRecipients(t *testing.T) {
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	db := filepath.Join(t.TempDir(), "logs.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	dns := testutil.StartDNS(t)
	s := tokend.Serve(t, nil, "--db", db, "--smtp-relay", "smtp://"+relay.Addr, "--dns-resolver", dns.Addr())
	dkimRecord(t, s.URL, account, admin, "mail.example.com", dns)
	send := func(to string) string {
		t.Helper()
		code, body := call(t, "POST", s.URL+"/api/send", admin, sendBody("news@mail.example.com", to))
		var out struct {
			MessageIDs []string `json:"message_ids"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.MessageIDs) != 1 {
			t.Fatalf("send to %s: %d %s", to, code, body)
		}
		return out.MessageIDs[0]
	}
	// outcomes are the levels and outcomes of the lines about a message.
	outcomes := func(id string) []string {
		var got []string
		for _, l := range logLines(t, s.Stderr.String()) {
			if l["message_id"] == id {
				got = append(got, fmt.Sprintf("%v %v %v %v", l["level"], l["outcome"], l["attempt"], l["domain"]))
			}
		}
		return got
	}

	delivered := send("ann@example.org")
	relay.WaitMails(t, 1, 10*time.Second)
	waitFor(t, 10*time.Second, "the delivery's log line", func() bool { return len(outcomes(delivered)) > 0 })
	// The relay defers the next message, then refuses it for good, saying
	// whom it was for.
	relay.Refuse(450, "4.2.2 <bob@example.org>: mailbox full")
	refused := send("bob@example.org")
	waitFor(t, 10*time.Second, "the deferral's log line", func() bool { return len(outcomes(refused)) > 0 })
	relay.Refuse(550, "5.1.1 <bob@example.org>: no such user")
	waitFor(t, 20*time.Second, "the refusal's log line", func() bool { return len(outcomes(refused)) > 1 })
	// The relay's reply is kept whole for the message's sender.
	if code, body := call(t, "GET", s.URL+"/api/email_logs/"+refused, admin, ""); code != 200 || !strings.Contains(body, "bob@example.org") || !strings.Contains(body, "no such user") {
		t.Errorf("the message's log lost the relay's reply: %d %s", code, body)
	}
	s.Stop(t)

	if got, want := outcomes(delivered), []string{"INFO delivered 1 mail.example.com"}; !slices.Equal(got, want) {
		t.Errorf("the delivered message's log lines: %q, want %q", got, want)
	}
	if got, want := outcomes(refused), []string{"WARN deferred 1 mail.example.com", "WARN failed 2 mail.example.com"}; !slices.Equal(got, want) {
		t.Errorf("the refused message's log lines: %q, want %q", got, want)
	}
	logs := s.Stderr.String()
	for _, addr := range []string{"ann@example.org", "bob@example.org"} {
		if strings.Contains(logs, addr) {
			t.Errorf("the log names the recipient %s:\n%s", addr, logs)
		}
	}

	// Every duration is logged as a duration, not as integer nanoseconds.
	seen := map[string]string{}
	for _, l := range logLines(t, logs) {
		for _, key := range []string{"retry_for", "retry_in", "duration", "age", "retention"} {
			v, ok := l[key]
			if !ok {
				continue
			}
			s, isString := v.(string)
			if _, err := time.ParseDuration(s); !isString || err != nil {
				t.Errorf("%s is logged as %v (%T), not as a duration such as \"24h0m0s\": %v", key, v, v, l)
			}
			seen[key] = s
		}
	}
	if seen["retry_for"] != "24h0m0s" || seen["retry_in"] == "" || seen["duration"] == "" {
		t.Errorf("durations seen in the log: %v; want retry_for 24h0m0s, a retry_in and a request's duration", seen)
	}
}
