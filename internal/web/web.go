// Package web serves the dashboard: server-rendered pages for people, on the
// same address as the API. A signed-in user is another kind of caller: every
// page calls the same domain services as the API does, on behalf of the
// user's principal, so the same rules decide what it may see and do.
package web

import (
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/webhook"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// maxFormBytes bounds a dashboard form's body.
const maxFormBytes = 1 << 20

// SessionCookie is the name of the dashboard's session cookie over plain
// HTTP; over HTTPS it is SecureSessionCookie, whose __Host- prefix makes
// browsers refuse it from a sibling subdomain or without Secure.
const (
	SessionCookie       = "tokend_session"
	SecureSessionCookie = "__Host-tokend_session"
)

// The flash cookie carries a form's outcome across its redirect, for the
// page it leads to to show once (POST-redirect-GET). Over HTTPS it takes the
// __Host- prefix too, so that no sibling subdomain can plant words in a page.
const (
	flashCookie       = "tokend_flash"
	secureFlashCookie = "__Host-tokend_flash"
)

// cookieName is the session cookie's name for r.
func (s *Server) cookieName(r *http.Request) string {
	if s.opts.HTTPS(r) {
		return SecureSessionCookie
	}
	return SessionCookie
}

// sessionValue is the session cookie r carries, if any.
func (s *Server) sessionValue(r *http.Request) (string, bool) {
	c, err := r.Cookie(s.cookieName(r))
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// Options are the dashboard's dependencies.
type Options struct {
	Logger *slog.Logger
	// HTTPS reports whether the client reached tokend over HTTPS (directly or
	// through a trusted proxy), for the session cookie's Secure flag.
	HTTPS func(r *http.Request) bool
	Now   func() time.Time // the clock; time.Now if nil
	// Domains checks sending domains' DNS records for the domain page's
	// "Re-check DNS Records"; nil: one without a resolver.
	Domains *tokend.Domains
	// Logs are the email logs the Email Logs pages read, and Suppressions
	// the suppression lists; nil: new ones over the service (the logs with
	// the default retention, which the pages do not use).
	Logs         *tokend.EmailLogs
	Suppressions *tokend.Suppressions
	// Webhooks manage the endpoints that receive email events, for the
	// Webhooks pages: pass the application's. nil builds one over the
	// service, with the strict URL policy (https:// only, public addresses
	// only) and nothing to wake a delivery runner; building it hooks its
	// deliveries' outcomes into the service's outbox in place of any
	// other's, so a server that delivers webhooks must pass its own.
	Webhooks *tokend.Webhooks
}

// Server is the dashboard. Create it with New; its routes join the API's mux.
type Server struct {
	svc    *tokend.Service
	mailer *tokend.Mailer
	users  *tokend.Users
	opts   Options
	dns    *tokend.Domains // checks sending domains' DNS records
	pages  map[string]*template.Template
	csrf   *http.CrossOriginProtection
	static http.Handler
}

// New returns the dashboard over the same services the API uses.
func New(svc *tokend.Service, mailer *tokend.Mailer, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPS == nil {
		opts.HTTPS = func(r *http.Request) bool { return r.TLS != nil }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Domains == nil {
		opts.Domains = tokend.NewDomains(svc, mailer, tokend.DomainOptions{})
	}
	if opts.Logs == nil {
		opts.Logs = tokend.NewEmailLogs(svc, 0)
	}
	if opts.Suppressions == nil {
		opts.Suppressions = tokend.NewSuppressions(svc)
	}
	if opts.Webhooks == nil {
		opts.Webhooks = tokend.NewWebhooks(svc, tokend.WebhookOptions{CheckURL: webhook.Policy{}.ValidateURL})
	}
	s := &Server{svc: svc, mailer: mailer, users: svc.Users(), dns: opts.Domains, opts: opts, pages: map[string]*template.Template{},
		csrf: http.NewCrossOriginProtection()}
	s.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renderStatus(w, r, nil, http.StatusForbidden, "This request came from another site, so it was refused. Reload the page and try again.")
	}))
	// Every page is the layout, the partials (_*.html: pieces several pages
	// share) and its own template.
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		s.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html", n))
	}
	sub, _ := fs.Sub(staticFS, "static")
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	return s
}

