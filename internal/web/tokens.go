package web

// API tokens: the list, adding, editing, resetting and deleting.

import (
	"fmt"
	"net/http"
	"time"

	"github.com/tokend/tokend"
)

type tokenRow struct {
	tokend.Token
	Access string
}

type tokensData struct {
	Tokens []tokenRow
	CanAdd bool // only an admin can grant anything
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
	rows := make([]tokenRow, len(list))
	for i, t := range list {
		rows[i] = tokenRow{Token: t, Access: c.summary(t.Permissions)}
	}
	s.render(w, r, status, "tokens", view{Title: "API Tokens", Session: ses, Error: errMsg, Notice: notice,
		Data: tokensData{Tokens: rows, CanAdd: ses.Principal.IsAccountAdmin()}})
	return nil
}

type tokenFormData struct {
	ID          int64
	Name        string
	Environment string
	Rows        []gridRow
	Editing     bool
}

func (s *Server) newToken(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.renderTokenForm(w, r, ses, http.StatusOK, "", tokenFormData{Environment: "live"}, nil)
}

func (s *Server) renderTokenForm(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg string, d tokenFormData, perms []tokend.Permission) error {
	c, err := s.catalog(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	d.Rows = c.grid(perms)
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
	d := tokenFormData{Name: r.PostFormValue("name"), Environment: r.PostFormValue("environment")}
	perms, err := readPermissions(r)
	if err == nil {
		var t *tokend.IssuedToken
		t, err = s.svc.CreateToken(r.Context(), ses.Principal, tokend.TokenInput{
			Name: d.Name, Environment: tokend.Environment(d.Environment), Permissions: perms})
		if err == nil {
			s.render(w, r, http.StatusOK, "token_issued", view{Title: "Token created", Session: ses, Data: issuedData{Token: *t}})
			return nil
		}
	}
	return s.formError(w, r, ses, err, func(status int, msg string) error {
		return s.renderTokenForm(w, r, ses, status, msg, d, perms)
	})
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
	return s.renderTokenForm(w, r, ses, http.StatusOK, "", tokenFormData{ID: t.ID, Name: t.Name, Environment: string(t.Environment), Editing: true}, t.Permissions)
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
	if err == nil {
		_, err = s.svc.UpdateToken(r.Context(), ses.Principal, id, tokend.TokenPatch{Name: &name, Permissions: &perms})
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
		return s.renderTokenForm(w, r, ses, status, msg, tokenFormData{ID: id, Name: name, Environment: string(t.Environment), Editing: true}, perms)
	})
}

type confirmData struct {
	Action, Verb, Explain string
	Token                 *tokend.Token
	Cancel                string
}

func (s *Server) confirmReset(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.confirm(w, r, ses, "Reset API Token", fmt.Sprintf("A new token with the same permissions replaces it. "+
		"The current value keeps working for %s, then stops.", graceWords(s.svc.ResetGrace())), "reset")
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
