package tokend

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Statuses of a DNS record of a sending domain.
const (
	RecordUnchecked = "unchecked" // not looked up yet
	RecordPass      = "pass"      // published as shown
	RecordMissing   = "missing"   // no such record
	RecordMismatch  = "mismatch"  // found, but not what it must say: Found holds what was found
)

// Keys of the DNS records of a sending domain.
const (
	RecordVerification = "verification"
	RecordSPF          = "spf"
	RecordDKIM         = "dkim"
	RecordDMARC        = "dmarc"
)

// RecordCheck is what the last completed check found for one record.
type RecordCheck struct {
	Status string   `json:"status"`
	Found  []string `json:"found,omitempty"`
	Detail string   `json:"detail,omitempty"`
}

// DomainDNS is what tokend knows of a sending domain's DNS: the random value
// its ownership record carries, whether DNS proved the domain (VerifiedAt) or
// an operator trusts it by hand (TrustedAt), and the last check's results.
// Live keys send only from a Sendable domain.
type DomainDNS struct {
	DomainID    int64
	AccountID   int64
	Name        string
	VerifyValue string
	VerifiedAt  *time.Time
	TrustedAt   *time.Time
	TrustedBy   string
	// CheckedAt is the time of the last check that ran to the end; Records
	// holds its results by record key.
	CheckedAt *time.Time
	Records   map[string]RecordCheck
	// CheckError says why the last check could not run (a DNS timeout, say),
	// or why passing records did not verify the domain; "" otherwise.
	CheckError string
	// Failures counts definite failures in a row of a verified domain: at
	// domainLostAfter it loses its verification.
	Failures    int
	Checks      int
	NextCheckAt time.Time
}

// Sendable reports whether live keys may send from the domain.
func (d *DomainDNS) Sendable() bool { return d.VerifiedAt != nil || d.TrustedAt != nil }

// DomainTx is the part of Tx that keeps what DNS says about sending domains.
type DomainTx interface {
	// CreateDomainDNS inserts d.
	CreateDomainDNS(ctx context.Context, d *DomainDNS) error
	// DomainDNS returns a domain's DNS state; ENOTFOUND if it has none.
	DomainDNS(ctx context.Context, domainID int64) (*DomainDNS, error)
	// AccountDomainDNS returns the DNS state of every domain of an account.
	AccountDomainDNS(ctx context.Context, accountID int64) ([]DomainDNS, error)
	// UpdateDomainDNS stores d. A domain name is verified or trusted by one
	// account at most: storing a second is an EINVALID error on "domain_name".
	UpdateDomainDNS(ctx context.Context, d *DomainDNS) error
	// DomainNameClaimed reports whether an account other than accountID has
	// name verified or trusted.
	DomainNameClaimed(ctx context.Context, name string, accountID int64) (bool, error)
	// DueDomainDNS returns up to limit domains whose next check is due at now,
	// the most overdue first.
	DueDomainDNS(ctx context.Context, now time.Time, limit int) ([]DomainDNS, error)
	// DomainsWithoutDNS returns the sending domains that have no DNS state
	// (made before tokend checked DNS).
	DomainsWithoutDNS(ctx context.Context) ([]Resource, error)
}

