package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/dns"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/internal/web"
)

// env is tokend's API and dashboard on one test server, with account Acme,
// its admin token, and users of it: an admin and a viewer.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	svc    *tokend.Service
	clock  *testutil.Clock
	acme   int64
	admin  string            // the account's admin token
	other  string            // another account's admin token
	people map[string]string // email → password
}

const password = "correct horse battery"

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

// envOptions vary the env.
type envOptions struct {
	// dns is the DNS server sending domains' checks ask; nil: checks cannot
	// run (no resolver), as in web.Options' default.
	dns *testutil.DNSServer
	// deliver queues live mail (tokend's own included) in the outbox, as
	// with a relay configured; no dispatcher delivers it.
	deliver bool
	// relay, when set, delivers live mail, in the background as serve does.
	relay mail.Sender
	// defaultTTL is the lifetime of tokens created without an expiry
	// (tokend serve --default-ttl); 0: they never expire.
	defaultTTL time.Duration
	// behindProxy trusts the test client (127.0.0.1) as a proxy, so that
	// requests can come from any client address through X-Forwarded-For.
	behindProxy bool
	// shared, when set, holds the sign-in throttle, as Redis does across
	// instances.
	shared tokend.Limits
	// webhookHTTP lets webhooks use http:// URLs of loopback hosts (tokend
	// serve --webhook-allow-http), for a receiver in the test.
	webhookHTTP bool
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: testutil.NewClock(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)), people: map[string]string{}}
	opts := app.Options{Now: e.clock.Now, Limits: o.shared}
	if o.dns != nil {
		r, err := dns.New(o.dns.Addr(), dns.Options{Timeout: 300 * time.Millisecond, Attempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		opts.Resolver = r
	}
	if o.deliver {
		opts.Relay = testutil.Undelivered{} // live mail is queued, never delivered
	}
	if o.relay != nil {
		opts.Relay = o.relay
		opts.Retry = &app.RetryTiming{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: 20 * time.Millisecond}
	}
	instance := testutil.App(t, func(c *app.Config) {
		c.DefaultTTL = o.defaultTTL
		if o.relay != nil {
			// The outbox retries on real time, while this clock stands
			// before it: messages stamped by the clock must not look old.
			c.SMTPRetryFor = 100 * 365 * 24 * time.Hour
			c.WebhookRetryFor = c.SMTPRetryFor
		}
		c.WebhookAllowHTTP = o.webhookHTTP
		if o.behindProxy {
			if err := c.TrustedProxies.Set("127.0.0.1/32"); err != nil {
				t.Fatal(err)
			}
		}
	}, opts)
	instance.EndStreams()
	if o.relay != nil {
		testutil.Background(t, instance)
	}
	e.svc = instance.Service
	e.srv = httptest.NewServer(instance.Handler)
	t.Cleanup(e.srv.Close)
	a, tok, err := e.svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetPlan(ctx, a.ID, tokend.PlanEnterprise, 1_000_000, 0, "ops"); err != nil {
		t.Fatal(err)
	}
	e.acme, e.admin = a.ID, tok.Value
	_, other, err := e.svc.CreateAccount(ctx, "Other", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	e.other = other.Value
	e.user("ann@example.com", "Ann Admin", tokend.Admin)
	e.user("vic@example.com", "Vic Viewer", tokend.Viewer)
	return e
}

func (e *env) user(email, name string, role tokend.AccessLevel) {
	e.t.Helper()
	if _, err := e.svc.Users().Create(context.Background(), tokend.NewUser{AccountID: e.acme, Email: email, Name: name, Role: role, Password: password}); err != nil {
		e.t.Fatal(err)
	}
	e.people[email] = password
}

// browser is one person's cookie jar against the env, sending what a
// same-origin browser form sends.
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, client: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	t      *testing.T
	Status int
	Header http.Header
	Body   string
}

func (p *page) want(status int) *page {
	p.t.Helper()
	if p.Status != status {
		p.t.Fatalf("status %d, want %d\n%s", p.Status, status, p.Body)
	}
	return p
}

func (p *page) has(parts ...string) *page {
	p.t.Helper()
	for _, s := range parts {
		if !strings.Contains(p.Body, s) {
			p.t.Fatalf("page lacks %q:\n%s", s, p.Body)
		}
	}
	return p
}

func (p *page) lacks(parts ...string) *page {
	p.t.Helper()
	for _, s := range parts {
		if strings.Contains(p.Body, s) {
			p.t.Fatalf("page has %q:\n%s", s, p.Body)
		}
	}
	return p
}

func (b *browser) do(req *http.Request) *page {
	b.e.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return &page{t: b.e.t, Status: res.StatusCode, Header: res.Header, Body: string(body)}
}

func (b *browser) get(path string) *page {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// post submits a form as a page of the same site does.
func (b *browser) post(path string, form url.Values) *page {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

func (e *env) signIn(email string) *browser {
	e.t.Helper()
	b := e.browser()
	p := b.post("/login", url.Values{"email": {email}, "password": {e.people[email]}, "next": {"/settings/api-tokens"}})
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/settings/api-tokens" {
		e.t.Fatalf("sign in as %s: %d %s\n%s", email, p.Status, p.Header.Get("Location"), p.Body)
	}
	return b
}

// apiStatus calls the API with a token and returns the status.
func (e *env) apiStatus(method, path, token string) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	req.Header.Set("Api-Token", token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

var tokenValue = regexp.MustCompile(`tk_(live|test)_[0-9A-Za-z]{36}`)

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/settings/api-tokens").want(http.StatusSeeOther)
	b.get("/login").want(200).has(`<label for="email">Email</label>`, `<label for="password">Password</label>`, `<button type="submit">Sign in</button>`)
	b.post("/login", url.Values{"email": {"ann@example.com"}, "password": {"wrong password!"}}).want(401).has("Wrong email or password")
	b.post("/login", url.Values{"email": {"nobody@example.com"}, "password": {password}}).want(401).has("Wrong email or password")
	res := b.post("/login", url.Values{"email": {"ANN@example.com"}, "password": {password}, "next": {"/projects"}}).want(http.StatusSeeOther)
	if res.Header.Get("Location") != "/projects" {
		t.Errorf("after sign-in to %q, want the page asked for", res.Header.Get("Location"))
	}
	cookie := res.Header.Get("Set-Cookie")
	for _, attr := range []string{web.SessionCookie + "=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("cookie over plain HTTP is Secure: %q", cookie)
	}
	b.get("/projects").want(200).has("Ann Admin (ann@example.com)", "Sign out")
	// A return path off the site is not followed, however it is spelled.
	for i, next := range []string{"//evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "https://evil.example/",
		"/%09/evil.example", "javascript:alert(1)", "evil.example"} {
		e.clock.Advance(time.Duration(i) * time.Minute) // room in the sign-in budget
		off := e.browser().post("/login", url.Values{"email": {"ann@example.com"}, "password": {password}, "next": {next}})
		if loc := off.Header.Get("Location"); loc != "/settings/api-tokens" {
			t.Errorf("next=%q redirected to %q", next, loc)
		}
	}
	// A signed-in visit to the sign-in page goes on only within the site too.
	if loc := b.get("/login?next=/%09/evil.example").Header.Get("Location"); loc != "/settings/api-tokens" {
		t.Errorf("signed-in /login?next=/%%09/evil.example redirected to %q", loc)
	}
	// An over-long email is refused like any wrong one.
	e.browser().post("/login", url.Values{"email": {strings.Repeat("a", 100_000) + "@example.com"}, "password": {password}}).want(401)
}

// Signing in again replaces the session the browser had; a page asked for
// before signing in comes back with its query.
func TestSignInReplacesTheOldSessionAndReturns(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	old := sessionCookie(b, e)
	b.post("/login", url.Values{"email": {"ann@example.com"}, "password": {password}}).want(http.StatusSeeOther)
	replay := e.browser()
	replay.client.Jar.SetCookies(mustURL(e.srv.URL), []*http.Cookie{{Name: web.SessionCookie, Value: old}})
	replay.get("/projects").want(http.StatusSeeOther)
	p := e.browser().get("/sandboxes/1?search=x&page=2").want(http.StatusSeeOther)
	if loc := p.Header.Get("Location"); loc != "/login?next="+url.QueryEscape("/sandboxes/1?search=x&page=2") {
		t.Errorf("redirected to %q", loc)
	}
	// A user deleted while signed in is sent to sign in at the next change.
	if _, err := e.svc.Users().Delete(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if p := b.post("/projects", url.Values{"name": {"P"}}); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/login") {
		t.Errorf("deleted user's change: %d %s", p.Status, p.Header.Get("Location"))
	}
}

func sessionCookie(b *browser, e *env) string {
	for _, c := range b.client.Jar.Cookies(mustURL(e.srv.URL)) {
		if c.Name == web.SessionCookie {
			return c.Value
		}
	}
	e.t.Fatal("no session cookie")
	return ""
}

func TestSessionsExpireAndSignOutEnds(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	e.clock.Advance(11 * time.Hour)
	b.get("/settings/api-tokens").want(200) // used: the idle limit moves on
	e.clock.Advance(11 * time.Hour)
	b.get("/settings/api-tokens").want(200)
	e.clock.Advance(12*time.Hour + time.Minute) // idle too long
	if p := b.get("/settings/api-tokens"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/login") {
		t.Fatalf("after 12 h idle: %d %s", p.Status, p.Header.Get("Location"))
	}
	// The absolute limit holds however often the session is used.
	b = e.signIn("ann@example.com")
	for range 16 { // 176 h in all, past the 7-day limit
		e.clock.Advance(11 * time.Hour)
		b.get("/projects")
	}
	b.get("/projects").want(http.StatusSeeOther)
	// Sign out ends the session itself, not only the cookie.
	b = e.signIn("ann@example.com")
	var value string
	for _, c := range b.client.Jar.Cookies(mustURL(e.srv.URL)) {
		if c.Name == web.SessionCookie {
			value = c.Value
		}
	}
	b.post("/logout", nil).want(http.StatusSeeOther)
	replay := e.browser()
	replay.client.Jar.SetCookies(mustURL(e.srv.URL), []*http.Cookie{{Name: web.SessionCookie, Value: value}})
	replay.get("/settings/api-tokens").want(http.StatusSeeOther)
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

// A form posted from another site is refused before it does anything.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Origin of another site":    {"Origin": {"http://evil.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/settings/api-tokens", strings.NewReader("name=evil&perm=account:1:100"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range h {
				req.Header[k] = v
			}
			b.do(req).want(403).has("came from another site")
		})
	}
	b.get("/settings/api-tokens").want(200).lacks("evil")
}

