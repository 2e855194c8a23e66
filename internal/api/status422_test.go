package api_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestUnprocessable(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	tok := e.createToken(e.admin, "target", perm("project", p, 10))
	now := e.clock.Now()
	create := "/api/api_tokens"
	tests := []struct {
		name  string
		req   request
		field string
	}{
		{"malformed JSON", request{method: "POST", path: create, body: `{"name": `}, "base"},
		{"not an object", request{method: "POST", path: create, body: `["name"]`}, "base"},
		{"empty body", request{method: "POST", path: create, body: ``}, "base"},
		{"trailing data", request{method: "POST", path: create, body: `{"name":"a"} {"name":"b"}`}, "base"},
		{"name missing", request{method: "POST", path: create, body: map[string]any{"resources": []any{}}}, "name"},
		{"name blank", request{method: "POST", path: create, body: map[string]any{"name": "   "}}, "name"},
		{"name not a string", request{method: "POST", path: create, body: map[string]any{"name": 12}}, "name"},
		{"name too long", request{method: "POST", path: create, body: map[string]any{"name": strings.Repeat("x", 256)}}, "name"},
		{"resources not an array", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": "all"}}, "resources"},
		{"unknown resource type", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{perm("user", 1, 10)}}}, "resources"},
		{"resource type missing", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{map[string]any{"resource_id": p, "access_level": 10}}}}, "resources"},
		{"access level 50", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{perm("project", p, 50)}}}, "resources"},
		{"access level a string", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{map[string]any{"resource_type": "project", "resource_id": p, "access_level": "admin"}}}}, "resources"},
		{"resource id not numeric", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{map[string]any{"resource_type": "project", "resource_id": "web", "access_level": 10}}}}, "resources"},
		{"resource missing", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{perm("project", 424242, 10)}}}, "resources"},
		{"other account's resource", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{perm("account", e.other, 10)}}}, "resources"},
		{"same resource twice", request{method: "POST", path: create, body: map[string]any{"name": "x", "resources": []any{perm("project", p, 10), perm("project", p, 100)}}}, "resources"},
		{"unknown environment", request{method: "POST", path: create, body: map[string]any{"name": "x", "environment": "prod"}}, "environment"},
		{"expires_at in the past", request{method: "POST", path: create, body: map[string]any{"name": "x", "expires_at": now.Add(-time.Second)}}, "expires_at"},
		{"expires_at now", request{method: "POST", path: create, body: map[string]any{"name": "x", "expires_at": now}}, "expires_at"},
		{"expires_at past five years", request{method: "POST", path: create, body: map[string]any{"name": "x", "expires_at": now.AddDate(5, 0, 1)}}, "expires_at"},
		{"expires_at without zone", request{method: "POST", path: create, body: map[string]any{"name": "x", "expires_at": "2027-01-01T00:00:00"}}, "expires_at"},
		{"expires_at a number", request{method: "POST", path: create, body: map[string]any{"name": "x", "expires_at": 1893456000}}, "expires_at"},
		{"patch blank name", request{method: "PATCH", path: e.path("/api/api_tokens/%d", tok.ID), body: map[string]any{"name": ""}}, "name"},
		{"patch missing resource", request{method: "PATCH", path: e.path("/api/api_tokens/%d", tok.ID), body: map[string]any{"resources": []any{perm("domain", 424242, 10)}}}, "resources"},
		{"reset expires_at in the past", request{method: "POST", path: e.path("/api/api_tokens/%d/reset", tok.ID), body: map[string]any{"expires_at": now.Add(-time.Hour)}}, "expires_at"},
		{"reset malformed JSON", request{method: "POST", path: e.path("/api/api_tokens/%d/reset", tok.ID), body: `{`}, "base"},
		{"project blank name", request{method: "POST", path: e.path("/api/accounts/%d/projects", e.acme), body: map[string]any{"project": map[string]any{"name": ""}}}, "name"},
		{"project name a number", request{method: "POST", path: e.path("/api/accounts/%d/projects", e.acme), body: map[string]any{"project": map[string]any{"name": 1}}}, "name"},
		{"sandbox without inbox object", request{method: "POST", path: e.path("/api/accounts/%d/projects/%d/inboxes", e.acme, p), body: map[string]any{"name": "QA"}}, "name"},
		{"invalid domain name", request{method: "POST", path: e.path("/api/accounts/%d/sending_domains", e.acme), body: map[string]any{"sending_domain": map[string]any{"domain_name": "not a domain"}}}, "domain_name"},
		{"domain without a dot", request{method: "POST", path: e.path("/api/accounts/%d/sending_domains", e.acme), body: map[string]any{"sending_domain": map[string]any{"domain_name": "localhost"}}}, "domain_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			tt.req.token = e.admin
			r := e.send(tt.req).want(422)
			var body struct{ Errors map[string][]string }
			r.decode(&body)
			if len(body.Errors[tt.field]) == 0 {
				t.Errorf("body %s, want errors on %q", r.Body, tt.field)
			}
		})
	}
	// Nothing was created by any of these.
	var list []apiToken
	e.get("/api/api_tokens", e.admin).want(200).decode(&list)
	if len(list) != 2 {
		t.Errorf("after only invalid requests the account has %d tokens, want 2", len(list))
	}
}