// DNSResolver looks up what receivers would see.
type DNSResolver interface {
	// LookupTXT returns the TXT records at name, each record's strings joined.
	// A name with no TXT record, or no such name, is (nil, nil); an error
	// means the lookup could not be made (timeout, SERVFAIL, network) and
	// says nothing about the records.
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// verificationLabel is the name, under a sending domain, of its ownership record.
const verificationLabel = "_tokend-verification"

// verificationPrefix starts the ownership record's value.
const verificationPrefix = "tokend-verification="

// newVerifyValue returns an ownership record's value: 130 random bits, so that
// nobody who has not seen the domain's records can publish it in advance.
func newVerifyValue() string {
	var b [20]byte
	rand.Read(b[:])
	return verificationPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// DNSRecord is one record a domain's owner publishes, with what the last
// check found: Domain is the record's full name, Name the same relative to
// the sending domain ("" for the domain itself).
type DNSRecord struct {
	Key    string // verification, spf, dkim, dmarc
	Domain string
	Name   string
	Type   string
	Value  string
	RecordCheck
}

// DNSRecords returns the records a sending domain publishes, with their
// statuses from st (all unchecked when st is nil or was never checked). spf
// is the SPF mechanism that authorizes the relay tokend delivers through,
// such as "include:_spf.example.net"; empty, the domain's own A and MX hosts
// are authorized.
func DNSRecords(domain string, st *DomainDNS, key *DomainKey, spf string) []DNSRecord {
	if spf == "" {
		spf = "a mx"
	}
	var out []DNSRecord
	if st != nil {
		out = append(out, DNSRecord{Key: RecordVerification, Domain: verificationLabel + "." + domain, Name: verificationLabel,
			Type: "TXT", Value: st.VerifyValue})
	}
	out = append(out, DNSRecord{Key: RecordSPF, Domain: domain, Name: "", Type: "TXT", Value: "v=spf1 " + spf + " ~all"})
	if key != nil {
		out = append(out, DNSRecord{Key: RecordDKIM, Domain: key.Selector + "._domainkey." + domain,
			Name: key.Selector + "._domainkey", Type: "TXT", Value: key.DKIMRecord()})
	}
	out = append(out, DNSRecord{Key: RecordDMARC, Domain: "_dmarc." + domain, Name: "_dmarc", Type: "TXT",
		Value: "v=DMARC1; p=none; rua=mailto:dmarc@" + domain})
	for i := range out {
		out[i].Status = RecordUnchecked
		if st != nil {
			if c, ok := st.Records[out[i].Key]; ok {
				out[i].RecordCheck = c
			}
		}
	}
	return out
}

// checkRecords looks up each record and says whether it is published. An
// error means a lookup could not be made: nothing can be said of any record.
func checkRecords(ctx context.Context, r DNSResolver, records []DNSRecord, spf string) (map[string]RecordCheck, error) {
	if spf == "" {
		spf = "a mx"
	}
	found := map[string][]string{} // by lower-case name: one lookup per name
	out := make(map[string]RecordCheck, len(records))
	for _, rec := range records {
		name := strings.ToLower(rec.Domain)
		txt, ok := found[name]
		if !ok {
			var err error
			if txt, err = r.LookupTXT(ctx, name); err != nil {
				return nil, fmt.Errorf("look up TXT records of %s: %w", rec.Domain, err)
			}
			found[name] = txt
		}
		switch rec.Key {
		case RecordVerification:
			out[rec.Key] = checkVerification(txt, rec.Value)
		case RecordSPF:
			out[rec.Key] = checkSPF(txt, spf)
		case RecordDKIM:
			out[rec.Key] = checkDKIM(txt, rec.Value)
		case RecordDMARC:
			out[rec.Key] = checkDMARC(txt)
		}
	}
	return out, nil
}

// withPrefix returns the records that start with prefix, compared without
// regard to case, followed by a space, a semicolon or nothing.
func withPrefix(txt []string, prefix string) []string {
	var out []string
	for _, t := range txt {
		t = strings.TrimSpace(t)
		if len(t) >= len(prefix) && strings.EqualFold(t[:len(prefix)], prefix) &&
			(len(t) == len(prefix) || t[len(prefix)] == ' ' || t[len(prefix)] == ';' || t[len(prefix)] == '\t') {
			out = append(out, t)
		}
	}
	return out
}

func checkVerification(txt []string, want string) RecordCheck {
	if len(txt) == 0 {
		return RecordCheck{Status: RecordMissing, Detail: "no TXT record at this name"}
	}
	for _, t := range txt {
		if strings.EqualFold(strings.TrimSpace(t), want) {
			return RecordCheck{Status: RecordPass}
		}
	}
	return RecordCheck{Status: RecordMismatch, Found: txt, Detail: "no TXT record here carries this domain's verification value"}
}

func checkSPF(txt []string, mechanism string) RecordCheck {
	spf := withPrefix(txt, "v=spf1")
	switch {
	case len(spf) == 0:
		return RecordCheck{Status: RecordMissing, Detail: "no SPF record (a TXT record starting v=spf1) at the domain"}
	case len(spf) > 1:
		return RecordCheck{Status: RecordMismatch, Found: spf,
			Detail: "several SPF records: receivers treat that as an error; merge them into one"}
	}
	terms := map[string]bool{}
	for _, t := range strings.Fields(spf[0])[1:] {
		terms[strings.ToLower(strings.TrimPrefix(t, "+"))] = true
	}
	for _, want := range strings.Fields(mechanism) {
		if !terms[strings.ToLower(strings.TrimPrefix(want, "+"))] {
			return RecordCheck{Status: RecordMismatch, Found: spf, Detail: "the SPF record does not contain " + want}
		}
	}
	return RecordCheck{Status: RecordPass}
}

// tags parses a DKIM or DMARC tag list ("v=DKIM1; k=rsa; p=...").
func tags(record string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(record, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return out
}

func checkDKIM(txt []string, want string) RecordCheck {
	if len(txt) == 0 {
		return RecordCheck{Status: RecordMissing, Detail: "no TXT record at this name"}
	}
	wantKey := tags(want)["p"]
	for _, t := range txt {
		tg := tags(t)
		if v, ok := tg["v"]; ok && !strings.EqualFold(v, "DKIM1") {
			continue
		}
		if k, ok := tg["k"]; ok && !strings.EqualFold(k, "rsa") {
			continue
		}
		if strings.Join(strings.Fields(tg["p"]), "") == wantKey {
			return RecordCheck{Status: RecordPass}
		}
	}
	return RecordCheck{Status: RecordMismatch, Found: txt, Detail: "no DKIM record here carries this domain's public key (p=)"}
}

func checkDMARC(txt []string) RecordCheck {
	dmarc := withPrefix(txt, "v=DMARC1")
	switch {
	case len(dmarc) == 0:
		if len(txt) > 0 {
			return RecordCheck{Status: RecordMismatch, Found: txt, Detail: "no record here starts with v=DMARC1"}
		}
		return RecordCheck{Status: RecordMissing, Detail: "no TXT record at this name"}
	case len(dmarc) > 1:
		return RecordCheck{Status: RecordMismatch, Found: dmarc, Detail: "several DMARC records: receivers ignore them all; keep one"}
	}
	switch strings.ToLower(tags(dmarc[0])["p"]) {
	case "none", "quarantine", "reject":
		return RecordCheck{Status: RecordPass}
	}
	return RecordCheck{Status: RecordMismatch, Found: dmarc, Detail: "a DMARC record needs a policy: p=none, p=quarantine or p=reject"}
}

// Audit actions of domain verification.
const (
	ActionDomainVerified   = "domain.verified"
	ActionDomainUnverified = "domain.verification_lost"
	ActionDomainTrusted    = "domain.trusted"
	ActionDomainUntrusted  = "domain.untrusted"
)

// domainLostAfter is how many definite failures in a row a verified domain
// survives: one missing answer may be a DNS provider's glitch.
const domainLostAfter = 2

// DomainClaimedError is the answer for a name another account verified or
// trusts. It names no account.
func DomainClaimedError(name string) error {
	return &Error{Code: EINVALID, Message: "Validation failed", Reason: "domain_claimed",
		Fields: FieldErrors{"domain_name": {fmt.Sprintf("%s is already verified by another account: a domain sends for one account only", name)}}}
}

// domainNotVerified is the answer to a live send from a domain that is not
// verified.
func domainNotVerified(d Resource) error {
	return &Error{Code: EFORBIDDEN, Reason: "domain_not_verified", Message: fmt.Sprintf(
		"The sending domain %s is not verified: publish its DNS records (GET /api/accounts/%d/sending_domains/%d) "+
			"and re-check them (POST /api/accounts/%d/sending_domains/%d/verify). Live keys send only from verified domains; "+
			"test keys and sandboxes work meanwhile", d.Name, d.AccountID, d.ID, d.AccountID, d.ID)}
}

// ErrDNSUnavailable wraps a check that could not run because DNS could not be
// asked: nothing about the domain changed.
var ErrDNSUnavailable = errors.New("DNS could not be checked")