func TestTokenLifecycleThroughTheDashboard(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	b.get("/settings/api-tokens/new").want(200).has(`aria-label="Viewer account Acme"`, `aria-label="Admin account Acme"`,
		`> Live</label>`, `> Test</label>`, "<button type=\"submit\">Save</button>")
	created := b.post("/settings/api-tokens", url.Values{"name": {"<script>alert(1)</script>"}, "environment": {"live"},
		"perm": {fmt.Sprintf("account:%d:10", e.acme)}}).want(200).has("will not be shown again", ">Copy</button>")
	value := tokenValue.FindString(created.Body)
	if value == "" {
		t.Fatalf("no token value on the page:\n%s", created.Body)
	}
	if e.apiStatus("GET", "/api/whoami", value) != 200 {
		t.Fatal("the new token does not work against the API")
	}
	list := b.get("/settings/api-tokens").want(200).has("&lt;script&gt;alert(1)&lt;/script&gt;", "Ann Admin (ann@example.com)",
		`aria-label="Actions for &lt;script&gt;alert(1)&lt;/script&gt;"`, "Viewer account Acme").lacks("<script>alert(1)</script>", value)
	id := regexp.MustCompile(`/settings/api-tokens/(\d+)/reset`).FindAllStringSubmatch(list.Body, -1)
	newest := id[len(id)-1][1]

	b.get("/settings/api-tokens/"+newest+"/reset").want(200).has("Reset API Token", ">Confirm</button>", "12 hours")
	reset := b.post("/settings/api-tokens/"+newest+"/reset", nil).want(200).has("keeps working until", "2026-06-01 21:00 UTC")
	newValue := tokenValue.FindString(reset.Body)
	if newValue == "" || newValue == value {
		t.Fatalf("reset showed %q", newValue)
	}
	if e.apiStatus("GET", "/api/whoami", value) != 200 || e.apiStatus("GET", "/api/whoami", newValue) != 200 {
		t.Fatal("after reset, the old token (in its grace period) and the new one must both work")
	}

	// Edit the new token's permissions to admin; the API shows the change.
	list = b.get("/settings/api-tokens").want(200)
	ids := regexp.MustCompile(`/settings/api-tokens/(\d+)/edit`).FindAllStringSubmatch(list.Body, -1)
	newID := ids[len(ids)-1][1]
	b.get("/settings/api-tokens/" + newID + "/edit").want(200).has("Edit permissions")
	b.post("/settings/api-tokens/"+newID, url.Values{"name": {"renamed"}, "perm": {fmt.Sprintf("account:%d:100", e.acme)}}).want(http.StatusSeeOther)
	if e.apiStatus("POST", fmt.Sprintf("/api/accounts/%d/projects", e.acme), newValue) == 403 {
		t.Error("the edited token is still a viewer through the API")
	}
	b.get("/settings/api-tokens").has("renamed", "Admin account Acme")

	b.get("/settings/api-tokens/"+newID+"/delete").want(200).has("Delete token", ">Confirm</button>")
	b.post("/settings/api-tokens/"+newID+"/delete", nil).want(http.StatusSeeOther)
	if e.apiStatus("GET", "/api/whoami", newValue) != 401 {
		t.Error("a token deleted in the dashboard still authenticates")
	}
}