// Routes passes every dashboard route to handle; the API registers them on
// its mux, so that they share its request IDs, access log and metrics.
func (s *Server) Routes(handle func(pattern string, h http.Handler)) {
	m := func(pattern string, h http.Handler) { handle(pattern, s.secure(h)) }
	page := func(h pageHandler) http.Handler { return s.csrf.Handler(s.signedIn(h)) }
	open := func(h http.HandlerFunc) http.Handler { return s.csrf.Handler(h) }

	m("GET /static/", http.HandlerFunc(s.serveStatic))
	m("GET /{$}", page(s.home))
	m("GET /login", open(s.loginForm))
	m("POST /login", open(s.login))
	m("POST /logout", open(s.logout))
	m("GET /setup", open(s.setupForm))
	m("POST /setup", open(s.setup))

	m("GET /settings/api-tokens", page(s.tokens))
	m("GET /settings/api-tokens/new", page(s.newToken))
	m("GET /settings/api-tokens/unused", page(s.unusedTokens))
	m("POST /settings/api-tokens", page(s.createToken))
	m("GET /settings/api-tokens/{id}/edit", page(s.editToken))
	m("POST /settings/api-tokens/{id}", page(s.updateToken))
	m("GET /settings/api-tokens/{id}/reset", page(s.confirmReset))
	m("POST /settings/api-tokens/{id}/reset", page(s.resetToken))
	m("GET /settings/api-tokens/{id}/delete", page(s.confirmDelete))
	m("POST /settings/api-tokens/{id}/delete", page(s.deleteToken))
	m("GET /settings/api-tokens/{id}/usage", page(s.tokenUsage))

	m("GET /projects", page(s.projects))
	m("POST /projects", page(s.createProject))
	m("POST /projects/{id}/sandboxes", page(s.createSandbox))
	m("GET /sandboxes/{id}", page(s.sandbox))
	m("GET /sandboxes/{id}/messages/{mid}", page(s.message))
	m("GET /sandboxes/{id}/messages/{mid}/html", page(s.messageHTML))
	m("GET /sandboxes/{id}/messages/{mid}/attachments/{n}", page(s.attachment))
	m("POST /sandboxes/{id}/messages/{mid}/delete", page(s.deleteMessage))

	m("GET /domains", page(s.domains))
	m("POST /domains", page(s.createDomain))
	m("GET /domains/{id}", page(s.domain))
	m("POST /domains/{id}/verify", page(s.verifyDomain))
	m("POST /domains/{id}/send-setup-instructions", page(s.sendSetupInstructions))
	m("GET /domains/{id}/delete", page(s.confirmDeleteDomain))
	m("POST /domains/{id}/delete", page(s.deleteDomain))

	m("GET /email-logs", page(s.emailLogs))
	m("GET /email-logs/{id}", page(s.emailLog))
	m("GET /suppressions", page(s.suppressions))
	m("POST /suppressions", page(s.addSuppression))
	m("POST /suppressions/{id}/delete", page(s.removeSuppression))
	m("GET /webhooks", page(s.webhooks))
	m("POST /webhooks", page(s.createWebhook))
	m("GET /webhooks/{id}", page(s.webhook))
	m("POST /webhooks/{id}", page(s.updateWebhook))
	m("GET /webhooks/{id}/delete", page(s.confirmDeleteWebhook))
	m("POST /webhooks/{id}/delete", page(s.deleteWebhook))
	m("POST /webhooks/{id}/deliveries/{delivery}/resend", page(s.resendWebhookDelivery))

	m("GET /audit-log", page(s.auditLog))
}

// secure sets the headers every dashboard response carries: a strict
// Content-Security-Policy (scripts and styles only from tokend itself, no
// framing but by itself), no caching (pages show token values), no referrer
// beyond the origin.
func (s *Server) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"frame-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'")
		hd.Set("X-Frame-Options", "SAMEORIGIN")
		hd.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		h.ServeHTTP(w, r)
	})
}

// serveStatic serves the embedded assets, files only: no directory listings.
func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		s.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	s.static.ServeHTTP(w, r)
}

// NotFound is the dashboard's page for a path no route serves.
func (s *Server) NotFound(w http.ResponseWriter, r *http.Request) {
	s.secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renderStatus(w, r, nil, http.StatusNotFound, "There is no such page.")
	})).ServeHTTP(w, r)
}

// session is the signed-in user of a request.
type session struct {
	User      *tokend.User
	Principal *tokend.Token
	Path      string // the page's path, for the navigation
}

