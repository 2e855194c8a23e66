package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/chromedp"

	"github.com/tokend/tokend/e2e/internal/openapitest"
	"github.com/tokend/tokend/internal/testutil"
)

// The browser test drives the dashboard of a real "tokend serve" in headless
// Chromium, as a person does: it finds fields by their labels and buttons,
// links and checkboxes by their accessible names, clicks them with the mouse,
// and checks what the page then says and what the API then answers.
//
// With TOKEND_SCREENSHOTS=1 it also writes the screenshots of
// docs/screenshots; without, it writes one screenshot to a temporary folder,
// to prove that capture works, and leaves the tracked files alone.

const (
	browserTestTimeout = 2 * time.Minute  // the whole browser session
	browserStepTimeout = 20 * time.Second // one step: a click, a page load, a read
)

var dashSetupLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/setup\?code=[A-Za-z0-9_-]+`)

// The value shown in screenshots in place of a real token value.
const blankedToken = "tk_live_••••••••••••••••••••••••••••••••••••"

func TestDashboardInABrowser(t *testing.T) {
	chromium := browserPath(t)
	db := filepath.Join(t.TempDir(), "tokend.db")
	dnsServer := testutil.StartDNS(t) // the DNS that sending domains' records are checked against
	s := tokend.Serve(t, nil, "--db", db, "--dns-resolver", dnsServer.Addr())
	admin := s.WaitToken(t)
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out := s.Stdout.String(); strings.Contains(out, "not show it again") {
			link = dashSetupLink.FindString(out)
		}
	}
	if link == "" || !strings.HasPrefix(link, s.URL+"/setup?code=") {
		t.Fatalf("no setup link for %s after the first admin token; stdout %q", s.URL, s.Stdout.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tokend's log:\n%s", s.Stderr.String())
		}
	})

	d := openDashboard(t, chromium)
	started := time.Now()

	// 1. The setup link: the owner chooses an email, a name and a password,
	// and lands on Settings > API Tokens, signed in.
	d.open(link, http.StatusOK)
	d.wantTitle("Set up your user")
	d.fill("Email", "owner@example.com")
	d.fill("Name", "Olive Owner")
	d.fill("Password", "correct horse battery")
	d.press("button", "Save", http.StatusOK)
	d.wantPath("/settings/api-tokens")
	d.wantTitle("API Tokens")
	d.wantMain("Admin token")
	d.wantText("header", "Olive Owner (owner@example.com)")
	d.wantCurrentNav("Settings > API Tokens")

	// 2. Sign out; the session is over, so the dashboard sends to sign-in;
	// signing in there comes back to the page asked for.
	d.press("button", "Sign out", http.StatusOK)
	d.wantPath("/login")
	d.open(s.URL+"/settings/api-tokens", http.StatusOK)
	d.wantPath("/login")
	if loc := d.location(); !strings.HasSuffix(loc, "/login?next=%2Fsettings%2Fapi-tokens") {
		d.failf("signed out, /settings/api-tokens went to %s, want the sign-in page with next=/settings/api-tokens", loc)
	}
	d.wantTitle("Sign in")
	d.screenshot("sign-in")
	d.fill("Email", "owner@example.com")
	d.fill("Password", "wrong password, surely")
	d.press("button", "Sign in", http.StatusUnauthorized)
	d.wantAlert("Wrong email or password")
	d.fill("Password", "correct horse battery")
	d.press("button", "Sign in", http.StatusOK)
	d.wantPath("/settings/api-tokens")
	d.wantText("header", "Olive Owner (owner@example.com)")

	// 3. A sending domain: its own token is shown once.
	d.press("link", "Sending Domains", http.StatusOK)
	d.wantPath("/domains")
	d.wantMain("No sending domains you can see.")
	d.fill("Domain name", "example.com")
	d.press("button", "Add domain", http.StatusOK)
	d.wantText("main h2", "example.com was added")
	d.wantAlert("Copy the domain's own token now: it will not be shown again.")
	d.wantMain("_domainkey.example.com", "v=spf1")
	domainToken := d.value("#token-value")
	domainTokenName := d.text(`label[for="token-value"]`)
	if !testutil.TokenPattern.MatchString(domainToken) || !regexp.MustCompile(`^example\.com token \d+$`).MatchString(domainTokenName) {
		d.failf("the domain's token is shown as %q named %q", domainToken, domainTokenName)
	}
	code, body := dashAPI(t, s.URL+"/api/whoami", domainToken)
	var domainWho struct {
		Resources []dashPermission
	}
	if code != 200 || json.Unmarshal([]byte(body), &domainWho) != nil || len(domainWho.Resources) != 1 ||
		domainWho.Resources[0].ResourceType != "domain" || domainWho.Resources[0].AccessLevel != 100 {
		t.Fatalf("whoami with the domain's token: %d %s", code, body)
	}
	domainID := domainWho.Resources[0].ResourceID
	d.blankToken()
	d.screenshot("sending-domains")
	d.open(s.URL+"/domains", http.StatusOK)
	d.wantMain("example.com", "Not verified: live keys cannot send from it")
	d.lacksSecret(domainToken)

	// 3b. The domain's page: not verified, and each record's status (new
	// domains are checked in the background too, so a record is unchecked
	// or already missing). Copy a record's value; publish every record in
	// DNS as shown; "Re-check DNS Records" finds them all, and the domain is
	// verified.
	d.press("link", "example.com", http.StatusOK)
	domainPath := fmt.Sprintf("/domains/%d", domainID)
	d.wantPath(domainPath)
	d.wantTitle("example.com")
	d.wantText("main .domain-status", "Not verified: live keys cannot send from it")
	records := d.dnsRecords()
	for _, r := range records {
		if r.Status != "Unchecked" && r.Status != "Missing" {
			d.failf("before anything is published, the %s record shows %q", r.Label, r.Status)
		}
	}
	dkim := records[2]
	if got := d.copied("Copy DKIM record value"); got != dkim.Value {
		d.failf("Copy DKIM record value put %q on the clipboard, want %q", got, dkim.Value)
	}
	for _, r := range records {
		dnsServer.SetTXT(r.Name, []string{r.Value})
	}
	d.press("button", "Re-check DNS Records", http.StatusOK)
	d.wantPath(domainPath)
	d.wantStatus("Every DNS record of example.com passes: it is verified, and live keys can send from it.")
	d.wantText("main .domain-status", "Verified since")
	if text := d.text("main .domain-status"); strings.Contains(text, "Not verified") {
		d.failf("the verified domain's status says %q", text)
	}
	for _, r := range d.dnsRecords() {
		if r.Status != "Pass" {
			d.failf("after publishing, the %s record shows %q, want Pass", r.Label, r.Status)
		}
	}
	d.screenshot("sending-domain")
	code, body = dashAPI(t, fmt.Sprintf("%s/api/accounts/1/sending_domains/%d", s.URL, domainID), domainToken)
	var verified struct {
		DNSVerified bool   `json:"dns_verified"`
		Compliance  string `json:"compliance_status"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &verified) != nil || !verified.DNSVerified || verified.Compliance != "compliant" {
		t.Fatalf("GET the domain after the re-check: %d %s; want it verified", code, body)
	}
	d.press("link", "Back to Sending Domains", http.StatusOK)
	d.wantMain("Verified since")

	// 4. Add Token: a live token, admin of the domain and viewer of the account.
	d.press("link", "Settings > API Tokens", http.StatusOK)
	d.press("link", "Add Token", http.StatusOK)
	d.wantPath("/settings/api-tokens/new")
	d.wantTitle("Add Token")
	const name = "Browser CI"
	d.fill("Name", name)
	d.check("radio", "Live")
	d.check("checkbox", "Admin domain example.com")
	d.check("checkbox", "Viewer account Default")
	d.screenshot("add-token")
	d.press("button", "Save", http.StatusOK)
	d.wantTitle("Token created")
	d.wantAlert("Copy this token now: it will not be shown again.")
	d.wantNamed("button", "Copy")
	value := d.value("#token-value")
	if !strings.HasPrefix(value, "tk_live_") || !testutil.TokenPattern.MatchString(value) {
		d.failf("the new token's value is %q, want a live token", value)
	}
	if got := d.text(`label[for="token-value"]`); got != name {
		d.failf("the value is labelled %q, want %q", got, name)
	}
	who := dashWhoami(t, s.URL, value)
	if who.Name != name || who.Environment != "live" ||
		!samePermissions(who.Resources, []dashPermission{{"domain", domainID, 100}, {"account", 1, 10}}) {
		t.Fatalf("whoami with the new token = %+v, want %q, live, admin of domain %d and viewer of account 1", who, name, domainID)
	}
	d.blankToken()
	d.screenshot("token-created")
	d.step("click the Copy button", chromedp.Click(label("button", "Copy"), named("button", "Copy")),
		chromedp.WaitVisible(label("button", "Copied"), named("button", "Copied")))
	d.open(s.URL+"/settings/api-tokens", http.StatusOK)
	if row := d.row(name); len(row) < 4 || !sameItems(row[2], "Admin domain example.com", "Viewer account Default") || row[3] != "Live" {
		d.failf("the row of %q is %q, want its access and key type", name, row)
	}
	d.lacksSecret(value)

	// 5. Reset: a new value, shown once; the old one keeps working for the
	// grace period, which the page states.
	d.menu(name, "Reset API Token")
	d.wantTitle("Reset API Token")
	d.wantMain(name, "The current value keeps working for 12 hours, then stops.")
	d.press("button", "Confirm", http.StatusOK)
	d.wantTitle("Token reset")
	d.wantAlert("Copy this token now: it will not be shown again.")
	fresh := d.value("#token-value")
	freshName := d.text(`label[for="token-value"]`)
	if !testutil.TokenPattern.MatchString(fresh) || fresh == value || !strings.HasPrefix(freshName, name+" token ") {
		d.failf("reset showed %q named %q", fresh, freshName)
	}
	page := d.text("main")
	until := regexp.MustCompile(`The old token “` + regexp.QuoteMeta(name) + `” keeps working until (\d{4}-\d\d-\d\d \d\d:\d\d UTC), then stops\.`).FindStringSubmatch(page)
	if until == nil {
		d.failf("the reset page does not say when the old value stops working")
	}
	if end, err := time.Parse("2006-01-02 15:04 MST", until[1]); err != nil || end.Sub(time.Now()) < 11*time.Hour || end.Sub(time.Now()) > 13*time.Hour {
		d.failf("the old value stops working at %s, want about 12 hours from now", until[1])
	}
	for _, v := range []string{value, fresh} {
		if code, body := dashAPI(t, s.URL+"/api/whoami", v); code != 200 {
			t.Fatalf("after the reset, whoami with …%s answers %d %s; both values must work in the grace period", v[len(v)-4:], code, body)
		}
	}
	d.blankToken()
	d.screenshot("token-reset")
	d.press("link", "Back to API Tokens", http.StatusOK)
	d.wantMain(name, freshName)
	d.lacksSecret(value, fresh)
	d.openMenu(freshName)
	d.screenshot("api-tokens") // the list, with a row's menu open

	// 6. Edit permissions of the new token: no longer a viewer of the account.
	d.menu(freshName, "Edit permissions")
	d.wantTitle("Edit permissions")
	freshID := regexp.MustCompile(`/settings/api-tokens/(\d+)/edit$`).FindStringSubmatch(d.location())
	if freshID == nil {
		d.failf("the edit page is at %s", d.location())
	}
	if !d.checked("checkbox", "Admin domain example.com") || !d.checked("checkbox", "Viewer account Default") || d.checked("checkbox", "Admin account Default") {
		d.failf("the edit form does not show the token's permissions")
	}
	d.check("checkbox", "Viewer account Default") // a click unticks it
	if d.checked("checkbox", "Viewer account Default") {
		d.failf("the Viewer account Default checkbox is still ticked after a click")
	}
	d.press("button", "Save", http.StatusOK)
	d.wantPath("/settings/api-tokens")
	d.wantStatus("The token's permissions were saved.")
	code, body = call(t, "GET", s.URL+"/api/api_tokens/"+freshID[1], admin, "")
	var edited struct {
		Name      string
		Resources []dashPermission
	}
	if code != 200 || json.Unmarshal([]byte(body), &edited) != nil || edited.Name != freshName ||
		!samePermissions(edited.Resources, []dashPermission{{"domain", domainID, 100}}) {
		t.Fatalf("GET /api/api_tokens/%s after the edit: %d %s; want only admin of domain %d", freshID[1], code, body, domainID)
	}
	if row := d.row(freshName); len(row) < 3 || row[2] != "Admin domain example.com" {
		d.failf("after the edit, the row of %q is %q", freshName, row)
	}
	if who := dashWhoami(t, s.URL, fresh); !samePermissions(who.Resources, []dashPermission{{"domain", domainID, 100}}) {
		t.Fatalf("whoami with the edited token still has %+v", who.Resources)
	}

	// 7. Delete the new token: it stops working at once.
	d.menu(freshName, "Delete token")
	d.wantTitle("Delete token")
	d.wantMain(freshName, "The token stops working at once, everywhere.")
	d.press("button", "Confirm", http.StatusOK)
	d.wantPath("/settings/api-tokens")
	d.wantStatus("The token was deleted: it no longer works.")
	if d.hasNamed("button", "Actions for "+freshName) {
		d.failf("the deleted token %q is still listed", freshName)
	}
	if code, body := dashAPI(t, s.URL+"/api/whoami", fresh); code != 401 {
		t.Fatalf("whoami with the deleted token answers %d %s, want 401", code, body)
	}

	// 8. The domain's last admin token cannot be deleted. The account's
	// admin token covers the domain too, so delete it first.
	d.menu("Admin token", "Delete token")
	d.press("button", "Confirm", http.StatusOK)
	d.wantStatus("The token was deleted: it no longer works.")
	if code, _ := dashAPI(t, s.URL+"/api/whoami", admin); code != 401 {
		t.Fatalf("whoami with the deleted admin token answers %d, want 401", code)
	}
	d.menu(domainTokenName, "Delete token")
	d.wantTitle("Delete token")
	d.press("button", "Confirm", http.StatusForbidden)
	d.wantAlert("Cannot delete the last active API token with admin access to domain example.com")
	d.wantNamed("button", "Actions for "+domainTokenName)
	d.screenshot("delete-refused")
	d.open(s.URL+"/settings/api-tokens", http.StatusOK)
	d.wantNamed("button", "Actions for "+domainTokenName)
	if code, body := dashAPI(t, s.URL+"/api/whoami", domainToken); code != 200 {
		t.Fatalf("the domain's token stopped working after a refused delete: %d %s", code, body)
	}

	d.finish()
	t.Logf("browser session took %v", time.Since(started).Round(time.Millisecond))
}

