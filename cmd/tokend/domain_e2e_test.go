package main_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// Operators check a domain's DNS and trust an internal one from the command
// line, beside a running server; the server's background checks take a
// verification away once the records are gone twice in a row.
func TestDomainCommandsAndBackgroundChecks(t *testing.T) {
	dns := testutil.StartDNS(t)
	db := filepath.Join(t.TempDir(), "domains.db")
	account, admin := tokend.EnterpriseAccount(t, db)
	s := tokend.Serve(t, nil, "--db", db, "--dns-resolver", dns.Addr(), "--dns-recheck", "1s")
	create := func(name string) (int64, []struct{ Key, Domain, Value string }) {
		t.Helper()
		code, body := call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/sending_domains", s.URL, account), admin,
			`{"sending_domain": {"domain_name": "`+name+`"}}`)
		var d struct {
			ID         int64
			DNSRecords []struct{ Key, Domain, Value string } `json:"dns_records"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
		return d.ID, d.DNSRecords
	}
	id, records := create("mail.example.com")

	r := tokend.Run(t, nil, "domain", "verify", fmt.Sprint(id), "--db", db, "--dns-resolver", dns.Addr())
	if r.Code != 0 || !strings.Contains(r.Stdout, "not verified") || strings.Count(r.Stdout, "missing") != 4 {
		t.Fatalf("domain verify with nothing published: %+v", r)
	}
	for _, rec := range records {
		dns.AddTXT(rec.Domain, rec.Value)
	}
	r = tokend.Run(t, nil, "domain", "verify", fmt.Sprint(id), "--db", db, "--dns-resolver", dns.Addr(), "--json")
	var out struct {
		DNSVerified bool                           `json:"dns_verified"`
		Records     []struct{ Key, Status string } `json:"dns_records"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || !out.DNSVerified || len(out.Records) != 4 {
		t.Fatalf("domain verify --json with every record published: %+v", r)
	}
	domain := func(id int64) string {
		_, body := call(t, "GET", fmt.Sprintf("%s/api/accounts/%d/sending_domains/%d", s.URL, account, id), admin, "")
		return body
	}
	if !strings.Contains(domain(id), `"dns_verified":true`) {
		t.Fatalf("the server does not see what the CLI verified: %s", domain(id))
	}

	// Records gone: the verification goes after two failed checks in a row,
	// the second one the server's own (every second here), and is audited.
	for _, rec := range records {
		dns.Remove(rec.Domain)
	}
	// One failed check (asked for) keeps it; the next, in the background, does not.
	if code, body := call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/sending_domains/%d/verify", s.URL, account, id), admin, ""); code != 200 ||
		!strings.Contains(body, `"dns_verified":true`) {
		t.Fatalf("one failed check: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the verification is lost", func() bool { return strings.Contains(domain(id), `"dns_verified":false`) })
	_, audit := call(t, "GET", s.URL+"/api/audit_log?limit=20", admin, "")
	if !strings.Contains(audit, `"action":"domain.verification_lost"`) || !strings.Contains(audit, `"action":"alert.domain_unverified"`) {
		t.Errorf("the audit log does not record the loss and its alert: %s", audit)
	}

	// An internal domain, trusted by hand, and back.
	internal, _ := create("internal.example.com")
	if r := tokend.Run(t, nil, "domain", "trust", fmt.Sprint(internal), "--db", db); r.Code != 0 || !strings.Contains(r.Stdout, "trusted by an operator") {
		t.Fatalf("domain trust: %+v", r)
	}
	if body := domain(internal); !strings.Contains(body, `"trusted":true`) || !strings.Contains(body, `"compliance_status":"compliant"`) {
		t.Errorf("a trusted domain as the API shows it: %s", body)
	}
	if r := tokend.Run(t, nil, "domain", "trust", fmt.Sprint(internal), "--undo", "--db", db); r.Code != 0 || !strings.Contains(domain(internal), `"trusted":false`) {
		t.Errorf("domain trust --undo: %+v", r)
	}
	if r := tokend.Run(t, nil, "domain", "verify", "999", "--db", db, "--dns-resolver", dns.Addr()); r.Code == 0 || !strings.Contains(r.Stderr, "no sending domain 999") {
		t.Errorf("domain verify of a missing domain: %+v", r)
	}
}
