package api_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Records published one by one: each check says which pass, which are
// missing and what a wrong one holds; the domain is verified only when all
// pass, and only then do live keys send from it.
func TestDomainVerifiedByDNSRecordByRecord(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createDomain(e.admin, "Mail.Example.COM.") // any case, a trailing dot
	d := e.domain(id)
	if d.Name != "mail.example.com" || d.DNSVerified || d.DNSVerifiedAt != nil || d.Compliance != "unverified_dns" {
		t.Fatalf("new domain = %+v", d)
	}
	keys := []string{}
	for _, r := range d.Records {
		keys = append(keys, r.Key)
		if r.Status != "unchecked" {
			t.Errorf("record %s of a new domain: status %q, want unchecked", r.Key, r.Status)
		}
	}
	if strings.Join(keys, ",") != "verification,spf,dkim,dmarc" {
		t.Fatalf("records %v, want verification, spf, dkim, dmarc", keys)
	}
	verifyName, verifyValue, _ := d.record(t, "verification")
	if verifyName != "_tokend-verification.mail.example.com" || len(verifyValue) < 40 || strings.Contains(verifyValue, "mail") {
		t.Errorf("verification record %s = %q: want a random value not derived from the name", verifyName, verifyValue)
	}
	live := email("news@mail.example.com", "ann@example.org")
	refused := e.post("/api/send", e.admin, live).want(403)
	if !strings.Contains(string(refused.Body), "mail.example.com is not verified") || !strings.Contains(string(refused.Body), "domain_not_verified") {
		t.Errorf("send from an unverified domain: %s", refused.Body)
	}
	if n := e.pendingDeliveries(); n != 0 {
		t.Fatalf("%d deliveries queued for a refused send", n)
	}

	status := func(d domainJSON) map[string]string {
		out := map[string]string{}
		for _, r := range d.Records {
			out[r.Key] = r.Status
		}
		return out
	}
	want := func(d domainJSON, verified bool, statuses map[string]string) {
		t.Helper()
		got := status(d)
		for k, v := range statuses {
			if got[k] != v {
				t.Errorf("record %s: %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		if d.DNSVerified != verified || (d.DNSVerifiedAt != nil) != verified {
			t.Errorf("dns_verified %v (at %v), want %v", d.DNSVerified, d.DNSVerifiedAt, verified)
		}
	}
	v := e.verifyDomain(e.admin, e.acme, id)
	want(v, false, map[string]string{"verification": "missing", "spf": "missing", "dkim": "missing", "dmarc": "missing"})

	// Other services' TXT records beside ours at the apex, our SPF with other
	// mechanisms, names in upper case as some providers answer them.
	e.dns.AddTXT("_TOKEND-VERIFICATION.MAIL.EXAMPLE.COM", verifyValue)
	e.dns.AddTXT("mail.example.com", "google-site-verification=abc123")
	e.dns.AddTXT("mail.example.com", "v=spf1 include:_spf.google.com -all")
	v = e.verifyDomain(e.admin, e.acme, id)
	want(v, false, map[string]string{"verification": "pass", "spf": "mismatch", "dkim": "missing", "dmarc": "missing"})
	for _, r := range v.Records {
		if r.Key == "spf" && (len(r.Found) != 1 || r.Found[0] != "v=spf1 include:_spf.google.com -all" || !strings.Contains(r.Detail, "does not contain a")) {
			t.Errorf("a wrong SPF record should say what was found and what is missing: %+v", r)
		}
	}
	e.dns.SetTXT("mail.example.com", []string{"google-site-verification=abc123"}, []string{"v=spf1 include:_spf.google.com a mx ~all"})
	// A 2048-bit key is published in 255-byte strings; the check joins them.
	dkimName, dkimValue, _ := v.record(t, "dkim")
	e.dns.SetTXT(dkimName, []string{dkimValue[:100], dkimValue[100:]})
	e.dns.AddTXT("_dmarc.mail.example.com", "v=DMARC1; p=reject; pct=100")
	v = e.verifyDomain(e.admin, e.acme, id)
	want(v, true, map[string]string{"verification": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass"})
	if v.Compliance != "compliant" || v.DNSCheckError != nil {
		t.Errorf("verified domain = %+v", v)
	}
	e.post("/api/send", e.admin, live).want(200)

	// A lookup that cannot be made changes nothing, and says so.
	e.dns.FailWith(dns.RcodeServerFailure)
	v = e.verifyDomain(e.admin, e.acme, id)
	want(v, true, map[string]string{"verification": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass"})
	if v.DNSCheckError == nil || !strings.Contains(*v.DNSCheckError, "could not be checked") {
		t.Errorf("a check that could not run should say so: %+v", v)
	}
	e.dns.Stop()
	v = e.verifyDomain(e.admin, e.acme, id)
	want(v, true, nil)
	e.dns.Restart()
	e.dns.FailWith(0)

	// Records gone: the first failed check keeps the verification, the
	// second in a row takes it away, with an audit event.
	e.dns.Remove(dkimName)
	v = e.verifyDomain(e.admin, e.acme, id)
	want(v, true, map[string]string{"dkim": "missing"})
	v = e.verifyDomain(e.admin, e.acme, id)
	want(v, false, map[string]string{"dkim": "missing"})
	e.post("/api/send", e.admin, live).want(403)
	var audit struct {
		Data []struct{ Action string } `json:"data"`
	}
	e.get("/api/audit_log?limit=50", e.admin).want(200).decode(&audit)
	var actions []string
	for _, a := range audit.Data {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "domain.verified") || !strings.Contains(got, "domain.verification_lost") {
		t.Errorf("audit log %v should record the verification and its loss", actions)
	}
}

// Test keys and sandboxes work from a domain DNS has not verified: nothing
// they send leaves tokend.
func TestUnverifiedDomainStillCapturesTestKeySends(t *testing.T) {
	e := newEnv(t)
	e.createDomain(e.admin, "example.com")
	testKey := e.post("/api/api_tokens", e.admin, map[string]any{"name": "staging", "environment": "test",
		"resources": []any{perm("account", e.acme, 100)}}).want(200).object()["token"].(string)
	e.post("/api/send", testKey, email("news@example.com", "ann@example.org")).want(200)
	e.post("/api/batch", e.admin, map[string]any{"base": map[string]any{"from": map[string]any{"email": "news@example.com"}, "subject": "s", "text": "t"},
		"requests": []any{map[string]any{"to": []any{map[string]any{"email": "a@example.org"}}}}}).want(200)
	var batch struct {
		Responses []struct {
			Success bool
			Errors  []string
		}
	}
	e.post("/api/batch", e.admin, map[string]any{"base": map[string]any{"from": map[string]any{"email": "news@example.com"}, "subject": "s", "text": "t"},
		"requests": []any{map[string]any{"to": []any{map[string]any{"email": "a@example.org"}}}}}).want(200).decode(&batch)
	if len(batch.Responses) != 1 || batch.Responses[0].Success || !strings.Contains(strings.Join(batch.Responses[0].Errors, ""), "not verified") {
		t.Errorf("a live batch item from an unverified domain: %+v", batch)
	}
	if n := e.pendingDeliveries(); n != 0 {
		t.Errorf("%d deliveries queued", n)
	}
}

// A name is verified by one account only: two accounts racing with both
// values published get one verification; a third cannot even add it.
func TestDomainNameVerifiedByOneAccount(t *testing.T) {
	e := newEnv(t)
	acmeID, _ := e.createDomain(e.admin, "contested.example")
	var other domainJSON
	e.post(e.path("/api/accounts/%d/sending_domains", e.other), e.otherAdmin,
		map[string]any{"sending_domain": map[string]any{"domain_name": "contested.example"}}).want(200).decode(&other)
	acme := e.domain(acmeID)
	_, acmeValue, _ := acme.record(t, "verification")
	_, otherValue, _ := other.record(t, "verification")
	if acmeValue == otherValue {
		t.Fatal("two accounts got the same verification value")
	}
	// An unverified claim does not block the owner: publish only Acme's value first.
	e.publish(acme)
	for _, r := range other.Records {
		if r.Key != "verification" && r.Key != "spf" && r.Key != "dmarc" {
			e.dns.AddTXT(r.Domain, r.Value)
		}
	}
	var wg sync.WaitGroup
	var acmeV, otherV domainJSON
	e.dns.AddTXT("_tokend-verification.contested.example", otherValue) // both published: a race
	wg.Add(2)
	go func() { defer wg.Done(); acmeV = e.verifyDomain(e.admin, e.acme, acmeID) }()
	go func() { defer wg.Done(); otherV = e.verifyDomain(e.otherAdmin, e.other, other.ID) }()
	wg.Wait()
	if acmeV.DNSVerified == otherV.DNSVerified {
		t.Fatalf("both or neither verified: acme %v, other %v", acmeV.DNSVerified, otherV.DNSVerified)
	}
	loser := otherV
	if !acmeV.DNSVerified {
		loser = acmeV
	}
	if loser.DNSCheckError == nil || !strings.Contains(*loser.DNSCheckError, "another account") ||
		strings.Contains(*loser.DNSCheckError, "Acme") || strings.Contains(*loser.DNSCheckError, "Other") {
		t.Errorf("the losing account's answer should say another account holds it, naming none: %+v", loser.DNSCheckError)
	}
	// A third attempt to add the name, in the account that lost: refused.
	caller, account := e.otherAdmin, e.other
	if !acmeV.DNSVerified {
		caller, account = e.admin, e.acme
	}
	e.del(e.path("/api/accounts/%d/sending_domains/%d", account, loser.ID), caller).want(204)
	r := e.post(e.path("/api/accounts/%d/sending_domains", account), caller,
		map[string]any{"sending_domain": map[string]any{"domain_name": "CONTESTED.example"}}).want(422)
	if !strings.Contains(string(r.Body), "already verified by another account") {
		t.Errorf("adding a name another account verified: %s", r.Body)
	}
}

func TestDomainNamesThatCannotBeOwnedAre422(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"com", "co.uk", "github.io", "192.168.1.10", "[::1]", "exa mple.com", "http://example.com", "example.com:25", "-bad.example.com"} {
		t.Run(name, func(t *testing.T) {
			r := e.with(t).post(e.path("/api/accounts/%d/sending_domains", e.acme), e.admin,
				map[string]any{"sending_domain": map[string]any{"domain_name": name}}).want(422)
			if !strings.Contains(string(r.Body), "domain_name") {
				t.Errorf("422 body %s should name domain_name", r.Body)
			}
		})
	}
}

// Background checks: a verified domain whose records are gone loses its
// verification after two checks in a row; a temporary failure changes nothing.
func TestBackgroundChecksLoseAVerificationTwiceGone(t *testing.T) {
	e := newEnv(t)
	id, _ := e.verifiedDomain(e.admin, "example.com")
	ctx := context.Background()
	checkDue := func() int {
		t.Helper()
		n, err := e.domains.CheckDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := checkDue(); n != 0 {
		t.Fatalf("%d checks due right after verification", n)
	}
	e.clock.Advance(time.Hour)
	e.dns.Stop()
	if n := checkDue(); n != 1 || !e.domain(id).DNSVerified {
		t.Fatalf("a check that could not run: %d checked, verified %v", n, e.domain(id).DNSVerified)
	}
	e.dns.Restart()
	d := e.domain(id)
	name, _, _ := d.record(t, "dmarc")
	e.dns.Remove(name)
	e.clock.Advance(5 * time.Minute)
	checkDue()
	if !e.domain(id).DNSVerified {
		t.Fatal("verification lost after one failed check")
	}
	e.clock.Advance(10 * time.Minute)
	checkDue()
	if d := e.domain(id); d.DNSVerified {
		t.Fatalf("verification kept after two failed checks in a row: %+v", d)
	}
}

func TestSendSetupInstructions(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createDomain(e.admin, "example.com")
	path := e.path("/api/accounts/%d/sending_domains/%d/send_setup_instructions", e.acme, id)
	e.post(path, e.admin, map[string]any{"email": "dns@example.org"}).want(204)
	if n := e.pendingJobs("notice_email"); n != 1 {
		t.Errorf("%d notice jobs queued, want 1", n)
	}
	e.post(path, e.admin, map[string]any{"email": "not an address"}).want(422)
	e.post(path, e.admin, map[string]any{}).want(422)
}

// pendingJobs is how many outbox jobs of kind wait.
func (e *env) pendingJobs(kind string) int {
	e.t.Helper()
	n, err := e.svc.Outbox().Pending(context.Background(), kind)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(n)
}
