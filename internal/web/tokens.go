package web

// API tokens: the list, adding, editing, resetting and deleting.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// tokenRow is a token as lists show it: what it may do, and whether it can
// still be reset. A token already reset (replaced) or expired cannot: the
// list says so, with when the replaced one stops working, and offers no reset.
type tokenRow struct {
	tokend.Token
	Access   string
	Replaced bool // reset: it works until ExpiresAt, the end of its grace period
	Expired  bool
	Guards   string // its allowed IPs, rate limit and quota in a few words; "" for none
}

// CanReset reports whether the token can still be reset.
func (t tokenRow) CanReset() bool { return !t.Replaced && !t.Expired }

func (s *Server) tokenRow(t tokend.Token, access string) tokenRow {
	now := s.opts.Now()
	return tokenRow{Token: t, Access: access, Replaced: t.ResetAt != nil, Expired: t.ExpiredAt(now), Guards: guardSummary(t, now)}
}

type tokensData struct {
	Tokens []tokenRow
	CanAdd bool // only an admin can grant anything
	// Expiring are the tokens that expire within the account's furthest
	// expiry warning, soonest first: the page's banner.
	Expiring []tokenRow
}

func (s *Server) tokens(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.renderTokens(w, r, ses, http.StatusOK, "", notices[r.URL.Query().Get("done")])
}

var notices = map[string]string{
	"deleted": "The token was deleted: it no longer works.",
	"updated": "The token's permissions were saved.",
}

