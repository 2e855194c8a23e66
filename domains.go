package tokend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DomainOptions configure the domain verification service.
type DomainOptions struct {
	// Resolver asks DNS; nil means checks cannot run (they answer
	// ErrDNSUnavailable).
	Resolver DNSResolver
	// Recheck is how often a verified domain is checked again (default an hour).
	Recheck time.Duration
	// Alert returns the jobs that announce an alert about a domain (a webhook
	// delivery, say), written with the audit event that records it; may be nil.
	Alert func(e *AuditEvent) ([]*Job, error)
	// Alerted is called after such jobs were committed; may be nil.
	Alerted func()
}

// Domains proves sending domains through DNS: it checks the records each
// domain publishes, on request and in the background, keeps whether the
// domain is verified, and lets operators trust a domain by hand.
type Domains struct {
	svc    *Service
	mailer *Mailer
	opts   DomainOptions
}

// NewDomains returns the domain verification service over svc's store; it
// mails setup instructions through mailer.
func NewDomains(svc *Service, mailer *Mailer, opts DomainOptions) *Domains {
	if opts.Recheck <= 0 {
		opts.Recheck = time.Hour
	}
	return &Domains{svc: svc, mailer: mailer, opts: opts}
}

// SendSetupInstructions mails the records a domain publishes to email, for
// whoever manages its DNS. The caller must be admin on the domain. The mail
// leaves through the outbox like any live mail; a test key's is captured
// into its test-key sandbox instead.
func (d *Domains) SendSetupInstructions(ctx context.Context, caller *Token, id int64, email string) error {
	to := Address{Email: strings.TrimSpace(email)}
	var fe FieldErrors
	if to.Email == "" {
		fe.Add("email", "can't be blank")
	} else {
		validateAddress(&fe, "email", &to)
	}
	var v *ResourceView
	err := d.svc.store.Read(ctx, func(tx Tx) error {
		var err error
		if v, err = adminResource(ctx, tx, caller, ResourceDomain, id, "send setup instructions for"); err != nil {
			return err
		}
		if err := fe.Err(); err != nil {
			return err
		}
		return d.svc.withDNS(ctx, tx, v)
	})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\r\n\r\n%s asked you to publish these DNS records for %s, so that it can send email from it.\r\n"+
		"Add each record at your DNS provider exactly as shown (a long TXT value may be split in strings of 255 characters).\r\n\r\n",
		caller.Name, v.Name)
	for _, r := range v.DNS {
		fmt.Fprintf(&b, "%s record (%s)\r\n  Name:  %s\r\n  Value: %s\r\n\r\n", r.Type, r.Key, r.Domain, r.Value)
	}
	b.WriteString("Once they are published, the domain is checked again within the hour, or at once from its page.\r\n")
	return d.mailer.sendNotice(ctx, caller, &Email{To: []Address{to}, Subject: "DNS records to publish for " + v.Name, Text: b.String()})
}