func TestResetTwiceOrExpired(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "once", perm("account", e.acme, 10))
	var fresh apiToken
	e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, nil).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	r := e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, nil).want(422)
	if !strings.Contains(string(r.Body), "already been reset") {
		t.Errorf("second reset: %s", r.Body)
	}
	var short apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "short", "expires_at": e.clock.Now().Add(time.Minute)}).want(200).decode(&short)
	e.secrets.add(short.Token)
	e.clock.Advance(time.Minute)
	r = e.post(e.path("/api/api_tokens/%d/reset", short.ID), e.admin, nil).want(422)
	if !strings.Contains(string(r.Body), "expired") {
		t.Errorf("reset of an expired token: %s", r.Body)
	}
	// Neither failed reset created a token.
	var list []apiToken
	e.get("/api/api_tokens", e.admin).want(200).decode(&list)
	if len(list) != 4 {
		t.Errorf("%d tokens after the failed resets, want 4", len(list))
	}
}

func TestDuplicateDomain(t *testing.T) {
	e := newEnv(t)
	e.createDomain(e.admin, "example.com")
	r := e.post(e.path("/api/accounts/%d/sending_domains", e.acme), e.admin,
		map[string]any{"sending_domain": map[string]any{"domain_name": "EXAMPLE.com"}}).want(422)
	if !strings.Contains(string(r.Body), "taken") {
		t.Errorf("duplicate domain: %s", r.Body)
	}
	// The failed create left no extra token behind.
	var list []apiToken
	e.get("/api/api_tokens", e.admin).want(200).decode(&list)
	if len(list) != 2 {
		t.Errorf("%d tokens, want 2 (admin and the first domain's)", len(list))
	}
	// Another account may use the same name.
	e.post(e.path("/api/accounts/%d/sending_domains", e.other), e.otherAdmin,
		map[string]any{"sending_domain": map[string]any{"domain_name": "example.com"}}).want(200)
}