func TestLastDomainTokenCannotBeDeleted(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	added := b.post("/domains", url.Values{"domain_name": {"example.com"}}).want(200).has("will not be shown again", "_domainkey.example.com", "v=spf1")
	if tokenValue.FindString(added.Body) == "" {
		t.Fatal("the domain's own token is not shown")
	}
	// The account's admin token covers the domain too: delete it first, so
	// that the domain's own token is its last.
	b.post("/settings/api-tokens/1/delete", nil).want(http.StatusSeeOther)
	list := b.get("/settings/api-tokens").want(200).has("example.com token").lacks("Admin token")
	m := regexp.MustCompile(`href="/settings/api-tokens/(\d+)/delete"`).FindAllStringSubmatch(list.Body, -1)
	domainToken := m[len(m)-1][1]
	b.post("/settings/api-tokens/"+domainToken+"/delete", nil).want(403).has("Cannot delete the last active API token with admin access to domain example.com")
	b.get("/settings/api-tokens").has("example.com token")
	// The domain's page shows its records and its own token.
	did := regexp.MustCompile(`href="/domains/(\d+)"`).FindStringSubmatch(b.get("/domains").Body)[1]
	b.get("/domains/"+did).want(200).has("v=DKIM1; k=rsa; p=", "_dmarc.example.com", "example.com token", "/settings/api-tokens/"+domainToken+"/reset")
}