// Verify checks a domain's DNS records now and answers the domain. The caller
// must be admin on it (ENOTFOUND if it cannot read it, EFORBIDDEN if it
// only views it). A check that could not run changes nothing: the answer's
// CheckError says why.
func (d *Domains) Verify(ctx context.Context, caller *Token, id int64) (*ResourceView, error) {
	err := d.svc.store.Read(ctx, func(tx Tx) error {
		_, err := adminResource(ctx, tx, caller, ResourceDomain, id, "verify")
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := d.check(ctx, id, caller, "", false); err != nil {
		return nil, err
	}
	return d.svc.GetResource(ctx, caller, ResourceDomain, id)
}

// DomainSettings are Mailtrap's per-domain features, as its sending domain
// settings name them. tokend has none of them: it tracks no opens or clicks,
// adds no unsubscribe links and takes no inbound mail, so each is false and
// stays so.
type DomainSettings struct {
	OpenTracking, ClickTracking, TrackingOptOut, AutoUnsubscribeLink, Inbound *bool
}

// UpdateSettings changes a domain's settings, on which the caller must be
// admin: turning one of them on is EINVALID naming it, as tokend does not
// have the feature; turning it off changes nothing. It answers the domain.
func (d *Domains) UpdateSettings(ctx context.Context, caller *Token, id int64, s DomainSettings) (*ResourceView, error) {
	err := d.svc.store.Read(ctx, func(tx Tx) error {
		_, err := adminResource(ctx, tx, caller, ResourceDomain, id, "change")
		return err
	})
	if err != nil {
		return nil, err
	}
	var fe FieldErrors
	for _, f := range []struct {
		name, why string
		on        *bool
	}{
		{"open_tracking_enabled", "tokend does not track opens", s.OpenTracking},
		{"click_tracking_enabled", "tokend does not track clicks", s.ClickTracking},
		{"tracking_opt_out_enabled", "tokend does not track opens or clicks", s.TrackingOptOut},
		{"auto_unsubscribe_link_enabled", "tokend adds no unsubscribe links", s.AutoUnsubscribeLink},
		{"inbound_enabled", "tokend takes no inbound mail", s.Inbound},
	} {
		if f.on != nil && *f.on {
			fe.Add(f.name, "cannot be turned on: "+f.why)
		}
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return d.svc.GetResource(ctx, caller, ResourceDomain, id)
}

// VerifyAsOperator checks a domain's records now, for an operator.
func (d *Domains) VerifyAsOperator(ctx context.Context, id int64, operator string) (*ResourceView, error) {
	if err := d.check(ctx, id, nil, operator, false); err != nil {
		return nil, err
	}
	return d.operatorView(ctx, id)
}

// Trust makes an operator trust a domain by hand (trust false takes it
// back): live keys send from a trusted domain whatever its DNS says. A name
// another account holds cannot be trusted (EINVALID).
func (d *Domains) Trust(ctx context.Context, id int64, trust bool, operator string) (*ResourceView, error) {
	err := d.svc.store.Write(ctx, func(tx Tx) error {
		st, err := tx.DomainDNS(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.LockAccount(ctx, st.AccountID); err != nil {
			return err
		}
		action := ActionDomainTrusted
		if trust {
			if claimed, err := tx.DomainNameClaimed(ctx, st.Name, st.AccountID); err != nil {
				return err
			} else if claimed {
				return DomainClaimedError(st.Name)
			}
			now := d.svc.now()
			st.TrustedAt, st.TrustedBy = &now, operator
		} else {
			action = ActionDomainUntrusted
			st.TrustedAt, st.TrustedBy = nil, ""
		}
		if err := tx.UpdateDomainDNS(ctx, st); err != nil {
			return err
		}
		return d.svc.audit(ctx, tx, st.AccountID, nil, operator, action, "domain", id, map[string]any{"name": st.Name})
	})
	if err != nil {
		return nil, err
	}
	return d.operatorView(ctx, id)
}

// operatorView is a domain as an account admin sees it.
func (d *Domains) operatorView(ctx context.Context, id int64) (*ResourceView, error) {
	var out *ResourceView
	err := d.svc.store.Read(ctx, func(tx Tx) error {
		r, err := tx.Resource(ctx, ResourceDomain, id)
		if err != nil {
			return err
		}
		out = &ResourceView{Resource: *r, Level: Admin}
		return d.svc.withDNS(ctx, tx, out)
	})
	return out, err
}

// domainCheckLease is how long a background check holds a domain: no other
// process checks it meanwhile.
const domainCheckLease = 2 * time.Minute

// CheckDue checks the domains whose next check is due, a batch at a time, and
// returns how many it checked. Several processes may run it at once: each
// domain is claimed by one.
func (d *Domains) CheckDue(ctx context.Context) (int, error) {
	now := d.svc.now()
	var due []DomainDNS
	err := d.svc.store.Write(ctx, func(tx Tx) error {
		var err error
		if due, err = tx.DueDomainDNS(ctx, now, 16); err != nil {
			return err
		}
		for i := range due {
			st := due[i]
			st.NextCheckAt = now.Add(domainCheckLease)
			if err := tx.UpdateDomainDNS(ctx, &st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(due))
	sem := make(chan struct{}, 4)
	for i := range due {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = d.check(ctx, due[i].DomainID, nil, "tokend", true)
		}()
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

// check looks a domain's records up and records the outcome: statuses, and
// the verification gained or lost. background says the check was not asked
// for, so it schedules the next one.
func (d *Domains) check(ctx context.Context, id int64, caller *Token, operator string, background bool) error {
	var st *DomainDNS
	var records []DNSRecord
	err := d.svc.store.Read(ctx, func(tx Tx) error {
		var err error
		if st, err = tx.DomainDNS(ctx, id); err != nil {
			return err
		}
		key, err := tx.DomainKey(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			key, err = nil, nil
		}
		records = DNSRecords(st.Name, st, key, d.svc.opts.SPF)
		return err
	})
	if err != nil {
		return err
	}
	var results map[string]RecordCheck
	checkErr := ErrDNSUnavailable
	if d.opts.Resolver != nil {
		if results, err = checkRecords(ctx, d.opts.Resolver, records, d.svc.opts.SPF); err != nil {
			checkErr = fmt.Errorf("%w: %w", ErrDNSUnavailable, err)
		} else {
			checkErr = nil
		}
	}
	var follow []*Job
	err = d.svc.store.Write(ctx, func(tx Tx) error {
		follow = nil
		cur, err := tx.DomainDNS(ctx, id)
		if err != nil {
			return err // deleted meanwhile
		}
		if err := tx.LockAccount(ctx, cur.AccountID); err != nil {
			return err
		}
		now := d.svc.now()
		if checkErr != nil {
			cur.CheckError = "DNS could not be checked; nothing changed: " + checkErr.Error()
			if background {
				cur.NextCheckAt = now.Add(d.retryAfter(cur))
			}
			return tx.UpdateDomainDNS(ctx, cur)
		}
		cur.Records, cur.CheckedAt, cur.CheckError = results, &now, ""
		cur.Checks++
		pass := len(results) > 0
		for _, c := range results {
			pass = pass && c.Status == RecordPass
		}
		var action string
		details := map[string]any{"name": cur.Name}
		switch {
		case pass && cur.VerifiedAt == nil:
			claimed, err := tx.DomainNameClaimed(ctx, cur.Name, cur.AccountID)
			if err != nil {
				return err
			}
			if claimed {
				cur.CheckError = fmt.Sprintf("The records pass, but %s is already verified by another account: a domain sends for one account only", cur.Name)
				break
			}
			cur.VerifiedAt, cur.Failures, action = &now, 0, ActionDomainVerified
		case pass:
			cur.Failures = 0
		case cur.VerifiedAt != nil:
			cur.Failures++
			if cur.Failures >= domainLostAfter {
				cur.VerifiedAt, cur.Failures, action = nil, 0, ActionDomainUnverified
				details["records"] = failing(results)
			}
		}
		next := d.nextCheck(cur, now)
		// A check asked for puts the background's off only when it changed
		// the verification: checks asked for again and again must not keep
		// a domain whose records went away from being checked.
		if background || action != "" || next.Before(cur.NextCheckAt) {
			cur.NextCheckAt = next
		}
		if err := tx.UpdateDomainDNS(ctx, cur); err != nil {
			return err
		}
		if action == "" {
			return nil
		}
		if err := d.svc.audit(ctx, tx, cur.AccountID, caller, operator, action, "domain", id, details); err != nil {
			return err
		}
		if action != ActionDomainUnverified || d.opts.Alert == nil {
			return nil
		}
		e := &AuditEvent{AccountID: cur.AccountID, At: now, Actor: "tokend", Action: ActionAlertPrefix + "domain_unverified",
			TargetType: "domain", TargetID: id, Details: map[string]any{
				"message": fmt.Sprintf("Sending domain %s lost its verification: its DNS records are gone (%v); live keys cannot send from it until they are back",
					cur.Name, failing(results)), "name": cur.Name}}
		if follow, err = d.opts.Alert(e); err != nil {
			return err
		}
		return d.svc.recordEvent(ctx, tx, e, follow...)
	})
	if err == nil && len(follow) > 0 && d.opts.Alerted != nil {
		d.opts.Alerted()
	}
	return err
}

// failing lists the keys of the records that did not pass.
func failing(results map[string]RecordCheck) []string {
	var out []string
	for _, k := range []string{RecordVerification, RecordSPF, RecordDKIM, RecordDMARC} {
		if c, ok := results[k]; ok && c.Status != RecordPass {
			out = append(out, k+" "+c.Status)
		}
	}
	return out
}

// unverifiedBackoff spaces the checks of a domain not verified yet: often
// while its owner is publishing the records, then hourly.
var unverifiedBackoff = []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute}

// nextCheck is when a domain is checked next after a check that ran.
func (d *Domains) nextCheck(st *DomainDNS, now time.Time) time.Time {
	switch {
	case st.VerifiedAt != nil && st.Failures > 0:
		return now.Add(min(d.opts.Recheck, 10*time.Minute)) // confirm soon
	case st.VerifiedAt != nil:
		return now.Add(d.opts.Recheck)
	case st.Checks-1 < len(unverifiedBackoff) && st.Checks > 0:
		return now.Add(unverifiedBackoff[st.Checks-1])
	}
	return now.Add(time.Hour)
}

// retryAfter is when a check that could not run is tried again.
func (d *Domains) retryAfter(st *DomainDNS) time.Duration {
	if st.VerifiedAt != nil {
		return min(d.opts.Recheck, 5*time.Minute)
	}
	return time.Minute
}

// EnsureDomainDNS gives every sending domain that has none (domains made
// before tokend checked DNS) its DNS state, unverified, and returns how many
// it made.
func (s *Service) EnsureDomainDNS(ctx context.Context) (int, error) {
	n := 0
	err := s.store.Write(ctx, func(tx Tx) error {
		n = 0
		missing, err := tx.DomainsWithoutDNS(ctx)
		if err != nil {
			return err
		}
		for _, r := range missing {
			if err := tx.CreateDomainDNS(ctx, newDomainDNS(r, s.now())); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// newDomainDNS is the DNS state of a domain just added: unverified, first
// checked now.
func newDomainDNS(r Resource, now time.Time) *DomainDNS {
	return &DomainDNS{DomainID: r.ID, AccountID: r.AccountID, Name: r.Name, VerifyValue: newVerifyValue(),
		Records: map[string]RecordCheck{}, NextCheckAt: now}
}