// browserPath finds Chromium, which scripts/test installs.
func browserPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Fatal("Chromium is missing: scripts/test installs it (apt-get install -y chromium); " +
		"to run this test by hand, install Debian's chromium package")
	return ""
}

// dashboard is one browser tab on the dashboard.
type dashboard struct {
	t     *testing.T
	ctx   context.Context // the tab; every step derives its own bounded context from it
	shots string          // where screenshots go
	all   bool            // every screenshot (TOKEND_SCREENSHOTS=1), or just the first
	taken []string

	mu       sync.Mutex
	problems []string // exceptions and CSP violations the pages reported
}

func openDashboard(t *testing.T, chromium string) *dashboard {
	t.Helper()
	d := &dashboard{t: t, shots: t.TempDir()}
	if os.Getenv("TOKEND_SCREENSHOTS") == "1" {
		d.all = true
		d.shots = filepath.Join(root, "docs", "screenshots")
		if err := os.MkdirAll(d.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	profile := t.TempDir() // made before the cleanups below, so removed after the browser exits
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	t.Cleanup(cancel)
	var browserLog bytes.Buffer
	var logMu sync.Mutex
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			if browserLog.Len() < 64<<10 {
				browserLog.Write(p)
			}
			return len(p), nil
		})),
	)
	t.Cleanup(allocCancel) // runs before the profile's removal: it waits for the browser to exit
	tab, tabCancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		tabCancel()
		if t.Failed() {
			logMu.Lock()
			t.Logf("Chromium's output:\n%s", browserLog.String())
			logMu.Unlock()
		}
	})
	d.ctx = tab
	// The first run starts the browser; its life is bounded by ctx.
	console := chromedp.Console(tab)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start Chromium (%s): %v\n%s", chromium, err, browserLog.String())
	}
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
				d.mu.Lock()
				d.problems = append(d.problems, m.String()+" ("+m.URL+")")
				d.mu.Unlock()
			}
		}
	}()
	return d
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// step runs actions within the step timeout, failing the test with the page's
// text if they do not complete.
func (d *dashboard) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		d.failf("%s: %v", what, explain(err))
	}
}