func (s *Server) renderTokens(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg, notice string) error {
	c, err := s.catalog(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	list, err := s.svc.ListTokens(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	settings, err := s.svc.TokenSettings(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	horizon := time.Duration(0)
	if len(settings.ExpiryWarningDays) > 0 {
		horizon = time.Duration(slices.Max(settings.ExpiryWarningDays)) * 24 * time.Hour
	}
	now := s.opts.Now()
	rows := make([]tokenRow, len(list))
	var expiring []tokenRow
	for i, t := range list {
		rows[i] = s.tokenRow(t, c.summary(t.Permissions))
		if row := rows[i]; row.ExpiresAt != nil && row.CanReset() && row.ExpiresAt.Sub(now) <= horizon {
			expiring = append(expiring, row)
		}
	}
	slices.SortFunc(expiring, func(a, b tokenRow) int { return a.ExpiresAt.Compare(*b.ExpiresAt) })
	s.render(w, r, status, "tokens", view{Title: "API Tokens", Session: ses, Error: errMsg, Notice: notice,
		Data: tokensData{Tokens: rows, CanAdd: ses.Principal.IsAccountAdmin(), Expiring: expiring}})
	return nil
}

type tokenFormData struct {
	ID          int64
	Name        string
	Environment string
	Rows        []gridRow
	Editing     bool
	// The optional expiry of a new token, as typed: a date and a time of
	// day, in UTC.
	ExpiresOn, ExpiresTime string
	Today                  string // the earliest date the expiry can take (UTC)
	DefaultExpiry          string // what an empty expiry means, in words
	// ReadOnly, when set, says why the user can grant nothing (a viewer):
	// the page shows that and what they may do, and no form.
	ReadOnly string
	// Guards are the token's allowed IPs, rate limit and quota as typed;
	// an account admin edits them (CanGuard), others see them.
	Guards     guardFields
	CanGuard   bool
	Periods    []struct{ Seconds, Name string }
	GuardWords string // the guards in words, for those who cannot edit them
}

func (s *Server) newToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.renderTokenForm(w, r, ses, http.StatusOK, "", tokenFormData{Environment: "live", Guards: fieldsOf(nil)}, nil)
}

func (s *Server) renderTokenForm(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg string, d tokenFormData, perms []tokend.Permission) error {
	c, err := s.catalog(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	d.Rows = c.grid(perms)
	if !slices.ContainsFunc(d.Rows, func(r gridRow) bool { return r.CanGrant }) {
		d.ReadOnly = fmt.Sprintf("You have %s access to account %s: you can see its projects, sandboxes and the mail they captured, "+
			"and its sending domains with their DNS records. Only an admin can add tokens or change what they may do.",
			roleWord(c.accountLevel()), c.Account.Name)
	}
	d.CanGuard, d.Periods = ses.Principal.IsAccountAdmin(), ratePeriods
	d.Today = s.opts.Now().UTC().Format(time.DateOnly)
	d.DefaultExpiry = "the token never expires"
	if ttl := s.svc.DefaultTTL(); ttl > 0 {
		d.DefaultExpiry = "the server's default, " + lifetimeWords(ttl) + " after it is created"
	}
	title := "Add Token"
	if d.Editing {
		title = "Edit permissions"
	}
	s.render(w, r, status, "token_form", view{Title: title, Session: ses, Error: errMsg, Data: d})
	return nil
}

type issuedData struct {
	Token       tokend.IssuedToken
	Reset       bool
	OldName     string
	OldExpires  *time.Time
	Environment string
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	if err := r.ParseForm(); err != nil {
		return tokend.Invalid("base", "the form could not be read")
	}
	d := tokenFormData{Name: r.PostFormValue("name"), Environment: r.PostFormValue("environment"),
		ExpiresOn: r.PostFormValue("expires_on"), ExpiresTime: r.PostFormValue("expires_time")}
	perms, err := readPermissions(r)
	var expiry tokend.Expiry
	if err == nil {
		expiry, err = readExpiry(d.ExpiresOn, d.ExpiresTime, s.opts.Now())
	}
	var guards tokend.GuardsInput
	var gerr error
	d.Guards, guards, gerr = readGuards(r)
	if err == nil {
		err = gerr
	}
	if err == nil {
		var t *tokend.IssuedToken
		t, err = s.svc.CreateToken(r.Context(), ses.Principal, tokend.TokenInput{
			Name: d.Name, Environment: tokend.Environment(d.Environment), Permissions: perms, Expiry: expiry, Guards: guards})
		if err == nil {
			s.render(w, r, http.StatusOK, "token_issued", view{Title: "Token created", Session: ses, Data: issuedData{Token: *t}})
			return nil
		}
	}
	return s.formError(w, r, ses, err, func(status int, msg string) error {
		return s.renderTokenForm(w, r, ses, status, msg, d, perms)
	})
}

// readExpiry reads the Add Token form's optional expiry, in UTC as every
// time the dashboard shows: no date leaves it to the server's default (as an
// API request without expires_at does), a date alone is the end of that day,
// a date and a time of day that moment. One already past is refused here, in
// the form's own terms; the service bounds how far ahead it may be.
func readExpiry(on, at string, now time.Time) (tokend.Expiry, error) {
	on, at = strings.TrimSpace(on), strings.TrimSpace(at)
	if on == "" {
		if at != "" {
			return tokend.Expiry{}, tokend.Invalid("expires_at", "needs a date as well as a time")
		}
		return tokend.Expiry{}, nil
	}
	day, err := time.Parse(time.DateOnly, on)
	if err != nil {
		return tokend.Expiry{}, tokend.Invalid("expires_at", "must be a date such as 2030-01-31")
	}
	end := day.AddDate(0, 0, 1)
	if at != "" {
		clock, err := time.Parse("15:04", at)
		if err != nil {
			clock, err = time.Parse("15:04:05", at) // browsers send seconds when the field has a step
		}
		if err != nil {
			return tokend.Expiry{}, tokend.Invalid("expires_at", "time must be a time of day such as 18:30")
		}
		end = day.Add(time.Duration(clock.Hour())*time.Hour + time.Duration(clock.Minute())*time.Minute +
			time.Duration(clock.Second())*time.Second)
	}
	if !end.After(now) {
		if at == "" {
			return tokend.Expiry{}, tokend.Invalid("expires_at", on+" is in the past: choose today or a later date")
		}
		return tokend.Expiry{}, tokend.Invalid("expires_at", end.Format("2006-01-02 15:04 UTC")+" is in the past: choose a later date or time")
	}
	return tokend.Expiry{Set: true, At: &end}, nil
}

// lifetimeWords says a token lifetime in days when it is whole days.
func lifetimeWords(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := int(d / (24 * time.Hour)); n == 1 {
			return "1 day"
		} else {
			return fmt.Sprintf("%d days", n)
		}
	}
	return graceWords(d)
}

func (s *Server) editToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	t, err := s.svc.GetToken(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	return s.renderTokenForm(w, r, ses, http.StatusOK, "", tokenFormData{ID: t.ID, Name: t.Name, Environment: string(t.Environment), Editing: true,
		Guards: fieldsOf(t), GuardWords: guardSummary(*t, s.opts.Now())}, t.Permissions)
}

func (s *Server) updateToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return tokend.Invalid("base", "the form could not be read")
	}
	name := r.PostFormValue("name")
	perms, err := readPermissions(r)
	fields, guards, gerr := readGuards(r)
	if err == nil {
		err = gerr
	}
	if err == nil {
		_, err = s.svc.UpdateToken(r.Context(), ses.Principal, id, tokend.TokenPatch{Name: &name, Permissions: &perms, Guards: guards})
		if err == nil {
			http.Redirect(w, r, "/settings/api-tokens?done=updated", http.StatusSeeOther)
			return nil
		}
	}
	return s.formError(w, r, ses, err, func(status int, msg string) error {
		t, gerr := s.svc.GetToken(r.Context(), ses.Principal, id)
		if gerr != nil {
			return gerr
		}
		return s.renderTokenForm(w, r, ses, status, msg, tokenFormData{ID: id, Name: name, Environment: string(t.Environment), Editing: true,
			Guards: fields, GuardWords: guardSummary(*t, s.opts.Now())}, perms)
	})
}