// A user acts under the same rules as a token with its role: a viewer reads
// and changes nothing, and what it cannot see does not exist for it.
func TestViewerUserThroughEveryPage(t *testing.T) {
	e := newEnv(t)
	a := e.signIn("ann@example.com")
	a.post("/projects", url.Values{"name": {"Web"}}).want(http.StatusSeeOther)
	pid := regexp.MustCompile(`action="/projects/(\d+)/sandboxes"`).FindStringSubmatch(a.get("/projects").Body)[1]
	a.post("/projects/"+pid+"/sandboxes", url.Values{"name": {"QA"}}).want(http.StatusSeeOther)
	sid := regexp.MustCompile(`href="/sandboxes/(\d+)"`).FindStringSubmatch(a.get("/projects").Body)[1]
	a.post("/domains", url.Values{"domain_name": {"example.com"}}).want(200)
	did := regexp.MustCompile(`href="/domains/(\d+)"`).FindStringSubmatch(a.get("/domains").Body)[1]

	v := e.signIn("vic@example.com")
	for _, tt := range []struct {
		method, path string
		form         url.Values
		want         int
	}{
		{"GET", "/settings/api-tokens", nil, 200},
		{"GET", "/settings/api-tokens/new", nil, 200}, // the page shows, though the list offers no Add Token
		{"POST", "/settings/api-tokens", url.Values{"name": {"x"}, "perm": {"account:1:10"}}, 403},
		{"GET", "/settings/api-tokens/1/edit", nil, 404},
		{"POST", "/settings/api-tokens/1", url.Values{"name": {"x"}}, 404},
		{"GET", "/settings/api-tokens/1/reset", nil, 404},
		{"POST", "/settings/api-tokens/1/reset", nil, 404},
		{"POST", "/settings/api-tokens/1/delete", nil, 404},
		{"GET", "/settings/api-tokens/1/usage", nil, 404},
		{"GET", "/projects", nil, 200},
		{"POST", "/projects", url.Values{"name": {"P"}}, 403},
		{"POST", "/projects/" + pid + "/sandboxes", url.Values{"name": {"S"}}, 403},
		{"GET", "/sandboxes/" + sid, nil, 200},
		{"GET", "/domains", nil, 200},
		{"POST", "/domains", url.Values{"domain_name": {"v.example.com"}}, 403},
		{"GET", "/domains/" + did, nil, 200},
		{"GET", "/domains/" + did + "/delete", nil, 403},
		{"POST", "/domains/" + did + "/delete", nil, 403},
		{"POST", "/domains/" + did + "/verify", nil, 403},
		{"POST", "/domains/" + did + "/send-setup-instructions", url.Values{"email": {"dns@example.org"}}, 403},
		{"GET", "/audit-log", nil, 403},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var p *page
			if tt.method == "GET" {
				p = v.get(tt.path)
			} else {
				p = v.post(tt.path, tt.form)
			}
			p.want(tt.want)
			if tt.want >= 400 && !strings.Contains(p.Body, `class="error" role="alert"`) {
				t.Errorf("refusal without words in the page:\n%s", p.Body)
			}
		})
	}
	// Nothing the viewer tried changed anything.
	a.get("/settings/api-tokens").want(200).has("Admin token").lacks(">x <")
	a.get("/domains").has("example.com").lacks("v.example.com")
}

func TestUsersFollowTheTokenRules(t *testing.T) {
	e := newEnv(t)
	v := e.signIn("vic@example.com")
	v.get("/settings/api-tokens").want(200).has("No tokens you can see").lacks("Admin token", ">Add Token<")
	v.post("/settings/api-tokens", url.Values{"name": {"mine"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)}}).want(403).
		has("You need admin access to account")
	v.get("/settings/api-tokens/1/edit").want(404).has("no such page")
	v.post("/settings/api-tokens/1/delete", nil).want(404)
	v.post("/projects", url.Values{"name": {"P"}}).want(403)
	v.get("/audit-log").want(403).has("Only an account admin")
	v.post("/domains", url.Values{"domain_name": {"v.example.com"}}).want(403)
	// Another account's records do not exist for Ann.
	a := e.signIn("ann@example.com")
	a.get("/settings/api-tokens/2/edit").want(404) // token 2 is Other's admin token
	a.get("/settings/api-tokens/2/usage").want(404)
}