func runStep[T any](d *dashboard, what string, a chromedp.Action[T]) T {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		d.failf("%s: %v", what, explain(err))
	}
	return v
}

// explain words a step's timeout: a query waits until its element is there.
func explain(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("not done within %v: no such element, not visible, or no page load (%w)", browserStepTimeout, err)
	}
	return err
}

// failf fails the test, saying where the browser is and what the page says.
func (d *dashboard) failf(format string, args ...any) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Location())
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").innerText : document.body.innerText`))
	if err != nil {
		text = "(could not read the page: " + err.Error() + ")"
	}
	d.t.Fatalf("%s\nat %s, the page says:\n%s", fmt.Sprintf(format, args...), where, text)
}

// named selects elements by their computed accessibility role and accessible
// name, as assistive technology sees them, leaving out nodes that are not
// rendered (the items of a closed menu, say).
func named(role, name string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, n *chromedp.Node) ([]cdp.NodeID, error) {
		res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{NodeID: n.NodeID, Role: role, AccessibleName: name})
		if err != nil {
			return nil, err
		}
		var backend []cdp.BackendNodeID
		for _, a := range res.Nodes {
			if !a.Ignored && a.BackendDOMNodeID != 0 {
				backend = append(backend, a.BackendDOMNodeID)
			}
		}
		if len(backend) == 0 {
			return []cdp.NodeID{}, nil
		}
		ids, err := cdp.Call(ctx, t, dom.PushNodesByBackendIDsToFrontend, dom.PushNodesByBackendIDsToFrontendParams{BackendNodeIDs: backend})
		return ids.NodeIDs, err
	})
}

