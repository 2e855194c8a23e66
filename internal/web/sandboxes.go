package web

// Projects, sandboxes and captured mail.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
)

type projectsData struct {
	Projects []projectRow
	CanAdd   bool
}

type projectRow struct {
	tokend.ResourceView
	Sandboxes []tokend.ResourceView
}

func (s *Server) projects(w http.ResponseWriter, r *http.Request, ses *session) error {
	return s.renderProjects(w, r, ses, http.StatusOK, "")
}

func (s *Server) renderProjects(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg string) error {
	c, err := s.catalog(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	d := projectsData{CanAdd: ses.Principal.IsAccountAdmin()}
	for _, p := range c.Projects {
		row := projectRow{ResourceView: p}
		for _, sb := range c.Sandboxes {
			if sb.ProjectID == p.ID {
				row.Sandboxes = append(row.Sandboxes, sb)
			}
		}
		d.Projects = append(d.Projects, row)
	}
	s.render(w, r, status, "projects", view{Title: "Projects", Session: ses, Error: errMsg, Data: d})
	return nil
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, ses *session) error {
	if _, err := s.svc.CreateProject(r.Context(), ses.Principal, r.PostFormValue("name")); err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderProjects(w, r, ses, status, msg) })
	}
	http.Redirect(w, r, "/projects", http.StatusSeeOther)
	return nil
}

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	if _, err := s.svc.CreateSandbox(r.Context(), ses.Principal, id, r.PostFormValue("name")); err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderProjects(w, r, ses, status, msg) })
	}
	http.Redirect(w, r, "/projects", http.StatusSeeOther)
	return nil
}

type sandboxData struct {
	Sandbox  *tokend.ResourceView
	Messages []tokend.StoredEmail
	Page     int
	Next     int
	Search   string
}

func (s *Server) sandbox(w http.ResponseWriter, r *http.Request, ses *session) error {
	sb, err := s.resource(r, ses, tokend.ResourceSandbox)
	if err != nil {
		return err
	}
	id := sb.ID
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	search := r.URL.Query().Get("search")
	msgs, err := s.mailer.SandboxMessages(r.Context(), ses.Principal, id, page, 0, search)
	if err != nil {
		return err
	}
	d := sandboxData{Sandbox: sb, Messages: msgs, Page: page, Search: search}
	if len(msgs) == tokend.SandboxPageSize {
		d.Next = page + 1
	}
	s.render(w, r, http.StatusOK, "sandbox", view{Title: sb.Name, Session: ses, Data: d})
	return nil
}

type messageData struct {
	SandboxID   int64
	Message     *tokend.StoredEmail
	Text        string
	HasText     bool
	HasHTML     bool
	Headers     [][2]string
	Attachments []attachmentLink
	CanDelete   bool
}

type attachmentLink struct {
	ID    int64
	Label string
}

// attachment sends one of a captured email's attachments as a download,
// never for the browser to render under tokend's origin.
func (s *Server) attachment(w http.ResponseWriter, r *http.Request, ses *session) error {
	_, m, err := s.capturedMessage(r, ses)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		return tokend.Errorf(tokend.ENOTFOUND, "Not Found")
	}
	p, err := parseMessage(m.Raw)
	if err != nil {
		return err
	}
	if n < 1 || n > len(p.Attachments) {
		return tokend.Errorf(tokend.ENOTFOUND, "Not Found")
	}
	a := p.Attachments[n-1]
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(a.Filename))
	w.Write(a.Content)
	return nil
}

// deleteMessage deletes a captured email (admins only, as through the API).
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, ses *session) error {
	sb, m, err := s.capturedMessage(r, ses)
	if err != nil {
		return err
	}
	if _, err := s.mailer.DeleteSandboxMessage(r.Context(), ses.Principal, sb, m.ID); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("/sandboxes/%d", sb), http.StatusSeeOther)
	return nil
}

func (s *Server) capturedMessage(r *http.Request, ses *session) (int64, *tokend.StoredEmail, error) {
	sb, err := s.pathID(r)
	if err != nil {
		return 0, nil, err
	}
	mid, err := strconv.ParseInt(r.PathValue("mid"), 10, 64)
	if err != nil || mid <= 0 {
		return 0, nil, tokend.Errorf(tokend.ENOTFOUND, "Not Found")
	}
	m, err := s.mailer.SandboxMessage(r.Context(), ses.Principal, sb, mid)
	return sb, m, err
}

func (s *Server) message(w http.ResponseWriter, r *http.Request, ses *session) error {
	sb, m, err := s.capturedMessage(r, ses)
	if err != nil {
		return err
	}
	admin := ses.Principal.IsAccountAdmin()
	if !m.IsRead && admin { // opening it reads it; viewers change nothing
		if marked, err := s.mailer.MarkSandboxMessage(r.Context(), ses.Principal, sb, m.ID, true); err == nil {
			m.IsRead = marked.IsRead
		}
	}
	p, err := parseMessage(m.Raw)
	if err != nil {
		return err
	}
	d := messageData{SandboxID: sb, Message: m, Text: p.Text, HasText: p.HasText, HasHTML: p.HasHTML, CanDelete: admin}
	for f := p.Header.Fields(); f.Next(); {
		v, err := f.Text()
		if err != nil {
			v = f.Value()
		}
		d.Headers = append(d.Headers, [2]string{f.Key(), v})
	}
	for _, a := range p.Attachments {
		d.Attachments = append(d.Attachments, attachmentLink{ID: a.ID, Label: fmt.Sprintf("%s (%s, %d bytes)", a.Filename, a.ContentType, len(a.Content))})
	}
	s.render(w, r, http.StatusOK, "message", view{Title: m.Subject, Session: ses, Data: d})
	return nil
}

// messageHTML serves a captured email's HTML for the message page's frame:
// sandboxed, so the sender's markup renders but never runs script or loads
// anything under tokend's origin.
func (s *Server) messageHTML(w http.ResponseWriter, r *http.Request, ses *session) error {
	_, m, err := s.capturedMessage(r, ses)
	if err != nil {
		return err
	}
	p, err := parseMessage(m.Raw)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(p.HTML))
	return nil
}

func parseMessage(raw []byte) (*mail.Parsed, error) { return mail.Parse(raw) }