func TestProjectsSandboxesAndCapturedMail(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	b.post("/projects", url.Values{"name": {"Web <app>"}}).want(http.StatusSeeOther)
	p := b.get("/projects").want(200).has("Web &lt;app&gt;")
	pid := regexp.MustCompile(`action="/projects/(\d+)/sandboxes"`).FindStringSubmatch(p.Body)[1]
	b.post("/projects/"+pid+"/sandboxes", url.Values{"name": {"QA"}}).want(http.StatusSeeOther)
	sid := regexp.MustCompile(`href="/sandboxes/(\d+)"`).FindStringSubmatch(b.get("/projects").Body)[1]
	// Mail arrives in it through the API.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/send/"+sid, strings.NewReader(
		`{"from":{"email":"qa@x.test"},"to":[{"email":"dev@example.org"}],"subject":"Hello <b>","text":"plain body","html":"<p onclick=\"x()\">rich</p><script>alert(1)</script>"}`))
	req.Header.Set("Api-Token", e.admin)
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("send to sandbox: %v %v", res.StatusCode, err)
	}
	box := b.get("/sandboxes/"+sid).want(200).has("Hello &lt;b&gt;", "dev@example.org")
	mid := regexp.MustCompile(`/messages/(\d+)"`).FindStringSubmatch(box.Body)[1]
	b.get("/sandboxes/"+sid+"/messages/"+mid).want(200).has("plain body", `<iframe class="mail" sandbox`, "Subject")
	frame := b.get("/sandboxes/" + sid + "/messages/" + mid + "/html").want(200)
	if csp := frame.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
		t.Errorf("captured HTML served with CSP %q", csp)
	}
	v := e.signIn("vic@example.com")
	v.get("/sandboxes/" + sid + "/messages/" + mid).want(200).lacks("Delete message") // viewers read
	v.post("/sandboxes/"+sid+"/messages/"+mid+"/delete", nil).want(403)
	e.browser().get("/sandboxes/" + sid).want(http.StatusSeeOther)
	// Opened by an admin, it is read; its attachment downloads; it can go.
	b.get("/sandboxes/" + sid).want(200).lacks(`class="unread"`)
	req, _ = http.NewRequest("POST", e.srv.URL+"/api/send/"+sid, strings.NewReader(
		`{"from":{"email":"qa@x.test"},"to":[{"email":"dev@example.org"}],"subject":"With file","text":"t","attachments":[{"filename":"a.txt","content":"aGVsbG8="}]}`))
	req.Header.Set("Api-Token", e.admin)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("send to sandbox: %v", err)
	}
	box = b.get("/sandboxes/" + sid).want(200).has(`class="unread"`)
	mid2 := regexp.MustCompile(`/messages/(\d+)"`).FindStringSubmatch(box.Body)[1]
	msg := b.get("/sandboxes/"+sid+"/messages/"+mid2).want(200).has("a.txt (text/plain, 5 bytes)", "Delete message")
	link := regexp.MustCompile(`href="(/sandboxes/\d+/messages/\d+/attachments/1)"`).FindStringSubmatch(msg.Body)[1]
	if dl := b.get(link).want(200); dl.Body != "hello" || dl.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("attachment download: %q %q", dl.Body, dl.Header.Get("Content-Type"))
	}
	b.post("/sandboxes/"+sid+"/messages/"+mid2+"/delete", nil).want(http.StatusSeeOther)
	b.get("/sandboxes/" + sid).want(200).lacks("With file")
}

func TestUsageAndAuditLogPages(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.apiStatus("GET", "/api/whoami", e.admin)
	}
	e.apiStatus("GET", "/api/api_tokens/424242", e.admin) // a client error (404)
	b := e.signIn("ann@example.com")
	// The day's row splits the requests by outcome, as the API's usage does.
	b.get("/settings/api-tokens/1/usage").want(200).has("<svg", "4 in all",
		"<tr><td>2026-06-01</td><td>3</td><td>1</td><td>0</td><td>0</td><td>4</td></tr>")
	for i := range 60 {
		b.post("/projects", url.Values{"name": {fmt.Sprint("P", i)}}).want(http.StatusSeeOther)
	}
	first := b.get("/audit-log").want(200).has("Ann Admin (ann@example.com)", "resource.created")
	next := regexp.MustCompile(`href="(/audit-log\?cursor=[^"]+)"`).FindStringSubmatch(first.Body)
	if next == nil {
		t.Fatal("no link to older audit events")
	}
	b.get(strings.ReplaceAll(next[1], "&amp;", "&")).want(200).has("account.created")
}

func TestSetupLinkWorksOnce(t *testing.T) {
	e := newEnv(t)
	code, err := e.svc.Users().Invite(context.Background(), e.acme, tokend.Admin)
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.get("/setup?code="+code).want(200).has(`<label for="email">Email</label>`, `<label for="password">Password</label>`)
	b.post("/setup", url.Values{"code": {code}, "email": {"owner@example.com"}, "name": {"Olive"}, "password": {"short"}}).want(422).has("too short")
	b.post("/setup", url.Values{"code": {code}, "email": {"owner@example.com"}, "name": {"Olive"}, "password": {password}}).want(http.StatusSeeOther)
	b.get("/settings/api-tokens").want(200).has("Olive (owner@example.com)")
	e.browser().get("/setup?code=" + code).want(404).has("not valid any more")
	e.browser().post("/setup", url.Values{"code": {code}, "email": {"again@example.com"}, "password": {password}}).want(404)
}

func TestPagesCarryStrictHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	p := b.get("/settings/api-tokens").want(200)
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
	} {
		if !strings.Contains(p.Header.Get(k), want) {
			t.Errorf("%s = %q, want %q", k, p.Header.Get(k), want)
		}
	}
	b.get("/no/such/page").want(404).has("There is no such page")
	b.get("/static/app.js").want(200).has("data-copy")
	b.get("/static/").want(404).lacks(`href="app.js"`) // no directory listing
}

// Over HTTPS the session cookie is Secure, and pages carry HSTS.
func TestCookieIsSecureUnderTLS(t *testing.T) {
	e := newEnv(t)
	tlsSrv := httptest.NewTLSServer(e.srv.Config.Handler)
	defer tlsSrv.Close()
	client := tlsSrv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", tlsSrv.URL+"/login", strings.NewReader(url.Values{"email": {"ann@example.com"}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if c := res.Header.Get("Set-Cookie"); res.StatusCode != http.StatusSeeOther || !strings.Contains(c, "; Secure") || !strings.Contains(c, "HttpOnly") ||
		!strings.HasPrefix(c, web.SecureSessionCookie+"=") {
		t.Errorf("sign-in over TLS: %d, cookie %q", res.StatusCode, c)
	}
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
}

