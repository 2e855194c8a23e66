package web

// What became of sent mail: the email logs, each message's events, and the
// suppression list.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokend/tokend"
)

// logStatus is how a page shows one of Mailtrap's message statuses: its
// words, and the class of its badge.
type logStatus struct{ Value, Label, Badge string }

// logStatuses are the statuses a message can have, in the filter's order.
var logStatuses = []logStatus{
	{"delivered", "Delivered", "pass"},
	{"not_delivered", "Not delivered", "fail"},
	{"enqueued", "Enqueued", "unchecked"},
	{"opted_out", "Opted out", "mismatch"},
	{"captured", "Captured", "trusted"},
}

// statusOf is the status of a message in state st, as the pages show it.
func statusOf(st tokend.MessageState) logStatus {
	v := tokend.LogStatus(st)
	for _, s := range logStatuses {
		if s.Value == v {
			return s
		}
	}
	return logStatus{v, v, "unchecked"}
}

// eventLabels word the event types for people.
var eventLabels = map[tokend.EmailEventType]string{
	tokend.EmailAccepted: "Accepted", tokend.EmailDelivery: "Delivered", tokend.EmailSoftBounce: "Soft bounce",
	tokend.EmailBounce: "Bounce", tokend.EmailReject: "Rejected",
}

// logFilters is the email logs page's filters as the URL carries them.
type logFilters struct {
	To, Status string
	Domain     int64
	After      string // the cursor: the last message of the page before
}

// query is the URL query of the filters, continued after cursor ("" for the
// first page).
func (f logFilters) query(cursor string) string {
	v := url.Values{}
	for k, s := range map[string]string{"to": f.To, "status": f.Status, "after": cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.Domain != 0 {
		v.Set("domain", strconv.FormatInt(f.Domain, 10))
	}
	if len(v) == 0 {
		return "/email-logs"
	}
	return "/email-logs?" + v.Encode()
}

type emailLogsData struct {
	Filters  logFilters
	Statuses []logStatus
	Domains  []tokend.ResourceView // the sending domains the filter offers
	Messages []logRow
	Total    int
	Capped   bool   // Total is LogCountCap: at least that many
	First    string // the first page's link, when this is a later one
	Next     string // the next page's link; "" on the last page
}

type logRow struct {
	*tokend.MessageLog
	Status logStatus
}

// emailLogs lists the account's email logs the user can see, newest first,
// filtered by recipient, status and sending domain, a page at a time.
func (s *Server) emailLogs(w http.ResponseWriter, r *http.Request, ses *session) error {
	q := r.URL.Query()
	f := logFilters{To: strings.TrimSpace(q.Get("to")), Status: q.Get("status"), After: q.Get("after")}
	if v := q.Get("domain"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return tokend.Invalid("filters[sending_domain_id][value]", "must be a sending domain of the list")
		}
		f.Domain = id
	}
	lq := tokend.LogQuery{SearchAfter: f.After}
	filters := []struct{ field, op, value string }{{"to", "ci_contain", f.To}, {"status", "equal", f.Status}}
	if f.Domain != 0 {
		filters = append(filters, struct{ field, op, value string }{"sending_domain_id", "equal", strconv.FormatInt(f.Domain, 10)})
	}
	for _, c := range filters {
		if c.value == "" {
			continue
		}
		lf, err := tokend.NewLogFilter(c.field, c.op, []string{c.value})
		if err != nil {
			return err
		}
		lq.Filters = append(lq.Filters, lf)
	}
	page, err := s.opts.Logs.List(r.Context(), ses.Principal, lq)
	if err != nil {
		return err
	}
	domains, err := s.svc.ListResources(r.Context(), ses.Principal, tokend.ResourceDomain)
	if err != nil {
		return err
	}
	d := emailLogsData{Filters: f, Statuses: logStatuses, Domains: domains, Total: page.Total, Capped: page.Total >= tokend.LogCountCap}
	for i := range page.Messages {
		m := &page.Messages[i]
		d.Messages = append(d.Messages, logRow{MessageLog: m, Status: statusOf(m.State)})
	}
	if f.After != "" {
		d.First = f.query("")
	}
	if page.Next != nil {
		d.Next = f.query(page.Next.String())
	}
	s.render(w, r, http.StatusOK, "email_logs", view{Title: "Email Logs", Session: ses, Data: d})
	return nil
}

type emailLogData struct {
	*tokend.MessageLog
	Status       logStatus
	RFCMessageID string
	Events       []eventRow
}

type eventRow struct {
	tokend.EmailEvent
	Label string
}