// confirmData is a page that asks before an action; without Action it
// explains why the action cannot be taken and offers none, only Back.
type confirmData struct {
	Action, Verb, Explain string
	Token                 *tokend.Token
	Cancel                string
	Back                  string // the link to Cancel's page when there is nothing to confirm
}

// confirmReset asks before resetting a token; a token already reset or
// expired gets the reason it cannot be, and no Confirm.
func (s *Server) confirmReset(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	t, err := s.svc.GetToken(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	if row := s.tokenRow(*t, ""); !row.CanReset() {
		s.render(w, r, http.StatusOK, "confirm", view{Title: "Reset API Token", Session: ses, Data: confirmData{
			Verb: "Reset API Token", Explain: cannotReset(row), Token: t, Cancel: "/settings/api-tokens", Back: "Back to API Tokens"}})
		return nil
	}
	return s.confirm(w, r, ses, "Reset API Token", fmt.Sprintf("A new token with the same permissions replaces it. "+
		"The current value keeps working for %s, then stops.", graceWords(s.svc.ResetGrace())), "reset")
}

// cannotReset says why t cannot be reset, and when it stops (or stopped) working.
func cannotReset(t tokenRow) string {
	when := funcs["when"].(func(*time.Time) string)
	switch {
	case t.Replaced && t.Expired:
		return fmt.Sprintf("This token was reset on %s and replaced by a new one; it stopped working at %s.", when(t.ResetAt), when(t.ExpiresAt))
	case t.Replaced:
		return fmt.Sprintf("This token was already reset on %s: a new token replaced it. It keeps working until %s, then stops. "+
			"To replace it again, reset its replacement.", when(t.ResetAt), when(t.ExpiresAt))
	}
	return fmt.Sprintf("This token expired at %s: it no longer works, so there is nothing to reset. Add a new token instead.", when(t.ExpiresAt))
}

func (s *Server) confirmDelete(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.confirm(w, r, ses, "Delete token", "The token stops working at once, everywhere. This cannot be undone.", "delete")
}

func graceWords(d time.Duration) string {
	if d%time.Hour == 0 {
		if h := int(d / time.Hour); h == 1 {
			return "1 hour"
		} else {
			return fmt.Sprintf("%d hours", h)
		}
	}
	return d.String()
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request, ses *session, verb, explain, action string) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	t, err := s.svc.GetToken(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "confirm", view{Title: verb, Session: ses, Data: confirmData{
		Action: fmt.Sprintf("/settings/api-tokens/%d/%s", id, action), Verb: verb, Explain: explain, Token: t, Cancel: "/settings/api-tokens"}})
	return nil
}

func (s *Server) resetToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	t, err := s.svc.ResetToken(r.Context(), ses.Principal, id, tokend.Expiry{})
	if err != nil {
		if tokend.ErrorCode(err) == tokend.EINVALID || tokend.ErrorCode(err) == tokend.EFORBIDDEN {
			status, msg := describe(err)
			if old, gerr := s.svc.GetToken(r.Context(), ses.Principal, id); gerr == nil {
				if row := s.tokenRow(*old, ""); !row.CanReset() {
					msg = cannotReset(row) // reset meanwhile (another tab) or expired: say until when it works
				}
			}
			return s.renderTokens(w, r, ses, status, msg, "")
		}
		return err
	}
	d := issuedData{Token: *t, Reset: true}
	if old, err := s.svc.GetToken(r.Context(), ses.Principal, id); err == nil {
		d.OldName, d.OldExpires = old.Name, old.ExpiresAt
	}
	s.render(w, r, http.StatusOK, "token_issued", view{Title: "Token reset", Session: ses, Data: d})
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteToken(r.Context(), ses.Principal, id); err != nil {
		if tokend.ErrorCode(err) == tokend.EFORBIDDEN {
			status, msg := describe(err)
			return s.renderTokens(w, r, ses, status, msg, "")
		}
		return err
	}
	http.Redirect(w, r, "/settings/api-tokens?done=deleted", http.StatusSeeOther)
	return nil
}

type unusedData struct {
	Days   int
	Tokens []tokenRow
}

// unusedTokens lists the tokens the user can see that made no request in
// ?days= days (90 by default), each with its Delete.
func (s *Server) unusedTokens(w http.ResponseWriter, r *http.Request, ses *session) error {
	days, err := tokend.ParseUnusedDays(r.URL.Query().Get("days"))
	if err != nil {
		return err
	}
	list, err := s.svc.UnusedTokens(r.Context(), ses.Principal, days)
	if err != nil {
		return err
	}
	c, err := s.catalog(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	rows := make([]tokenRow, len(list))
	for i, t := range list {
		rows[i] = s.tokenRow(t, c.summary(t.Permissions))
	}
	s.render(w, r, http.StatusOK, "unused", view{Title: "Unused tokens", Session: ses, Data: unusedData{Days: days, Tokens: rows}})
	return nil
}