func label(role, name string) string { return role + " " + strconv.Quote(name) }

// open loads addr and checks the status of the page it ends on.
func (d *dashboard) open(addr string, status int) {
	d.t.Helper()
	res := runStep(d, "open "+addr, chromedp.NavigateResponse(addr))
	if res == nil || res.Status != int64(status) {
		got := int64(0)
		if res != nil {
			got = res.Status
		}
		d.failf("%s answered %d, want %d", addr, got, status)
	}
}

// navigate clicks and waits for the page it leads to, checking its status.
func (d *dashboard) navigate(what string, status int, click chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, browserStepTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, click)
	if err != nil {
		d.failf("%s: %v", what, explain(err))
	}
	if res == nil || res.Status != int64(status) {
		got := int64(0)
		if res != nil {
			got = res.Status
		}
		d.failf("%s led to a page with status %d, want %d", what, got, status)
	}
}

// press clicks the control with this role and accessible name and waits for
// the page it submits to.
func (d *dashboard) press(role, name string, status int) {
	d.t.Helper()
	d.navigate("click "+label(role, name), status, chromedp.Click(label(role, name), named(role, name)))
}

// fill types into the text field labelled name, after clearing it.
func (d *dashboard) fill(name, text string) {
	d.t.Helper()
	id := d.fieldFor(name)
	field := chromedp.CSS(fmt.Sprintf(`input[id="%s"]`, id))
	// chromedp's SetValue cannot set "" (v0.23.0 reports "could not set value").
	d.step("fill "+strconv.Quote(name),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%s).value = ""`, strconv.Quote(id))),
		chromedp.SendKeys(field, text))
	if got := runStep(d, "read "+strconv.Quote(name), chromedp.Value(field)); got != text {
		d.failf("the field %q holds %q after typing %q", name, got, text)
	}
}

// fieldFor returns the id of the input that the <label> with this text is for,
// and checks that the input's accessible name is the label's text.
func (d *dashboard) fieldFor(name string) string {
	d.t.Helper()
	id := runStep(d, "find the label "+strconv.Quote(name), chromedp.PollFunction[string](`(name) => {
		for (const l of document.querySelectorAll("label[for]")) {
			if (l.textContent.trim() === name && document.getElementById(l.htmlFor)) return l.htmlFor;
		}
		return "";
	}`, chromedp.WithPollingArgs(name), chromedp.WithPollingTimeout(browserStepTimeout)))
	if id == "" {
		d.failf("no field labelled %q", name)
	}
	nodes := runStep(d, "the field labelled "+strconv.Quote(name), chromedp.Nodes(chromedp.CSS("#"+id)))
	ids := runStep(d, "the accessible name of #"+id, chromedp.QueryNodeIDs(label("textbox", name), named("textbox", name)))
	if !slices.Contains(ids, nodes[0].NodeID) {
		d.failf("the field #%s labelled %q does not have the accessible name %q", id, name, name)
	}
	return id
}

// check clicks the checkbox or radio button with this accessible name, and
// checks the result for a radio button (a checkbox may be unticked on purpose).
func (d *dashboard) check(role, name string) {
	d.t.Helper()
	d.step("click "+label(role, name), chromedp.Click(label(role, name), named(role, name)))
	if role == "radio" && !d.checked(role, name) {
		d.failf("the radio button %q is not selected after a click", name)
	}
}

func (d *dashboard) checked(role, name string) bool {
	d.t.Helper()
	return runStep(d, "read "+label(role, name), chromedp.JavascriptAttribute[bool](label(role, name), "checked", named(role, name)))
}

// hasNamed reports whether the page now has a rendered element with this
// role and name, without waiting for one.
func (d *dashboard) hasNamed(role, name string) bool {
	d.t.Helper()
	ids := runStep(d, "look for "+label(role, name), chromedp.QueryNodeIDs(label(role, name), named(role, name), chromedp.AtLeast(0)))
	return len(ids) > 0
}

func (d *dashboard) wantNamed(role, name string) {
	d.t.Helper()
	if !d.hasNamed(role, name) {
		d.failf("the page has no %s named %q", role, name)
	}
}

// openMenu opens the actions menu of a token's row, unless it is open.
func (d *dashboard) openMenu(token string) {
	d.t.Helper()
	summary := "Actions for " + token
	isOpen := chromedp.Evaluate[bool](fmt.Sprintf(`!!document.querySelector(%s)`,
		strconv.Quote(`details.menu[open] > summary[aria-label="`+summary+`"]`)))
	if runStep(d, "read whether the menu is open", isOpen) {
		return
	}
	d.step("open the menu "+strconv.Quote(summary), chromedp.Click(label("button", summary), named("button", summary)))
	if !runStep(d, "read whether the menu is open", isOpen) {
		d.failf("a click on %q did not open its menu", summary)
	}
}

// menu opens a token's actions menu and follows one of its items.
func (d *dashboard) menu(token, item string) {
	d.t.Helper()
	d.openMenu(token)
	nodes := runStep(d, "the menu of "+token, chromedp.Nodes(chromedp.CSS("details.menu[open]")))
	d.navigate("menu item "+strconv.Quote(item)+" of "+token, http.StatusOK,
		chromedp.Click(label("menuitem", item), named("menuitem", item), chromedp.FromNode(nodes[0])))
}

// shownRecord is a DNS record as a sending domain's page shows it.
type shownRecord struct {
	Label, Status, Name, Value string
}

// dnsRecords reads the DNS records table of a sending domain's page, and
// checks that it lists the ownership record first.
func (d *dashboard) dnsRecords() []shownRecord {
	d.t.Helper()
	records := runStep(d, "read the DNS records", chromedp.Evaluate[[]shownRecord](`Array.from(document.querySelectorAll("main table.records tbody tr"), tr => ({
		Label: tr.cells[0].innerText.trim(),
		Status: tr.querySelector(".badge").innerText.trim(),
		Name: tr.querySelector('code[id$="-name"]').textContent,
		Value: tr.querySelector('code[id$="-value"]').textContent,
	}))`))
	var labels []string
	for _, r := range records {
		labels = append(labels, r.Label)
	}
	if strings.Join(labels, ",") != "Verification,SPF,DKIM,DMARC" {
		d.failf("the DNS records are %q, want Verification, SPF, DKIM and DMARC, in that order", labels)
	}
	return records
}

// copied clicks the Copy button with this accessible name, waits for it to
// say it copied, and returns what is then on the clipboard.
func (d *dashboard) copied(button string) string {
	d.t.Helper()
	u, err := url.Parse(d.location())
	if err != nil {
		d.failf("%v", err)
	}
	origin := u.Scheme + "://" + u.Host
	d.step("let the page use the clipboard", func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := cdp.Call(ctx, chromedp.FromContext(ctx).Browser, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: origin}); err != nil {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, nil
	})
	done := "Copied" + strings.TrimPrefix(button, "Copy")
	d.step("click "+label("button", button), chromedp.Click(label("button", button), named("button", button)),
		chromedp.WaitVisible(label("button", done), named("button", done)))
	return runStep(d, "read the clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
}

// row returns the cells of the token list's row for the token with this name.
func (d *dashboard) row(token string) []string {
	d.t.Helper()
	return runStep(d, "read the row of "+token, chromedp.Evaluate[[]string](fmt.Sprintf(`(() => {
		for (const tr of document.querySelectorAll("main tbody tr")) {
			const cells = Array.from(tr.cells, c => c.innerText.trim());
			if (cells.length > 1 && cells[0].replace(/ …\w{4}$/, "") === %s) return cells;
		}
		return [];
	})()`, strconv.Quote(token))))
}

// sameItems reports whether list, a comma-separated list, has these items in any order.
func sameItems(list string, items ...string) bool {
	got := strings.Split(list, ", ")
	slices.Sort(got)
	items = slices.Clone(items)
	slices.Sort(items)
	return slices.Equal(got, items)
}

func (d *dashboard) location() string {
	d.t.Helper()
	return runStep(d, "read the location", chromedp.Location())
}

func (d *dashboard) wantPath(path string) {
	d.t.Helper()
	loc := d.location()
	if u, err := url.Parse(loc); err != nil || u.Path != path {
		d.failf("at %s, want %s", loc, path)
	}
}

func (d *dashboard) text(css string) string {
	d.t.Helper()
	return strings.TrimSpace(runStep(d, "read "+css, chromedp.Text(chromedp.CSS(css))))
}

func (d *dashboard) value(css string) string {
	d.t.Helper()
	return runStep(d, "read the value of "+css, chromedp.Value(chromedp.CSS(css)))
}

func (d *dashboard) wantText(css string, parts ...string) {
	d.t.Helper()
	text := d.text(css)
	for _, p := range parts {
		if !strings.Contains(text, p) {
			d.failf("%s lacks %q: %q", css, p, text)
		}
	}
}

func (d *dashboard) wantMain(parts ...string) { d.t.Helper(); d.wantText("main", parts...) }

func (d *dashboard) wantTitle(title string) {
	d.t.Helper()
	if h1 := d.text("main h1"); h1 != title {
		d.failf("the page's heading is %q, want %q", h1, title)
	}
	if got := runStep(d, "read the title", chromedp.Title()); got != title+" · tokend" {
		d.failf("the page's title is %q, want %q", got, title+" · tokend")
	}
}

func (d *dashboard) wantAlert(text string)  { d.t.Helper(); d.wantText(`main [role="alert"]`, text) }
func (d *dashboard) wantStatus(text string) { d.t.Helper(); d.wantText(`main [role="status"]`, text) }

// wantCurrentNav checks that the navigation marks this link as the current page.
func (d *dashboard) wantCurrentNav(name string) {
	d.t.Helper()
	if got := d.text(`nav[aria-label="Main"] a[aria-current="page"]`); got != name {
		d.failf("the current page in the navigation is %q, want %q", got, name)
	}
}

// lacksSecret checks that no value appears anywhere in the page: its markup,
// its text, or the values of its fields.
func (d *dashboard) lacksSecret(values ...string) {
	d.t.Helper()
	page := runStep(d, "read the page", chromedp.Evaluate[string](`document.documentElement.outerHTML + "\n" + document.body.innerText + "\n" +
		Array.from(document.querySelectorAll("input, textarea")).map(e => e.value).join("\n")`))
	for _, v := range values {
		if strings.Contains(page, v) || strings.Contains(page, v[8:]) {
			d.failf("the page shows the token value …%s again", v[len(v)-4:])
		}
	}
	if m := testutil.TokenPattern.FindString(page); m != "" {
		d.failf("the page shows a token value …%s", m[len(m)-4:])
	}
}

// blankToken replaces the value shown once, so that screenshots keep no secret.
func (d *dashboard) blankToken() {
	d.t.Helper()
	d.step("blank the token value", chromedp.SetValue(chromedp.ID("token-value"), blankedToken))
}

// screenshot captures the page as docs/screenshots/<name>.png with
// TOKEND_SCREENSHOTS=1; otherwise only the first, into a temporary folder.
func (d *dashboard) screenshot(name string) {
	d.t.Helper()
	if !d.all && len(d.taken) > 0 {
		return
	}
	// Nothing focused or hovered: the picture shows the page as it is.
	d.step("blur", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`),
		chromedp.MouseEvent("mouseMoved", 0, 0))
	buf := runStep(d, "screenshot "+name, chromedp.FullScreenshot(100))
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		d.t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() < 400 {
		d.t.Fatalf("screenshot %s is %dx%d, want 1280 wide", name, b.Dx(), b.Dy())
	}
	if blankImage(img) {
		d.failf("screenshot %s is blank", name)
	}
	path := filepath.Join(d.shots, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.taken = append(d.taken, path)
}