type pageHandler func(w http.ResponseWriter, r *http.Request, s *session) error

var errNoSession = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "Sign in first"}

// signedIn runs h for a signed-in user; anyone else goes to the sign-in page
// and comes back after. An error h returns becomes a page in plain words.
func (s *Server) signedIn(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var user *tokend.User
		var principal *tokend.Token
		var err error = errNoSession
		value, had := s.sessionValue(r)
		if had {
			user, principal, err = s.users.Authenticate(r.Context(), value)
		}
		if err == nil {
			ses := &session{User: user, Principal: principal, Path: r.URL.Path}
			if err = h(w, r, ses); err != nil && tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
				s.fail(w, r, ses, err)
				return
			}
		}
		if err == nil {
			return
		}
		if tokend.ErrorCode(err) == tokend.EINTERNAL {
			s.fail(w, r, nil, err)
			return
		}
		// No session, or it ended (expired, signed out, the user deleted
		// meanwhile): sign in again, and come back to this page.
		if had {
			s.clearCookie(w, r)
		}
		next := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			next = "/"
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
	})
}

// fail renders err as a page: the rule's own words for what the API rules
// refuse, a generic sentence (and a log line) for anything else.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, ses *session, err error) {
	status, msg := describe(err)
	if status == http.StatusInternalServerError {
		s.opts.Logger.ErrorContext(r.Context(), "dashboard request failed", "path", r.URL.Path, "err", err)
	}
	s.renderStatus(w, r, ses, status, msg)
}

// describe turns an error into a status and plain words for a person.
func describe(err error) (int, string) {
	var e *tokend.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError, "Something went wrong on our side. Try again; if it keeps happening, the operator's log has the details."
	}
	switch e.Code {
	case tokend.ENOTFOUND:
		return http.StatusNotFound, "There is no such page, or you do not have access to it."
	case tokend.EFORBIDDEN:
		return http.StatusForbidden, e.Message + "."
	case tokend.EUNAUTHORIZED:
		return http.StatusUnauthorized, e.Message + "."
	case tokend.ERATELIMITED:
		return http.StatusTooManyRequests, e.Message + "."
	case tokend.EINVALID:
		return http.StatusUnprocessableEntity, fieldSentence(e)
	case tokend.ETOOLARGE, tokend.EUNAVAILABLE:
		return http.StatusUnprocessableEntity, e.Message
	}
	return http.StatusInternalServerError, "Something went wrong on our side. Try again; if it keeps happening, the operator's log has the details."
}

// fieldOrder is the order of the fields fieldSentence says first, as the
// forms have them; others follow.
var fieldOrder = []string{"base", "name", "email", "password", "resources", "environment", "domain_name", "expires_at", "allowed_ips", "rate_limit", "quota", "cursor",
	"url", "event_types", "domain_id", "payload_format"}

// fieldSentence renders validation errors as sentences: "Name can't be blank."
func fieldSentence(e *tokend.Error) string {
	var parts []string
	for _, f := range fieldOrder {
		for _, m := range e.Fields[f] {
			parts = append(parts, sentence(f, m))
		}
	}
	for f, msgs := range e.Fields {
		if slices.Contains(fieldOrder, f) {
			continue
		}
		for _, m := range msgs {
			parts = append(parts, sentence(f, m))
		}
	}
	return strings.Join(parts, " ")
}

func sentence(field, msg string) string {
	label := map[string]string{"base": "", "name": "Name", "email": "Email", "email.email": "Email", "password": "Password", "resources": "Permissions:",
		"environment": "Key type", "domain_name": "Domain name", "expires_at": "Expiry", "cursor": "Page", "search_after": "Page",
		"filters[to]": "Recipient", "filters[status][value]": "Status", "filters[sending_domain_id][value]": "Sending domain",
		"domain_id": "Sending domain", "type": "Type", "url": "URL", "event_types": "Event types", "payload_format": "Format",
		"allowed_ips": "Allowed IPs:", "rate_limit": "Rate limit:", "quota": "Quota:"}[field]
	if label == "" && field != "base" {
		label = field
	}
	out := strings.TrimSpace(label + " " + msg)
	if !strings.HasSuffix(out, ".") {
		out += "."
	}
	return strings.ToUpper(out[:1]) + out[1:]
}

