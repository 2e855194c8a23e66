package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
)

func (s *Server) home(w http.ResponseWriter, r *http.Request, ses *session) error {
	http.Redirect(w, r, "/settings/api-tokens", http.StatusSeeOther)
	return nil
}

// Sign-in, sign-out and the first user's setup.

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

// Tokens.

// catalog names the resources a user can read, for grids and summaries.
type catalog struct {
	Account   tokend.AccountView
	Projects  []tokend.ResourceView
	Sandboxes []tokend.ResourceView
	Domains   []tokend.ResourceView
	names     map[string]string // "type:id" → name
}

func (s *Server) catalog(ctx context.Context, p *tokend.Token) (*catalog, error) {
	accounts, err := s.svc.ListAccounts(ctx, p)
	if err != nil {
		return nil, err
	}
	c := &catalog{Account: accounts[0], names: map[string]string{}}
	c.names[key(tokend.ResourceAccount, c.Account.ID)] = c.Account.Name
	for _, t := range []struct {
		typ  tokend.ResourceType
		dest *[]tokend.ResourceView
	}{{tokend.ResourceProject, &c.Projects}, {tokend.ResourceSandbox, &c.Sandboxes}, {tokend.ResourceDomain, &c.Domains}} {
		if *t.dest, err = s.svc.ListResources(ctx, p, t.typ); err != nil {
			return nil, err
		}
		for _, v := range *t.dest {
			c.names[key(t.typ, v.ID)] = v.Name
		}
	}
	return c, nil
}

func key(t tokend.ResourceType, id int64) string { return string(t) + ":" + strconv.FormatInt(id, 10) }

// gridRow is one resource of the permissions grid.
type gridRow struct {
	Type, Name string
	Key        string
	Indent     bool
	Viewer     bool
	Admin      bool
}

// grid lays the catalog out as rows, checking what perms grant.
func (c *catalog) grid(perms []tokend.Permission) []gridRow {
	granted := map[string]tokend.AccessLevel{}
	for _, p := range perms {
		granted[key(p.ResourceType, p.ResourceID)] = p.Level
	}
	row := func(t tokend.ResourceType, id int64, name string, indent bool) gridRow {
		k := key(t, id)
		return gridRow{Type: string(t), Name: name, Key: k, Indent: indent, Viewer: granted[k] == tokend.Viewer, Admin: granted[k] == tokend.Admin}
	}
	rows := []gridRow{row(tokend.ResourceAccount, c.Account.ID, c.Account.Name, false)}
	for _, p := range c.Projects {
		rows = append(rows, row(tokend.ResourceProject, p.ID, p.Name, false))
		for _, sb := range c.Sandboxes {
			if sb.ProjectID == p.ID {
				rows = append(rows, row(tokend.ResourceSandbox, sb.ID, sb.Name, true))
			}
		}
	}
	for _, d := range c.Domains {
		rows = append(rows, row(tokend.ResourceDomain, d.ID, d.Name, false))
	}
	return rows
}

// summary describes a token's permissions: "Admin domain example.com".
func (c *catalog) summary(perms []tokend.Permission) string {
	if len(perms) == 0 {
		return "No resources"
	}
	parts := make([]string, len(perms))
	for i, p := range perms {
		name, ok := c.names[key(p.ResourceType, p.ResourceID)]
		if !ok {
			name = "#" + strconv.FormatInt(p.ResourceID, 10)
		}
		parts[i] = fmt.Sprintf("%s %s %s", funcs["level"].(func(tokend.AccessLevel) string)(p.Level), p.ResourceType, name)
	}
	return strings.Join(parts, ", ")
}

// readPermissions reads the grid's checkboxes ("perm" = "type:id:level"); a
// resource checked twice takes the higher level.
func readPermissions(r *http.Request) ([]tokend.Permission, error) {
	levels := map[string]tokend.AccessLevel{}
	var order []string
	for _, v := range r.PostForm["perm"] {
		parts := strings.Split(v, ":")
		if len(parts) != 3 {
			return nil, tokend.Invalid("resources", "could not be read from the form")
		}
		level, err := strconv.Atoi(parts[2])
		if err != nil || !tokend.AccessLevel(level).Valid() {
			return nil, tokend.Invalid("resources", "could not be read from the form")
		}
		k := parts[0] + ":" + parts[1]
		if _, seen := levels[k]; !seen {
			order = append(order, k)
		}
		levels[k] = max(levels[k], tokend.AccessLevel(level))
	}
	perms := make([]tokend.Permission, 0, len(order))
	for _, k := range order {
		t, idText, _ := strings.Cut(k, ":")
		typ, ok := tokend.ParseResourceType(t)
		id, err := strconv.ParseInt(idText, 10, 64)
		if !ok || err != nil || id <= 0 {
			return nil, tokend.Invalid("resources", "could not be read from the form")
		}
		perms = append(perms, tokend.Permission{ResourceType: typ, ResourceID: id, Level: levels[k]})
	}
	return perms, nil
}

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

