package web

// Sign-in, sign-out and the first user's setup.

import (
	"errors"
	"net/http"

	"github.com/tokend/tokend"
)

func (s *Server) home(w http.ResponseWriter, r *http.Request, ses *session) error {
	http.Redirect(w, r, "/settings/api-tokens", http.StatusSeeOther)
	return nil
}

type loginData struct {
	Email string
	Next  string
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if value, ok := s.sessionValue(r); ok {
		if _, _, err := s.users.Authenticate(r.Context(), value); err == nil {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	s.render(w, r, http.StatusOK, "login", view{Title: "Sign in", Data: loginData{Next: r.URL.Query().Get("next")}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	email, password, next := r.PostFormValue("email"), r.PostFormValue("password"), r.PostFormValue("next")
	in, err := s.users.SignIn(r.Context(), email, password, tokend.ClientAddr(r.Context()))
	if err != nil {
		status, msg := describe(err)
		if status == http.StatusInternalServerError {
			s.fail(w, r, nil, err)
			return
		}
		s.render(w, r, status, "login", view{Title: "Sign in", Error: msg, Data: loginData{Email: email, Next: next}})
		return
	}
	if old, ok := s.sessionValue(r); ok { // a new session replaces the one the browser had
		if err := s.users.SignOut(r.Context(), old); err != nil {
			s.fail(w, r, nil, err)
			return
		}
	}
	s.setCookie(w, r, in.Value)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if value, ok := s.sessionValue(r); ok {
		if err := s.users.SignOut(r.Context(), value); err != nil {
			s.fail(w, r, nil, err)
			return
		}
	}
	s.clearCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type setupData struct {
	Code, Email, Name string
	Role              string
}

func (s *Server) setupForm(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	inv, err := s.users.CheckInvite(r.Context(), code)
	if err != nil {
		status, msg := inviteError(err)
		s.renderStatus(w, r, nil, status, msg)
		return
	}
	s.render(w, r, http.StatusOK, "setup", view{Title: "Set up your user", Data: setupData{Code: code, Role: roleWord(inv.Role)}})
}

// inviteError says why a setup link does not work, in the invite's own words.
func inviteError(err error) (int, string) {
	var e *tokend.Error
	if errors.As(err, &e) && e.Code == tokend.ENOTFOUND {
		return http.StatusNotFound, e.Message + "."
	}
	return describe(err)
}

func roleWord(l tokend.AccessLevel) string {
	if l == tokend.Admin {
		return "admin"
	}
	return "viewer"
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	code, email, name, password := r.PostFormValue("code"), r.PostFormValue("email"), r.PostFormValue("name"), r.PostFormValue("password")
	if _, err := s.users.AcceptInvite(r.Context(), code, tokend.NewUser{Email: email, Name: name, Password: password}); err != nil {
		status, msg := describe(err)
		switch {
		case status == http.StatusInternalServerError:
			s.fail(w, r, nil, err)
			return
		case tokend.ErrorCode(err) == tokend.ENOTFOUND:
			status, msg = inviteError(err)
			s.renderStatus(w, r, nil, status, msg)
			return
		}
		role := ""
		if inv, err := s.users.CheckInvite(r.Context(), code); err == nil {
			role = roleWord(inv.Role)
		}
		s.render(w, r, status, "setup", view{Title: "Set up your user", Error: msg, Data: setupData{Code: code, Email: email, Name: name, Role: role}})
		return
	}
	in, err := s.users.SignIn(r.Context(), email, password, tokend.ClientAddr(r.Context()))
	if err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s.setCookie(w, r, in.Value)
	http.Redirect(w, r, "/settings/api-tokens", http.StatusSeeOther)
}