// view is what every template gets.
type view struct {
	Title   string
	Session *session
	Error   string
	Notice  string
	Data    any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t, ok := s.pages[name]
	if !ok {
		panic("web: no template " + name)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.Execute(w, v); err != nil {
		s.opts.Logger.ErrorContext(r.Context(), "rendering a dashboard page", "page", name, "err", err)
	}
}

func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, ses *session, status int, msg string) {
	s.render(w, r, status, "error", view{Title: http.StatusText(status), Session: ses, Error: msg, Data: status})
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: value, Path: "/", HttpOnly: true, Secure: s.opts.HTTPS(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(tokend.SessionLifetime / time.Second)})
}

func (s *Server) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: "", Path: "/", HttpOnly: true, Secure: s.opts.HTTPS(r),
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// maxFlash bounds a flash's message, in bytes.
const maxFlash = 1500

// flash is a form's outcome, shown once by the page its redirect leads to.
type flash struct {
	Error, Notice string
}

func (s *Server) flashCookieName(r *http.Request) string {
	if s.opts.HTTPS(r) {
		return secureFlashCookie
	}
	return flashCookie
}

// setFlash keeps f for the next page this browser loads, for a minute at most.
func (s *Server) setFlash(w http.ResponseWriter, r *http.Request, f flash) {
	kind, msg := "n", f.Notice
	if f.Error != "" {
		kind, msg = "e", f.Error
	}
	if len(msg) > maxFlash { // a cookie holds 4 KB
		msg = strings.ToValidUTF8(msg[:maxFlash], "") + "…"
	}
	http.SetCookie(w, &http.Cookie{Name: s.flashCookieName(r), Value: kind + base64.RawURLEncoding.EncodeToString([]byte(msg)),
		Path: "/", HttpOnly: true, Secure: s.opts.HTTPS(r), SameSite: http.SameSiteLaxMode, MaxAge: 60})
}

// takeFlash returns the flash r carries, if any, and clears it: a reload
// does not show it again.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) flash {
	c, err := r.Cookie(s.flashCookieName(r))
	if err != nil {
		return flash{}
	}
	http.SetCookie(w, &http.Cookie{Name: c.Name, Value: "", Path: "/", HttpOnly: true, Secure: s.opts.HTTPS(r),
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if len(c.Value) < 2 {
		return flash{}
	}
	msg, err := base64.RawURLEncoding.DecodeString(c.Value[1:])
	if err != nil {
		return flash{}
	}
	switch c.Value[0] {
	case 'e':
		return flash{Error: string(msg)}
	case 'n':
		return flash{Notice: string(msg)}
	}
	return flash{}
}

var funcs = template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"at": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"level": func(l tokend.AccessLevel) string {
		return map[tokend.AccessLevel]string{tokend.Admin: "Admin", tokend.Viewer: "Viewer"}[l]
	},
	"typeName": func(t tokend.ResourceType) string {
		return string(t)
	},
	"add":  func(a, b int) int { return a + b },
	"join": strings.Join,
	// recordLabel names a sending domain's DNS record by its key.
	"recordLabel": func(key string) string {
		if l, ok := map[string]string{tokend.RecordVerification: "Verification", tokend.RecordSPF: "SPF",
			tokend.RecordDKIM: "DKIM", tokend.RecordDMARC: "DMARC"}[key]; ok {
			return l
		}
		return key
	},
	// recordStatus words a DNS record's status for its badge.
	"recordStatus": func(status string) string {
		if l, ok := map[string]string{tokend.RecordPass: "Pass", tokend.RecordMissing: "Missing",
			tokend.RecordMismatch: "Mismatch", tokend.RecordUnchecked: "Unchecked"}[status]; ok {
			return l
		}
		return status
	},
	// current reports whether path is section's page or one under it.
	"current": func(path, section string) bool {
		return path == section || strings.HasPrefix(path, section+"/") ||
			section == "/projects" && strings.HasPrefix(path, "/sandboxes/")
	},
}

// safeNext keeps a sign-in's return path on this site: a path of its own,
// never anything a browser could read as another host (//host, /\host, or
// those with tabs or line breaks, which browsers drop, in between).
func safeNext(next string) string {
	const home = "/settings/api-tokens"
	if next == "" || next[0] != '/' || strings.ContainsAny(next, "\\") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(u.Path, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return home
	}
	return next
}