// emailLog shows one message: where its delivery stands, and its events.
func (s *Server) emailLog(w http.ResponseWriter, r *http.Request, ses *session) error {
	l, err := s.opts.Logs.Message(r.Context(), ses.Principal, r.PathValue("id"))
	if err != nil {
		return err
	}
	d := emailLogData{MessageLog: l, Status: statusOf(l.State)}
	if l.Email.DomainID != 0 || l.Email.SandboxID != 0 {
		d.RFCMessageID = l.RFCMessageID()
	}
	for _, ev := range l.Events {
		label, ok := eventLabels[ev.Type]
		if !ok {
			label = string(ev.Type)
		}
		d.Events = append(d.Events, eventRow{EmailEvent: ev, Label: label})
	}
	title := l.Email.Subject
	if title == "" {
		title = "Message " + l.ID
	}
	s.render(w, r, http.StatusOK, "email_log", view{Title: title, Session: ses, Data: d})
	return nil
}

// suppressionTypes are the types the add form offers, the default first.
var suppressionTypes = []tokend.SuppressionType{tokend.SuppressionManual, tokend.SuppressionUnsubscribed,
	tokend.SuppressionComplaint, tokend.SuppressionHardBounce}

type suppressionsData struct {
	Suppressions []tokend.Suppression
	Search       string
	CanAdd       bool
	Domains      []tokend.ResourceView // the sending domains the user is admin on
	Types        []tokend.SuppressionType
	Form         suppressionForm // what was typed, after a refusal
}

type suppressionForm struct {
	Email    string
	DomainID int64
	Type     tokend.SuppressionType
}

func (s *Server) suppressions(w http.ResponseWriter, r *http.Request, ses *session) error {
	f := s.takeFlash(w, r)
	return s.renderSuppressions(w, r, ses, http.StatusOK, f.Error, f.Notice, suppressionForm{})
}

// renderSuppressions shows the suppressions the user can see (those of the
// address searched for, if any), and the add form to those who may add.
func (s *Server) renderSuppressions(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg, notice string, form suppressionForm) error {
	search := strings.TrimSpace(r.URL.Query().Get("email"))
	list, err := s.opts.Suppressions.List(r.Context(), ses.Principal, search)
	if err != nil {
		return err
	}
	domains, err := s.svc.ListResources(r.Context(), ses.Principal, tokend.ResourceDomain)
	if err != nil {
		return err
	}
	d := suppressionsData{Suppressions: list, Search: search, Types: suppressionTypes, Form: form}
	for _, dom := range domains {
		if dom.Level == tokend.Admin {
			d.Domains = append(d.Domains, dom)
		}
	}
	d.CanAdd = ses.Principal.IsAccountAdmin() || len(d.Domains) > 0
	s.render(w, r, status, "suppressions", view{Title: "Suppressions", Session: ses, Error: errMsg, Notice: notice, Data: d})
	return nil
}

// addSuppression puts an address on the suppression list, as POST
// .../suppressions does.
func (s *Server) addSuppression(w http.ResponseWriter, r *http.Request, ses *session) error {
	form := suppressionForm{Email: strings.TrimSpace(r.PostFormValue("email")), Type: tokend.SuppressionType(r.PostFormValue("type"))}
	again := func(status int, msg string) error { return s.renderSuppressions(w, r, ses, status, msg, "", form) }
	if v := r.PostFormValue("domain_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return s.formError(w, r, ses, tokend.Invalid("domain_id", "must be a sending domain of the list"), again)
		}
		form.DomainID = id
	}
	sp, created, err := s.opts.Suppressions.Create(r.Context(), ses.Principal,
		tokend.SuppressionInput{Email: form.Email, DomainID: form.DomainID, Type: form.Type})
	if err != nil {
		return s.formError(w, r, ses, err, again)
	}
	where := "every sending domain"
	if sp.DomainID != 0 {
		where = sp.DomainName
	}
	msg := fmt.Sprintf("Suppressed %s for %s: live mail to it is not relayed.", sp.Email, where)
	if !created {
		msg = fmt.Sprintf("%s was already suppressed for %s (%s).", sp.Email, where, sp.Type)
	}
	s.setFlash(w, r, flash{Notice: msg})
	http.Redirect(w, r, "/suppressions", http.StatusSeeOther)
	return nil
}

// removeSuppression takes a suppression off the list, as DELETE
// .../suppressions/{id} does.
func (s *Server) removeSuppression(w http.ResponseWriter, r *http.Request, ses *session) error {
	sp, err := s.opts.Suppressions.Delete(r.Context(), ses.Principal, r.PathValue("id"))
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error {
			return s.renderSuppressions(w, r, ses, status, msg, "", suppressionForm{})
		})
	}
	s.setFlash(w, r, flash{Notice: fmt.Sprintf("Removed the suppression of %s: it receives live mail again.", sp.Email)})
	http.Redirect(w, r, "/suppressions", http.StatusSeeOther)
	return nil
}