func TestTooLarge(t *testing.T) {
	e := newEnv(t)
	big := fmt.Sprintf(`{"name": "x", "pad": "%s"}`, strings.Repeat("a", 1<<20))
	for _, path := range []string{"/api/api_tokens", e.path("/api/api_tokens/%d/reset", e.adminID)} {
		r := e.send(request{method: "POST", path: path, token: e.admin, body: big}).want(413)
		if body := r.object(); body["error"] == "" {
			t.Errorf("413 body %s", r.Body)
		}
	}
	// Just under the limit is accepted.
	ok := fmt.Sprintf(`{"name": "x", "pad": "%s"}`, strings.Repeat("a", 1<<20-100))
	var tok apiToken
	e.send(request{method: "POST", path: "/api/api_tokens", token: e.admin, body: ok}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
}

// A resource the caller cannot read answers exactly like one that does not
// exist: a project admin learns nothing about another project's sandboxes,
// whether it grants, edits or guesses.
func TestUnreadableResourcesLookMissing(t *testing.T) {
	e := newEnv(t)
	mine := e.createProject(e.admin, "Mine")
	theirs := e.createProject(e.admin, "Theirs")
	hidden := e.createSandbox(e.admin, theirs, "Hidden")
	hiddenDomain, _ := e.createDomain(e.admin, "hidden.example.com")
	const missing = 424242
	mySandbox := e.createSandbox(e.admin, mine, "Mine QA")
	projectAdmin := e.createToken(e.admin, "project admin", perm("project", mine, 100))
	sandboxAdmin := e.createToken(e.admin, "sandbox admin", perm("sandbox", mySandbox, 100))
	target := e.createToken(projectAdmin.Token, "target", perm("project", mine, 10))

	// body answers a grant of typ id as create and as PATCH, with the id
	// replaced so that answers about different ids can be compared.
	body := func(caller, method, path, typ string, id int64) string {
		b := map[string]any{"resources": []any{perm(typ, id, 100)}}
		if method == "POST" {
			b["name"] = "probe"
		}
		r := e.send(request{method: method, path: path, token: caller, body: b}).want(422)
		return strings.ReplaceAll(string(r.Body), fmt.Sprint(id), "ID")
	}
	for _, tt := range []struct {
		name, caller, method, path, typ string
		id                              int64
	}{
		{"grant another project's sandbox", projectAdmin.Token, "POST", "/api/api_tokens", "sandbox", hidden},
		{"grant another project", projectAdmin.Token, "POST", "/api/api_tokens", "project", theirs},
		{"grant a domain", projectAdmin.Token, "POST", "/api/api_tokens", "domain", hiddenDomain},
		{"grant the project above its sandbox", sandboxAdmin.Token, "POST", "/api/api_tokens", "project", mine},
		{"patch in another project's sandbox", projectAdmin.Token, "PATCH", e.path("/api/api_tokens/%d", target.ID), "sandbox", hidden},
		{"patch in another project", projectAdmin.Token, "PATCH", e.path("/api/api_tokens/%d", target.ID), "project", theirs},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, want := body(tt.caller, tt.method, tt.path, tt.typ, tt.id), body(tt.caller, tt.method, tt.path, tt.typ, missing)
			if got != want {
				t.Errorf("an unreadable %s answers %s, a missing one %s", tt.typ, got, want)
			}
		})
	}
}

// A domain_id in the body of a new suppression or webhook that names no
// sending domain the caller can read (none at all, another account's, or
// one of the account the caller cannot see) is invalid input, 422 on
// domain_id, the same answer for each, and nothing is added; the path's
// account is the caller's, so it is not 404.
func TestBodyDomainThatDoesNotExist(t *testing.T) {
	e := newEnv(t)
	domain, _, _ := e.domainRecord(e.admin, "mail.example.com")
	hidden, _, _ := e.domainRecord(e.admin, "hidden.example.com")
	domainAdmin := e.createToken(e.admin, "domain admin", perm("domain", domain, 100))
	var foreign struct{ ID int64 }
	e.post(e.path("/api/accounts/%d/sending_domains", e.other), e.otherAdmin,
		map[string]any{"sending_domain": map[string]any{"domain_name": "other.example.net"}}).want(200).decode(&foreign)
	routes := []struct {
		name string
		path string
		body func(domain int64) map[string]any
	}{
		{"suppression", e.path("/api/accounts/%d/suppressions", e.acme), func(d int64) map[string]any {
			return map[string]any{"email": "x@example.org", "domain_id": d}
		}},
		{"webhook", e.path("/api/accounts/%d/webhooks", e.acme), func(d int64) map[string]any {
			return map[string]any{"webhook": map[string]any{"url": "https://hooks.example.org/", "event_types": []string{"delivery"}, "domain_id": d}}
		}},
	}
	callers := []struct {
		name   string
		token  string
		domain int64
	}{
		{"missing", e.admin, 999},
		{"another account's", e.admin, foreign.ID},
		{"one the caller cannot read", domainAdmin.Token, hidden},
	}
	for _, r := range routes {
		for _, c := range callers {
			var body struct{ Errors map[string][]string }
			e.post(r.path, c.token, r.body(c.domain)).want(422).decode(&body)
			if want := fmt.Sprintf("sending domain %d does not exist", c.domain); !slices.Equal(body.Errors["domain_id"], []string{want}) {
				t.Errorf("%s, %s domain: errors %v, want domain_id: %s", r.name, c.name, body.Errors, want)
			}
		}
	}
	if list := e.suppressions(e.admin, "x@example.org"); len(list) != 0 {
		t.Errorf("refused suppressions were added: %+v", list)
	}
	var hooks struct{ Data []webhookJSON }
	if e.get(routes[1].path, e.admin).want(200).decode(&hooks); len(hooks.Data) != 0 {
		t.Errorf("refused webhooks were created: %+v", hooks.Data)
	}
}
