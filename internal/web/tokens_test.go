package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"
)

// whoamiExpiry asks the API when the token value expires ("" for never).
func (e *env) whoamiExpiry(value string) string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/whoami", nil)
	req.Header.Set("Api-Token", value)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var who struct {
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := json.NewDecoder(res.Body).Decode(&who); err != nil || res.StatusCode != 200 {
		e.t.Fatalf("whoami: %d %v", res.StatusCode, err)
	}
	if who.ExpiresAt == nil {
		return ""
	}
	return who.ExpiresAt.UTC().Format(time.RFC3339)
}

// Add Token takes an optional expiry, a date with an optional time of day in
// UTC, and the API sees it as the token's expires_at; an expiry already past
// or not a date is refused on the form, which keeps what was typed, and
// creates nothing. The clock reads 2026-06-01 09:00 UTC.
func TestAddTokenWithExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	b.get("/settings/api-tokens/new").want(200).has(`<label for="expires_on">Expires on</label>`,
		`<input id="expires_on" type="date" name="expires_on" min="2026-06-01" value="">`, `<input id="expires_time" type="time" name="expires_time" value="">`,
		"Times are UTC", "A date alone: the token works until the end of that day. Empty: the token never expires.")
	for _, tt := range []struct {
		name     string
		on, at   string
		shown    string // on the page that shows the new value
		expires  string // as the API reports it; "" never
		refusal  string // the form's message, when refused
		refusing int
	}{
		{name: "none: never expires", shown: "Expires: <strong>never</strong>"},
		{name: "a date alone: the end of that day", on: "2026-06-10", shown: "Expires: <strong>2026-06-11 00:00 UTC</strong>", expires: "2026-06-11T00:00:00Z"},
		{name: "today alone: tonight", on: "2026-06-01", shown: "Expires: <strong>2026-06-02 00:00 UTC</strong>", expires: "2026-06-02T00:00:00Z"},
		{name: "a date and a time", on: "2026-06-10", at: "18:30", shown: "Expires: <strong>2026-06-10 18:30 UTC</strong>", expires: "2026-06-10T18:30:00Z"},
		{name: "a time with seconds", on: "2026-06-10", at: "18:30:15", expires: "2026-06-10T18:30:15Z"},
		{name: "a past date", on: "2026-05-31", refusing: 422, refusal: "Expiry 2026-05-31 is in the past: choose today or a later date."},
		{name: "earlier today", on: "2026-06-01", at: "08:59", refusing: 422,
			refusal: "Expiry 2026-06-01 08:59 UTC is in the past: choose a later date or time."},
		{name: "now", on: "2026-06-01", at: "09:00", refusing: 422, refusal: "Expiry 2026-06-01 09:00 UTC is in the past"},
		{name: "a time without a date", at: "18:30", refusing: 422, refusal: "Expiry needs a date as well as a time."},
		{name: "not a date", on: "next week", refusing: 422, refusal: "Expiry must be a date such as 2030-01-31."},
		{name: "not a time", on: "2026-06-10", at: "6pm", refusing: 422, refusal: "Expiry time must be a time of day such as 18:30."},
		{name: "too far ahead", on: "2031-06-02", refusing: 422, refusal: "Expiry must be at most 5 years from now."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "expiry " + tt.name
			p := b.post("/settings/api-tokens", url.Values{"name": {name}, "environment": {"live"},
				"perm": {fmt.Sprintf("account:%d:10", e.acme)}, "expires_on": {tt.on}, "expires_time": {tt.at}})
			if tt.refusing != 0 {
				p.want(tt.refusing).has(`<p class="error" role="alert">`+tt.refusal, `value="`+tt.on+`"`, `value="`+tt.at+`"`, `value="`+name+`"`)
				if tokenValue.MatchString(p.Body) {
					t.Fatal("a refused form shows a token value")
				}
				b.get("/settings/api-tokens").want(200).lacks(name)
				return
			}
			p.want(200).has("Token created", tt.shown)
			value := tokenValue.FindString(p.Body)
			if got := e.whoamiExpiry(value); got != tt.expires {
				t.Errorf("the API says the token expires at %q, want %q", got, tt.expires)
			}
		})
	}
	// A token created to expire stops working then.
	p := b.post("/settings/api-tokens", url.Values{"name": {"short-lived"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)},
		"expires_on": {"2026-06-01"}, "expires_time": {"10:00"}}).want(200)
	value := tokenValue.FindString(p.Body)
	if e.apiStatus("GET", "/api/whoami", value) != 200 {
		t.Fatal("the token does not work before its expiry")
	}
	e.clock.Advance(time.Hour)
	if got := e.apiStatus("GET", "/api/whoami", value); got != 401 {
		t.Errorf("at its expiry the token answers %d, want 401", got)
	}
}

// With a default lifetime (serve --default-ttl), an empty expiry takes it, as
// an API request without expires_at does, and the form says so.
func TestAddTokenDefaultExpiry(t *testing.T) {
	e := newEnvWith(t, envOptions{defaultTTL: 90 * 24 * time.Hour})
	b := e.signIn("ann@example.com")
	b.get("/settings/api-tokens/new").want(200).has("Empty: the server&#39;s default, 90 days after it is created.")
	p := b.post("/settings/api-tokens", url.Values{"name": {"default"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)}}).
		want(200).has("Expires: <strong>2026-08-30 09:00 UTC</strong>")
	if got := e.whoamiExpiry(tokenValue.FindString(p.Body)); got != "2026-08-30T09:00:00Z" {
		t.Errorf("the API says the token expires at %q, want the default 90 days", got)
	}
}