// follow loads the page a form's redirect (POST-redirect-GET) leads to.
func (b *browser) follow(p *page) *page {
	b.e.t.Helper()
	p.want(http.StatusSeeOther)
	return b.get(p.Header.Get("Location"))
}

var (
	recordRow  = regexp.MustCompile(`(?s)<tr id="record-(\w+)">.*?<span class="badge (\w+)">`)
	recordText = regexp.MustCompile(`<code class="wrap" id="dns-(\w+)-(name|value)">([^<]*)</code>`)
)

// records reads a page's DNS records table: the records' keys in order, and
// the status each one's badge shows.
func (p *page) records() (keys []string, status map[string]string) {
	p.t.Helper()
	status = map[string]string{}
	for _, m := range recordRow.FindAllStringSubmatch(p.Body, -1) {
		keys = append(keys, m[1])
		status[m[1]] = m[2]
	}
	if len(keys) == 0 {
		p.t.Fatalf("no DNS records on the page:\n%s", p.Body)
	}
	return keys, status
}

// wantRecords checks the records' statuses, and that the ownership record
// comes first.
func (p *page) wantRecords(want map[string]string) *page {
	p.t.Helper()
	keys, got := p.records()
	if strings.Join(keys, ",") != "verification,spf,dkim,dmarc" {
		p.t.Errorf("records %v, want verification, spf, dkim, dmarc: the verification record first", keys)
	}
	for k, v := range want {
		if got[k] != v {
			p.t.Errorf("record %s shows %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	return p
}

// dnsRecord is a record as its page shows it: the name and the value its
// Copy buttons copy.
type dnsRecord struct{ name, value string }

func (p *page) dnsRecords() map[string]dnsRecord {
	p.t.Helper()
	out := map[string]dnsRecord{}
	for _, m := range recordText.FindAllStringSubmatch(p.Body, -1) {
		r := out[m[1]]
		if m[2] == "name" {
			r.name = html.UnescapeString(m[3])
		} else {
			r.value = html.UnescapeString(m[3])
		}
		out[m[1]] = r
	}
	return out
}

// addDomain adds a sending domain as b's user and returns its page's path.
func (b *browser) addDomain(name string) string {
	b.e.t.Helper()
	b.post("/domains", url.Values{"domain_name": {name}}).want(200)
	m := regexp.MustCompile(`<a href="(/domains/\d+)">` + regexp.QuoteMeta(name) + `</a>`).FindStringSubmatch(b.get("/domains").Body)
	if m == nil {
		b.e.t.Fatalf("%s is not in the list of sending domains", name)
	}
	return m[1]
}

// A domain's page and the list show whether it is verified and what the
// last check found for each record; "Re-check DNS Records" checks them
// against real DNS now and shows the outcome once, after a redirect.
func TestDomainPageShowsAndRechecksDNSRecords(t *testing.T) {
	srv := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: srv})
	b := e.signIn("ann@example.com")

	// Just added: nothing checked yet, nothing sendable.
	added := b.post("/domains", url.Values{"domain_name": {"mail.example.com"}}).want(200).
		has("Not verified: live keys cannot send from it", `data-copy="dns-verification-value"`, `aria-label="Copy DKIM record value"`).
		wantRecords(map[string]string{"verification": "unchecked", "spf": "unchecked", "dkim": "unchecked", "dmarc": "unchecked"})
	path := regexp.MustCompile(`href="(/domains/\d+)"`).FindStringSubmatch(added.Body)[1]
	list := b.get("/domains").want(200)
	if !regexp.MustCompile(`mail\.example\.com</a></td><td><span class="badge fail">Not verified: live keys cannot send from it</span>`).MatchString(list.Body) {
		t.Errorf("the list does not show mail.example.com as not verified:\n%s", list.Body)
	}
	p := b.get(path).want(200).has("Not verified: live keys cannot send from it", "Records last checked: <strong>never</strong>",
		`<form method="post" action="`+path+`/verify">`, ">Re-check DNS Records</button>", `<label for="setup-email">Email these records to</label>`).
		lacks("Verified since", `class="warning"`).
		wantRecords(map[string]string{"verification": "unchecked", "spf": "unchecked", "dkim": "unchecked", "dmarc": "unchecked"})
	rec := p.dnsRecords()
	if rec["verification"].name != "_tokend-verification.mail.example.com" || !strings.HasPrefix(rec["verification"].value, "tokend-verification=") ||
		rec["spf"].name != "mail.example.com" || rec["spf"].value != "v=spf1 a mx ~all" || !strings.HasPrefix(rec["dkim"].value, "v=DKIM1; k=rsa; p=") ||
		rec["dmarc"].name != "_dmarc.mail.example.com" || len(rec) != 4 {
		t.Fatalf("the page shows the records %+v", rec)
	}

	// Nothing published: every record is missing, in words.
	e.clock.Advance(time.Minute)
	p = b.follow(b.post(path+"/verify", nil)).want(200).
		has(`<p class="notice" role="status">Checked the DNS records of mail.example.com: 0 of 4 pass. Live keys cannot send from it until every record passes.</p>`,
			"Records last checked: <strong>2026-06-01 09:01 UTC</strong>", "no TXT record at this name", "Not verified: live keys cannot send from it").
		wantRecords(map[string]string{"verification": "missing", "spf": "missing", "dkim": "missing", "dmarc": "missing"})
	if n := srv.Queries(); n == 0 {
		t.Fatal("the re-check asked no DNS server")
	}
	// The outcome is shown once: a reload shows the statuses alone.
	b.get(path).want(200).lacks(`class="notice"`).wantRecords(map[string]string{"verification": "missing"})

	// All published but a wrong SPF record: it says what it found and why it
	// does not do.
	srv.AddTXT(rec["verification"].name, rec["verification"].value)
	srv.AddTXT("mail.example.com", "v=spf1 include:_spf.google.com -all")
	srv.AddTXT(rec["dkim"].name, rec["dkim"].value)
	srv.AddTXT(rec["dmarc"].name, rec["dmarc"].value)
	e.clock.Advance(time.Minute)
	b.follow(b.post(path+"/verify", nil)).want(200).
		has("Checked the DNS records of mail.example.com: 3 of 4 pass.", `<span class="badge mismatch">Mismatch</span>`,
			"the SPF record does not contain a", "Found:", "<li><code class=\"wrap\">v=spf1 include:_spf.google.com -all</code></li>",
			"Not verified: live keys cannot send from it").
		wantRecords(map[string]string{"verification": "pass", "spf": "mismatch", "dkim": "pass", "dmarc": "pass"})

	// Fixed: every record passes, and the domain is verified, here and in the list.
	srv.SetTXT("mail.example.com", []string{"v=spf1 include:_spf.google.com a mx ~all"})
	e.clock.Advance(time.Minute)
	b.follow(b.post(path+"/verify", nil)).want(200).
		has("Every DNS record of mail.example.com passes: it is verified, and live keys can send from it.",
			`<span class="badge pass">Verified since 2026-06-01 09:03 UTC</span>`, "Records last checked: <strong>2026-06-01 09:03 UTC</strong>").
		lacks("Not verified", "Found:").
		wantRecords(map[string]string{"verification": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass"})
	b.get("/domains").want(200).has("Verified since 2026-06-01 09:03 UTC").lacks("Not verified")
	d := domainJSON(t, e, path)
	if !d.DNSVerified || d.Compliance != "compliant" {
		t.Errorf("the API does not see the domain verified: %+v", d)
	}

	// DNS down: the check cannot run, says so (once: not again in the
	// status card), and changes nothing.
	srv.Stop()
	e.clock.Advance(time.Minute)
	p = b.follow(b.post(path+"/verify", nil)).want(200)
	p.has(`<p class="error" role="alert">DNS could not be checked; nothing changed`, "Verified since 2026-06-01 09:03 UTC",
		"Records last checked: <strong>2026-06-01 09:03 UTC</strong>").lacks(`<p class="warning">DNS could not be checked`)
	p.wantRecords(map[string]string{"verification": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass"})
	// Afterwards the page keeps saying why the last check did not run.
	b.get(path).want(200).has(`<p class="warning">DNS could not be checked; nothing changed`).lacks(`class="error"`)
}

type domainState struct {
	DNSVerified bool   `json:"dns_verified"`
	Compliance  string `json:"compliance_status"`
}

// domainJSON reads the domain at a dashboard path through the API.
func domainJSON(t *testing.T, e *env, path string) domainState {
	t.Helper()
	id := strings.TrimPrefix(path, "/domains/")
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/accounts/%d/sending_domains/%s", e.srv.URL, e.acme, id), nil)
	req.Header.Set("Api-Token", e.admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var d domainState
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET sending domain %s: %d %v", id, res.StatusCode, err)
	}
	return d
}

// A viewer sees the statuses but cannot re-check or mail the records; a
// re-check posted from another site is refused before it asks DNS.
func TestDomainRecheckIsForAdminsFromThisSite(t *testing.T) {
	srv := testutil.StartDNS(t)
	e := newEnvWith(t, envOptions{dns: srv, deliver: true})
	a := e.signIn("ann@example.com")
	path := a.addDomain("mail.example.com")
	id := strings.TrimPrefix(path, "/domains/")

	v := e.signIn("vic@example.com")
	v.get(path).want(200).has("Not verified: live keys cannot send from it", "an admin of mail.example.com can also re-check them now").
		lacks("Re-check DNS Records", "Email these records to", `action="`+path+`/verify"`).
		wantRecords(map[string]string{"verification": "unchecked", "spf": "unchecked", "dkim": "unchecked", "dmarc": "unchecked"})
	v.post(path+"/verify", nil).want(403).has(`<p class="error" role="alert">You need admin access to domain ` + id + ` to verify it.</p>`).
		wantRecords(map[string]string{"verification": "unchecked"})
	v.post(path+"/send-setup-instructions", url.Values{"email": {"dns@example.org"}}).want(403).
		has("You need admin access to domain " + id + " to send setup instructions for it.")

	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Origin of another site":    {"Origin": {"http://evil.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, action := range []string{"/verify", "/send-setup-instructions"} {
				req, _ := http.NewRequest("POST", e.srv.URL+path+action, strings.NewReader("email=evil%40evil.example"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range h {
					req.Header[k] = v
				}
				a.do(req).want(403).has("came from another site")
			}
		})
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("refused re-checks asked DNS %d times", n)
	}
	if jobs := claimNotices(t, e); len(jobs) != 0 {
		t.Errorf("refused requests mailed the records: %+v", jobs)
	}
	a.get(path).want(200).has("Records last checked: <strong>never</strong>").
		wantRecords(map[string]string{"verification": "unchecked", "spf": "unchecked", "dkim": "unchecked", "dmarc": "unchecked"})
	// The same form from this site does check.
	a.follow(a.post(path+"/verify", nil)).want(200).wantRecords(map[string]string{"verification": "missing"})
}

// claimNotices takes tokend's own queued mail from the outbox.
func claimNotices(t *testing.T, e *env) []tokend.Notice {
	t.Helper()
	jobs, err := e.svc.Outbox().Claim(context.Background(), tokend.NoticeJob, e.clock.Now().Add(time.Hour), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []tokend.Notice
	for _, j := range jobs {
		var n tokend.Notice
		if err := json.Unmarshal(j.Payload, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// "Email these records to" mails them through the outbox, and says so once;
// a bad address is refused on the form, which keeps what was typed.
func TestDomainRecordsByEmail(t *testing.T) {
	e := newEnvWith(t, envOptions{deliver: true})
	b := e.signIn("ann@example.com")
	path := b.addDomain("mail.example.com")
	rec := b.get(path).want(200).dnsRecords()

	b.follow(b.post(path+"/send-setup-instructions", url.Values{"email": {" dns@example.org "}})).want(200).
		has(`<p class="notice" role="status">Sent the DNS records to dns@example.org.</p>`)
	b.get(path).want(200).lacks("Sent the DNS records")
	sent := claimNotices(t, e)
	if len(sent) != 1 || sent[0].Recipient != "dns@example.org" {
		t.Fatalf("queued notices %+v, want one to dns@example.org", sent)
	}
	msg, err := mail.Parse(sent[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if subject := msg.Header.Get("Subject"); subject != "DNS records to publish for mail.example.com" {
		t.Errorf("the mail's subject is %q", subject)
	}
	for _, want := range []string{"Ann Admin (ann@example.com) asked you", rec["verification"].name, rec["verification"].value,
		rec["dkim"].name, rec["dkim"].value, rec["dmarc"].value} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("the mail lacks %q:\n%s", want, msg.Text)
		}
	}

	b.post(path+"/send-setup-instructions", url.Values{"email": {"not an address"}}).want(422).
		has(`<p class="error" role="alert">Email address is invalid.</p>`, `value="not an address"`, "<h1>mail.example.com</h1>")
	b.post(path+"/send-setup-instructions", url.Values{"email": {""}}).want(422).has("Email can&#39;t be blank.")
	if sent := claimNotices(t, e); len(sent) != 0 {
		t.Errorf("refused addresses were mailed: %+v", sent)
	}

	// Without a relay, the form says so.
	e2 := newEnv(t)
	b2 := e2.signIn("ann@example.com")
	path2 := b2.addDomain("mail.example.com")
	b2.post(path2+"/send-setup-instructions", url.Values{"email": {"dns@example.org"}}).want(422).
		has("Email delivery is not configured on this server", `value="dns@example.org"`, "<h1>mail.example.com</h1>")
}

// Without a resolver (web.Options.Domains nil), a re-check says that DNS
// could not be checked.
func TestDomainRecheckWithoutResolver(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	path := b.addDomain("example.com")
	b.follow(b.post(path+"/verify", nil)).want(200).has(`<p class="error" role="alert">DNS could not be checked`, "Not verified").
		wantRecords(map[string]string{"verification": "unchecked", "spf": "unchecked", "dkim": "unchecked", "dmarc": "unchecked"})
}

// Over HTTPS a form's outcome travels in a Secure __Host- cookie, as the
// session does, and the page it leads to clears it.
func TestFlashCookieUnderTLS(t *testing.T) {
	e := newEnv(t)
	tlsSrv := httptest.NewTLSServer(e.srv.Config.Handler)
	defer tlsSrv.Close()
	client := tlsSrv.Client()
	client.Jar, _ = cookiejar.New(nil)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	overTLS := *e
	overTLS.srv = tlsSrv
	b := &browser{e: &overTLS, client: client}
	b.post("/login", url.Values{"email": {"ann@example.com"}, "password": {password}}).want(http.StatusSeeOther)
	path := b.addDomain("example.com")
	p := b.post(path+"/verify", nil).want(http.StatusSeeOther)
	if c := p.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "__Host-tokend_flash=") || !strings.Contains(c, "; Secure") ||
		!strings.Contains(c, "Path=/;") || !strings.Contains(c, "HttpOnly") {
		t.Errorf("flash cookie over TLS: %q", c)
	}
	shown := b.get(p.Header.Get("Location")).want(200).has(`<p class="error" role="alert">DNS could not be checked`)
	if c := shown.Header.Get("Set-Cookie"); !strings.HasPrefix(c, "__Host-tokend_flash=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("the page that shows the flash does not clear it: %q", c)
	}
	b.get(path).want(200).lacks(`class="error"`)
}
