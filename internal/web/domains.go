package web

// Sending domains.

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

type domainsData struct {
	Domains []tokend.ResourceView
	CanAdd  bool
	Created *tokend.DomainView
}

func (s *Server) domains(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.renderDomains(w, r, ses, http.StatusOK, "", nil)
}

func (s *Server) renderDomains(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg string, created *tokend.DomainView) error {
	list, err := s.svc.ListResources(r.Context(), ses.Principal, tokend.ResourceDomain)
	if err != nil {
		return err
	}
	if created != nil {
		created.DNS = verificationFirst(created.DNS)
	}
	notice := notices[r.URL.Query().Get("done")]
	if r.URL.Query().Get("done") == "domain-deleted" {
		notice = "The sending domain was deleted."
	}
	s.render(w, r, status, "domains", view{Title: "Sending Domains", Session: ses, Error: errMsg, Notice: notice,
		Data: domainsData{Domains: list, CanAdd: ses.Principal.IsAccountAdmin(), Created: created}})
	return nil
}

func (s *Server) createDomain(w http.ResponseWriter, r *http.Request, ses *session) error {
	d, err := s.svc.CreateDomain(r.Context(), ses.Principal, r.PostFormValue("domain_name"))
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderDomains(w, r, ses, status, msg, nil) })
	}
	return s.renderDomains(w, r, ses, http.StatusOK, "", d)
}

func (s *Server) domain(w http.ResponseWriter, r *http.Request, ses *session) error {
	f := s.takeFlash(w, r)
	return s.renderDomain(w, r, ses, http.StatusOK, f.Error, f.Notice, "")
}

// renderDomain shows the page of the domain the path names, with a message
// and the address last typed into its "Email these records to" form.
func (s *Server) renderDomain(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg, notice, email string) error {
	d, err := s.resource(r, ses, tokend.ResourceDomain)
	if err != nil {
		return err
	}
	tokens, err := s.svc.ListTokens(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	data := domainData{Domain: d, Records: verificationFirst(d.DNS), CanManage: d.Level == tokend.Admin, Email: email}
	if st := d.DNSState; st != nil {
		data.CheckedAt = st.CheckedAt
		if st.CheckError != errMsg { // shown once is enough
			data.CheckError = st.CheckError
		}
	}
	for _, t := range tokens {
		if tokend.LevelOn(t.Permissions, d.Resource) == tokend.Admin {
			data.Tokens = append(data.Tokens, s.tokenRow(t, ""))
		}
	}
	s.render(w, r, status, "domain", view{Title: d.Name, Session: ses, Error: errMsg, Notice: notice, Data: data})
	return nil
}

// domainData is a sending domain's page: whether it is verified, its DNS
// records with what the last check found, and the tokens that may send from
// it (its own among them).
type domainData struct {
	Domain     *tokend.ResourceView
	Records    []tokend.DNSRecord // the ownership (verification) record first
	CheckedAt  *time.Time         // the last check that ran to the end; nil: never
	CheckError string             // why the last check could not run or verify
	CanManage  bool               // an admin of the domain: may re-check and mail the records
	Email      string             // the setup instructions' address, after a refusal
	Tokens     []tokenRow
}

// verificationFirst returns records with the ownership record first, the
// others in their order.
func verificationFirst(records []tokend.DNSRecord) []tokend.DNSRecord {
	out := make([]tokend.DNSRecord, 0, len(records))
	for _, rec := range records {
		if rec.Key == tokend.RecordVerification {
			out = append(out, rec)
		}
	}
	for _, rec := range records {
		if rec.Key != tokend.RecordVerification {
			out = append(out, rec)
		}
	}
	return out
}

// verifyDomain checks the domain's DNS records now, as POST
// .../sending_domains/{id}/verify does, and shows the page again with what
// was found.
func (s *Server) verifyDomain(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	v, err := s.dns.Verify(r.Context(), ses.Principal, id)
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderDomain(w, r, ses, status, msg, "", "") })
	}
	s.setFlash(w, r, checkedFlash(v))
	http.Redirect(w, r, fmt.Sprintf("/domains/%d", id), http.StatusSeeOther)
	return nil
}

// checkedFlash words the outcome of a check the user asked for.
func checkedFlash(v *tokend.ResourceView) flash {
	st := v.DNSState
	if st == nil {
		return flash{}
	}
	if st.CheckError != "" {
		return flash{Error: st.CheckError}
	}
	pass := 0
	for _, rec := range v.DNS {
		if rec.Status == tokend.RecordPass {
			pass++
		}
	}
	switch {
	case pass == len(v.DNS) && st.VerifiedAt != nil:
		return flash{Notice: fmt.Sprintf("Every DNS record of %s passes: it is verified, and live keys can send from it.", v.Name)}
	case st.Sendable():
		return flash{Notice: fmt.Sprintf("Checked the DNS records of %s: %d of %d pass.", v.Name, pass, len(v.DNS))}
	}
	return flash{Notice: fmt.Sprintf("Checked the DNS records of %s: %d of %d pass. Live keys cannot send from it until every record passes.",
		v.Name, pass, len(v.DNS))}
}

// sendSetupInstructions mails the domain's records to whoever manages its
// DNS, as POST .../sending_domains/{id}/send_setup_instructions does.
func (s *Server) sendSetupInstructions(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	email := strings.TrimSpace(r.PostFormValue("email"))
	if err := s.dns.SendSetupInstructions(r.Context(), ses.Principal, id, email); err != nil {
		again := func(status int, msg string) error { return s.renderDomain(w, r, ses, status, msg, "", email) }
		if tokend.ErrorCode(err) == tokend.EUNAVAILABLE { // no relay: say so on the form
			status, msg := describe(err)
			return again(status, msg)
		}
		return s.formError(w, r, ses, err, again)
	}
	s.setFlash(w, r, flash{Notice: "Sent the DNS records to " + email + "."})
	http.Redirect(w, r, fmt.Sprintf("/domains/%d", id), http.StatusSeeOther)
	return nil
}

func (s *Server) confirmDeleteDomain(w http.ResponseWriter, r *http.Request, ses *session) error {
	d, err := s.resource(r, ses, tokend.ResourceDomain)
	if err != nil {
		return err
	}
	if d.Level != tokend.Admin {
		return tokend.Errorf(tokend.EFORBIDDEN, "You need admin access to domain %d to delete it", d.ID)
	}
	s.render(w, r, http.StatusOK, "confirm", view{Title: "Delete sending domain", Session: ses, Data: confirmData{
		Action: fmt.Sprintf("/domains/%d/delete", d.ID), Verb: "Delete sending domain " + d.Name,
		Explain: "New email can no longer be sent from it, and every permission naming it is removed.", Cancel: "/domains"}})
	return nil
}

func (s *Server) deleteDomain(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteResource(r.Context(), ses.Principal, tokend.ResourceDomain, id); err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderDomains(w, r, ses, status, msg, nil) })
	}
	http.Redirect(w, r, "/domains?done=domain-deleted", http.StatusSeeOther)
	return nil
}