// A token already reset shows as replaced, with when it stops working, and
// offers no reset (which would fail); its replacement does. The same holds
// on its domain's page and on the reset page itself, and for a token that
// expired.
func TestResetTokenShowsReplaced(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("ann@example.com")
	path := b.addDomain("example.com")
	list := b.get("/settings/api-tokens").want(200)
	m := regexp.MustCompile(`href="/settings/api-tokens/(\d+)/delete"`).FindAllStringSubmatch(list.Body, -1)
	old := m[len(m)-1][1] // the domain's own token, the newest
	b.get(path).want(200).has(`href="/settings/api-tokens/` + old + `/reset"`)

	b.post("/settings/api-tokens/"+old+"/reset", nil).want(200).has("keeps working until <strong>2026-06-01 21:00 UTC</strong>")
	list = b.get("/settings/api-tokens").want(200).has(`<span class="badge unchecked">Replaced</span> works until 2026-06-01 21:00 UTC`).
		lacks(`href="/settings/api-tokens/`+old+`/reset"`).
		has(`href="/settings/api-tokens/`+old+`/edit"`, `href="/settings/api-tokens/`+old+`/delete"`)
	m = regexp.MustCompile(`href="/settings/api-tokens/(\d+)/reset"`).FindAllStringSubmatch(list.Body, -1)
	if fresh := m[len(m)-1][1]; fresh == old {
		t.Fatalf("the replaced token %s is still offered a reset", old)
	}
	b.get(path).want(200).has("Replaced", "works until 2026-06-01 21:00 UTC").lacks(`href="/settings/api-tokens/` + old + `/reset"`)

	// Its reset page says why there is nothing to confirm.
	b.get("/settings/api-tokens/"+old+"/reset").want(200).
		has("This token was already reset on 2026-06-01 09:00 UTC: a new token replaced it. It keeps working until 2026-06-01 21:00 UTC, then stops.",
			`<a href="/settings/api-tokens">Back to API Tokens</a>`).
		lacks(">Confirm</button>", `action="/settings/api-tokens/`+old+`/reset"`)
	// A reset posted anyway (a page left open) is refused in the same words.
	b.post("/settings/api-tokens/"+old+"/reset", nil).want(422).has("It keeps working until 2026-06-01 21:00 UTC, then stops.")

	// After the grace period, it says it stopped.
	e.clock.Advance(13 * time.Hour)
	b = e.signIn("ann@example.com") // the session was idle too long
	b.get("/settings/api-tokens").want(200).has("Replaced; stopped working 2026-06-01 21:00 UTC").lacks(`href="/settings/api-tokens/` + old + `/reset"`)
	b.get("/settings/api-tokens/" + old + "/reset").want(200).has("it stopped working at 2026-06-01 21:00 UTC.").lacks(">Confirm</button>")

	// A token that expired cannot be reset either.
	b.post("/settings/api-tokens", url.Values{"name": {"brief"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)},
		"expires_on": {"2026-06-01"}, "expires_time": {"23:00"}}).want(200)
	list = b.get("/settings/api-tokens").want(200)
	m = regexp.MustCompile(`href="/settings/api-tokens/(\d+)/delete"`).FindAllStringSubmatch(list.Body, -1)
	brief := m[len(m)-1][1]
	list.has(`href="/settings/api-tokens/` + brief + `/reset"`)
	e.clock.Advance(2 * time.Hour)
	b.get("/settings/api-tokens").want(200).has("Expired 2026-06-01 23:00 UTC").lacks(`href="/settings/api-tokens/` + brief + `/reset"`)
	b.get("/settings/api-tokens/" + brief + "/reset").want(200).has("This token expired at 2026-06-01 23:00 UTC").lacks(">Confirm</button>")
}

// A viewer cannot grant anything: Add Token shows what they may do, with
// no permission grid and no Save; an admin gets the whole form.
func TestViewerSeesWhatTheyMayDo(t *testing.T) {
	e := newEnv(t)
	v := e.signIn("vic@example.com")
	v.get("/settings/api-tokens/new").want(200).
		has("You have viewer access to account Acme", "Only an admin can add tokens or change what they may do.",
			`<a href="/settings/api-tokens">Back to API Tokens</a>`).
		lacks(`type="checkbox"`, ">Save</button>", "<form method=\"post\" action=\"/settings/api-tokens\"", `name="expires_on"`)
	// A form posted anyway is refused by the rules, and shows the same.
	v.post("/settings/api-tokens", url.Values{"name": {"x"}, "perm": {fmt.Sprintf("account:%d:10", e.acme)}}).want(403).
		has("You need admin access to account", "You have viewer access to account Acme").lacks(">Save</button>")

	// The audit log, for account admins only, is not offered either.
	v.get("/projects").want(200).lacks(`href="/audit-log"`)

	a := e.signIn("ann@example.com")
	a.get("/settings/api-tokens/new").want(200).has(`aria-label="Admin account Acme"`, ">Save</button>", `href="/audit-log"`).
		lacks("viewer access", "disabled")
}
