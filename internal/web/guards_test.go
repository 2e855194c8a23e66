package web_test

import (
	"fmt"
	"net/url"
	"regexp"
	"testing"
	"time"
)

// An account admin sets a token's guards on Add Token and changes them on
// its edit page; the list says them in a few words, the API enforces them,
// and a bad value is refused on the form, which keeps what was typed.
func TestTokenGuardsInTheDashboard(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	b.get("/settings/api-tokens/new").want(200).has(`<legend>Guards (optional)</legend>`,
		`<textarea id="allowed_ips" name="allowed_ips"`, `<input id="rate_limit" name="rate_limit"`, `<input id="quota" name="quota"`)

	form := url.Values{"name": {"office"}, "environment": {"live"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)}, "guards": {"1"},
		"allowed_ips": {"203.0.113.0/24\r\n2001:db8::/32"}, "rate_limit": {"2"}, "rate_per": {"3600"},
		"quota": {"1000"}, "quota_per": {"month"}, "quota_unit": {"emails"}}
	p := b.post("/settings/api-tokens", form).want(200).has("Token created")
	value := tokenValue.FindString(p.Body)
	if got := e.apiStatus("GET", "/api/whoami", value); got != 403 {
		t.Errorf("a token allowed from 203.0.113.0/24 and 2001:db8::/32, used from 127.0.0.1: %d, want 403", got)
	}
	list := b.get("/settings/api-tokens").want(200).has("from 2 networks; 2 per hour; 1000 of 1000 emails left this month")
	id := regexp.MustCompile(`href="/settings/api-tokens/(\d+)/edit" role="menuitem"|role="menuitem" href="/settings/api-tokens/(\d+)/edit"`).FindAllStringSubmatch(list.Body, -1)
	if len(id) == 0 {
		t.Fatalf("no edit link in the list:\n%s", list.Body)
	}
	edit := fmt.Sprintf("/settings/api-tokens/%s", id[len(id)-1][2])
	b.get(edit+"/edit").want(200).has("203.0.113.0/24\n2001:db8::/32</textarea>", `name="rate_limit" type="number" min="1" inputmode="numeric" value="2"`,
		`<option value="3600" selected>hour</option>`, `<option value="emails" selected>emails</option>`)

	// Allowing 127.0.0.1 lets it through; a bad network is refused and kept.
	b.post(edit, url.Values{"name": {"office"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)}, "guards": {"1"},
		"allowed_ips": {"10.0.0.1/8"}, "rate_limit": {""}, "quota": {""}}).
		want(422).has("Allowed IPs: &#34;10.0.0.1/8&#34; has host bits set", ">10.0.0.1/8</textarea>")
	b.post(edit, url.Values{"name": {"office"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)}, "guards": {"1"},
		"allowed_ips": {"127.0.0.1"}, "rate_limit": {""}, "quota": {""}}).want(303)
	if got := e.apiStatus("GET", "/api/whoami", value); got != 200 {
		t.Errorf("after allowing 127.0.0.1: %d, want 200", got)
	}
	b.get("/settings/api-tokens").want(200).has("from 127.0.0.1").lacks("per hour", "emails left")
}

// Tokens that expire within the account's furthest warning (7 days by
// default) show in a banner on the token list, soonest first; the others,
// and replaced tokens, do not.
func TestExpiringTokensBanner(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	perm := fmt.Sprintf("account:%d:10", e.acme)
	b.get("/settings/api-tokens").want(200).lacks("expires soon", "expire soon")
	for _, tt := range []struct{ name, on string }{{"in six days", "2026-06-06"}, {"tomorrow", "2026-06-01"}, {"in a month", "2026-07-01"}} {
		b.post("/settings/api-tokens", url.Values{"name": {tt.name}, "perm": {perm}, "expires_on": {tt.on}}).want(200)
	}
	page := b.get("/settings/api-tokens").want(200).has("2 tokens expire soon.", "<li>tomorrow", "<li>in six days")
	if i, j := regexp.MustCompile(`<li>tomorrow`).FindStringIndex(page.Body), regexp.MustCompile(`<li>in six days`).FindStringIndex(page.Body); i[0] > j[0] {
		t.Error("the banner does not list the soonest first")
	}
	if regexp.MustCompile(`<li>in a month`).MatchString(page.Body) {
		t.Error("the banner lists a token a month away")
	}
}

// Unused tokens: the page lists the tokens that made no request in the
// days asked (90 by default), each with its Delete, which removes it.
func TestUnusedTokensPage(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	perm := fmt.Sprintf("account:%d:10", e.acme)
	p := b.post("/settings/api-tokens", url.Values{"name": {"forgotten"}, "perm": {perm}}).want(200)
	value := tokenValue.FindString(p.Body)
	b.post("/settings/api-tokens", url.Values{"name": {"busy"}, "perm": {perm}}).want(200)
	b.get("/settings/api-tokens").want(200).has(`<a href="/settings/api-tokens/unused">Unused tokens</a>`)
	b.get("/settings/api-tokens/unused").want(200).has("No token you can see has gone 90 days without a request.")
	e.clock.Advance(60 * 24 * time.Hour)
	if e.apiStatus("GET", "/api/whoami", value) != 200 {
		t.Fatal("the token does not work")
	}
	e.clock.Advance(40 * 24 * time.Hour)
	b = e.signIn("ann@example.com") // the session has long expired
	page := b.get("/settings/api-tokens/unused").want(200).has("busy", "never").lacks("forgotten")
	id := regexp.MustCompile(`busy <span[^<]*</span></td>[\s\S]*?href="/settings/api-tokens/(\d+)/delete">Delete token`).FindStringSubmatch(page.Body)
	if id == nil {
		t.Fatalf("no Delete on the page:\n%s", page.Body)
	}
	b.get("/settings/api-tokens/unused?days=30").want(200).has("busy", "forgotten")
	b.get("/settings/api-tokens/unused?days=0").want(422)
	b.post("/settings/api-tokens/"+id[1]+"/delete", nil).want(303)
	b.get("/settings/api-tokens/unused").want(200).lacks("busy")
}