// blankImage reports whether nearly every pixel has the color of the first.
func blankImage(img image.Image) bool {
	b := img.Bounds()
	r0, g0, b0, _ := img.At(b.Min.X, b.Min.Y).RGBA()
	other := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 {
				other++
			}
		}
	}
	return other < 200
}

// finish checks what the whole session left: no script errors or CSP
// violations, and the screenshots.
func (d *dashboard) finish() {
	d.t.Helper()
	d.step("settle", chromedp.Sleep(100*time.Millisecond))
	d.mu.Lock()
	problems := slices.Clone(d.problems)
	d.mu.Unlock()
	if len(problems) > 0 {
		d.t.Errorf("the pages reported problems:\n%s", strings.Join(problems, "\n"))
	}
	if len(d.taken) == 0 {
		d.t.Error("no screenshot was taken")
	}
	for _, p := range d.taken {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			d.t.Errorf("screenshot %s: %v", p, err)
		} else if d.all {
			d.t.Logf("wrote %s (%d KB)", p, fi.Size()/1024)
		}
	}
}

type dashPermission struct {
	ResourceType string `json:"resource_type"`
	ResourceID   int64  `json:"resource_id"`
	AccessLevel  int    `json:"access_level"`
}

// samePermissions compares two lists of permissions in any order.
func samePermissions(a, b []dashPermission) bool {
	key := func(p dashPermission) string { return fmt.Sprint(p.ResourceType, p.ResourceID, p.AccessLevel) }
	sorted := func(ps []dashPermission) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = key(p)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(sorted(a), sorted(b))
}

type dashWho struct {
	ID          int64
	Name        string
	Environment string
	Resources   []dashPermission
}

func dashWhoami(t *testing.T, base, token string) dashWho {
	t.Helper()
	code, body := dashAPI(t, base+"/api/whoami", token)
	var w dashWho
	if code != 200 {
		t.Fatalf("whoami with …%s: %d %s", token[len(token)-4:], code, body)
	}
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatalf("whoami: %v in %s", err, body)
	}
	return w
}

// dashAPI calls the API with an Api-Token header, as the README's examples do,
// and checks the answer against the OpenAPI document.
func dashAPI(t *testing.T, addr, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Api-Token", token)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	openapitest.Check(t, "GET", req.URL.RequestURI(), nil, res.StatusCode, res.Header, b)
	return res.StatusCode, string(b)
}