// formError shows a refusal by the rules on the form that caused it, and
// anything else as an error page.
func (s *Server) formError(w http.ResponseWriter, r *http.Request, ses *session, err error, again func(status int, msg string) error) error {
	status, msg := describe(err)
	switch tokend.ErrorCode(err) {
	case tokend.EINVALID, tokend.EFORBIDDEN, tokend.ERATELIMITED, tokend.ETOOLARGE:
		return again(status, msg)
	}
	return err
}

// resource loads the resource of type typ that the path's {id} names, if the
// user can read it (ENOTFOUND otherwise).
func (s *Server) resource(r *http.Request, ses *session, typ tokend.ResourceType) (*tokend.ResourceView, error) {
	id, err := s.pathID(r)
	if err != nil {
		return nil, err
	}
	return s.svc.GetResource(r.Context(), ses.Principal, typ, id)
}

// pathID reads the {id} of the path: the record the page is about.
func (s *Server) pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, tokend.Errorf(tokend.ENOTFOUND, "Not Found")
	}
	return id, nil
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

type usageBar struct {
	Date                                         string
	Success, ClientError, RateLimited, ServerErr int64
	Total                                        int64
}

type usageData struct {
	Token *tokend.Token
	Days  []usageBar
	Max   int64
	Total int64
	Bars  []svgBar
	Width int
}

// svgBar is one day of the chart, laid out in Go: the page's strict CSP
// allows no inline styles, and an SVG needs none.
type svgBar struct {
	X, Y, W, H, TX int
	Date, Label    string
	Total          int64
}

func (s *Server) tokenUsage(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	t, err := s.svc.GetToken(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	u, err := s.svc.Usage(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	d := usageData{Token: t}
	for _, c := range u.Counts {
		if len(d.Days) == 0 || d.Days[len(d.Days)-1].Date != c.Day {
			d.Days = append(d.Days, usageBar{Date: c.Day})
		}
		b := &d.Days[len(d.Days)-1]
		switch c.Outcome {
		case tokend.OutcomeSuccess:
			b.Success += c.Count
		case tokend.OutcomeClientError:
			b.ClientError += c.Count
		case tokend.OutcomeRateLimited:
			b.RateLimited += c.Count
		case tokend.OutcomeServerError:
			b.ServerErr += c.Count
		}
		b.Total += c.Count
		d.Total += c.Count
	}
	for _, b := range d.Days {
		d.Max = max(d.Max, b.Total)
	}
	const barW, gap, plot = 28, 8, 100
	d.Width = max(len(d.Days)*(barW+gap), barW+gap)
	for i, b := range d.Days {
		h := 0
		if d.Max > 0 {
			h = int(b.Total * plot / d.Max)
		}
		x := i * (barW + gap)
		d.Bars = append(d.Bars, svgBar{X: x, Y: plot - h, W: barW, H: h, TX: x + barW/2, Date: b.Date, Label: b.Date[5:], Total: b.Total})
	}
	s.render(w, r, http.StatusOK, "usage", view{Title: "Usage of " + t.Name, Session: ses, Data: d})
	return nil
}

// Projects, sandboxes and captured mail.

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

// Sending domains.

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
			data.Tokens = append(data.Tokens, t)
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
	Tokens     []tokend.Token
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

// The audit log.

type auditData struct {
	Events []tokend.AuditEvent
	Next   string
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, ses *session) error {
	page, err := s.svc.AuditLog(r.Context(), ses.Principal, r.URL.Query().Get("cursor"), 50)
	if err != nil {
		return err
	}
	d := auditData{Events: page.Events}
	if page.NextCursor != "" {
		d.Next = "/audit-log?cursor=" + url.QueryEscape(page.NextCursor)
	}
	s.render(w, r, http.StatusOK, "audit", view{Title: "Audit log", Session: ses, Data: d})
	return nil
}

func parseMessage(raw []byte) (*mail.Parsed, error) { return mail.Parse(raw) }
