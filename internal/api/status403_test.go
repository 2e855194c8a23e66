package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
)

func TestForbidden(t *testing.T) {
	e := newEnv(t)
	p1 := e.createProject(e.admin, "Web")
	sb1 := e.createSandbox(e.admin, p1, "QA")
	d, _ := e.createDomain(e.admin, "example.com")
	p1Admin := e.createToken(e.admin, "p1 admin", perm("project", p1, 100))
	p1Viewer := e.createToken(e.admin, "p1 viewer", perm("project", p1, 10))
	viewer := e.createToken(e.admin, "account viewer", perm("account", e.acme, 10))
	a := e.acme
	tests := []struct {
		name   string
		caller string
		req    request
	}{
		{"grant on a project it only views", p1Viewer.Token, request{method: "POST", path: "/api/api_tokens",
			body: map[string]any{"name": "x", "resources": []any{perm("project", p1, 10)}}}},
		{"grant account access as project admin", p1Admin.Token, request{method: "POST", path: "/api/api_tokens",
			body: map[string]any{"name": "x", "resources": []any{perm("account", a, 10)}}}},
		{"token without resources as non-account-admin", p1Admin.Token, request{method: "POST", path: "/api/api_tokens",
			body: map[string]any{"name": "x"}}},
		{"grant admin on a sandbox it views through its project", p1Viewer.Token, request{method: "POST", path: "/api/api_tokens",
			body: map[string]any{"name": "x", "resources": []any{perm("sandbox", sb1, 100)}}}},
		{"account viewer creates anything", viewer.Token, request{method: "POST", path: "/api/api_tokens",
			body: map[string]any{"name": "x", "resources": []any{perm("domain", d, 10)}}}},
		{"account viewer creates a project", viewer.Token, request{method: "POST", path: e.path("/api/accounts/%d/projects", a),
			body: map[string]any{"project": map[string]any{"name": "x"}}}},
		{"project viewer renames it", p1Viewer.Token, request{method: "PATCH", path: e.path("/api/accounts/%d/projects/%d", a, p1),
			body: map[string]any{"project": map[string]any{"name": "x"}}}},
		{"project viewer deletes it", p1Viewer.Token, request{method: "DELETE", path: e.path("/api/accounts/%d/projects/%d", a, p1)}},
		{"project viewer adds a sandbox", p1Viewer.Token, request{method: "POST", path: e.path("/api/accounts/%d/projects/%d/inboxes", a, p1),
			body: map[string]any{"inbox": map[string]any{"name": "x"}}}},
		{"project admin adds a domain", p1Admin.Token, request{method: "POST", path: e.path("/api/accounts/%d/sending_domains", a),
			body: map[string]any{"sending_domain": map[string]any{"domain_name": "x.example.com"}}}},
		{"account viewer deletes a domain", viewer.Token, request{method: "DELETE", path: e.path("/api/accounts/%d/sending_domains/%d", a, d)}},
		{"account viewer deletes a sandbox", viewer.Token, request{method: "DELETE", path: e.path("/api/accounts/%d/inboxes/%d", a, sb1)}},
	}
	// Granting a resource the caller cannot even read is not here: it answers
	// 422 like a missing one (TestUnreadableResourcesLookMissing).
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			tt.req.token = tt.caller
			r := e.send(tt.req).want(403)
			var body struct{ Errors string }
			r.decode(&body)
			if body.Errors == "" {
				t.Errorf("body %s, want {\"errors\": \"...\"}", r.Body)
			}
		})
	}
}

func TestLastDomainTokenCannotBeDeleted(t *testing.T) {
	e := newEnv(t)
	d, dtok := e.createDomain(e.admin, "example.com")

	// The account admin token covers the domain too, so the domain's own token may go...
	second := e.createToken(e.admin, "second", perm("domain", d, 100))
	e.del(e.path("/api/api_tokens/%d", dtok.ID), e.admin).want(204)
	// ...and second, but not once it is the last besides the account admin...
	e.del(e.path("/api/api_tokens/%d", second.ID), e.admin).want(204)
	// ...and the account admin is now the last token with admin on the domain.
	r := e.del(e.path("/api/api_tokens/%d", e.adminID), e.admin).want(403)
	var body struct{ Errors string }
	r.decode(&body)
	if !strings.Contains(body.Errors, "example.com") || !strings.Contains(body.Errors, "last") {
		t.Errorf("403 body %q should say it is the last token of example.com", body.Errors)
	}
	// A viewer on the domain does not count as another admin.
	e.createToken(e.admin, "viewer", perm("domain", d, 10))
	e.del(e.path("/api/api_tokens/%d", e.adminID), e.admin).want(403)
	// Nor does a token already reset (it is on its way out): reset the admin and
	// try to delete its successor.
	var fresh apiToken
	e.post(e.path("/api/api_tokens/%d/reset", e.adminID), e.admin, nil).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	e.del(e.path("/api/api_tokens/%d", fresh.ID), fresh.Token).want(403)
	// The old admin, in its grace period, may go: the successor still covers the domain.
	e.del(e.path("/api/api_tokens/%d", e.adminID), fresh.Token).want(204)
	// Deleting the domain lifts the rule.
	e.del(e.path("/api/accounts/%d/sending_domains/%d", e.acme, d), fresh.Token).want(204)
	e.createToken(fresh.Token, "spare admin", perm("account", e.acme, 100))
	e.del(e.path("/api/api_tokens/%d", fresh.ID), fresh.Token).want(204)
}

// Editing permissions obeys the same rule as deleting: the last active token
// with admin on a domain cannot lose it.
func TestPatchCannotStripLastDomainAdmin(t *testing.T) {
	e := newEnv(t)
	d, dtok := e.createDomain(e.admin, "mail.example.com")
	spare := e.createToken(e.admin, "spare", perm("account", e.acme, 100))
	p := e.createProject(e.admin, "p")
	onlyProject := map[string]any{"resources": []any{perm("project", p, 100)}}
	// Three tokens cover the domain: the domain's own, admin and spare.
	e.patch(e.path("/api/api_tokens/%d", dtok.ID), e.admin, onlyProject).want(200)
	e.patch(e.path("/api/api_tokens/%d", e.adminID), spare.Token, onlyProject).want(200)
	// spare is now the last: it can neither give up the domain nor go.
	r := e.patch(e.path("/api/api_tokens/%d", spare.ID), spare.Token, onlyProject).want(403)
	if !strings.Contains(string(r.Body), "mail.example.com") {
		t.Errorf("403 body %s should name the domain", r.Body)
	}
	e.del(e.path("/api/api_tokens/%d", spare.ID), spare.Token).want(403)
	// Narrowing to admin on just that domain keeps it covered, so it is allowed.
	e.patch(e.path("/api/api_tokens/%d", spare.ID), spare.Token, map[string]any{"resources": []any{perm("domain", d, 100)}}).want(200)
}

// A test key must never come by a key that delivers: it creates and resets
// test keys only, whatever access it holds.
func TestTestKeyCannotMintLiveKey(t *testing.T) {
	e := newEnv(t)
	d, _ := e.createDomain(e.admin, "example.com")
	live := e.createToken(e.admin, "live", perm("domain", d, 100))
	testKey := e.post("/api/api_tokens", e.admin, map[string]any{"name": "staging", "environment": "test",
		"resources": []any{perm("account", e.acme, 100)}}).want(200).object()["token"].(string)

	for _, tt := range []struct {
		name string
		req  request
	}{
		{"create a live key", request{method: "POST", path: "/api/api_tokens",
			body: map[string]any{"name": "x", "environment": "live", "resources": []any{perm("domain", d, 100)}}}},
		{"reset a live key", request{method: "POST", path: e.path("/api/api_tokens/%d/reset", live.ID)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.token = testKey
			r := e.send(tt.req).want(403)
			if !strings.Contains(string(r.Body), "test keys only") {
				t.Errorf("403 body %s should say a test key makes test keys only", r.Body)
			}
		})
	}
	// What it may do: a test key, named or by default.
	for _, body := range []map[string]any{
		{"name": "named", "environment": "test", "resources": []any{perm("domain", d, 100)}},
		{"name": "default", "resources": []any{perm("domain", d, 100)}},
	} {
		tok := e.post("/api/api_tokens", testKey, body).want(200).object()
		if v := tok["token"].(string); !strings.Contains(v, "test") {
			t.Errorf("%s: token %q minted by a test key is not a test key", body["name"], v)
		}
	}
	// A live admin still makes both.
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "t2", "environment": "test"}).want(200)
}

// Test keys are never service tokens: whatever access a test key holds, the
// endpoints of services (verifying tokens, reporting usage, the change
// stream) answer it 403 environment_not_allowed, and nothing of the live
// tokens it names is verified or charged. GET /api/verify verifies the
// request's own token, not a service's, so a test key passes it.
func TestTestKeyIsNotAServiceToken(t *testing.T) {
	e := newEnv(t)
	testKey := e.createTestToken(e.admin, "staging gateway", perm("account", e.acme, 100))
	live := e.createToken(e.admin, "customer", perm("account", e.acme, 10))
	for _, tt := range []struct {
		name string
		req  request
	}{
		{"verify token", request{method: "POST", path: "/api/verify", body: map[string]any{"token": live.Token}}},
		{"report usage", request{method: "POST", path: "/api/usage_reports",
			body: map[string]any{"reports": []any{map[string]any{"token_sha256": client.TokenSHA256(live.Token), "want": 10}}}}},
		{"auth changes", request{method: "GET", path: "/api/auth_changes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			tt.req.token = testKey
			r := e.send(tt.req).want(403)
			body := r.object()
			if body["code"] != "environment_not_allowed" || body["status"] != float64(403) ||
				!strings.Contains(fmt.Sprint(body["errors"]), "A test key is never a service token") {
				t.Errorf("403 body %s, want code environment_not_allowed saying a test key is never a service token", r.Body)
			}
			if r.Header.Get("Content-Type") == "text/event-stream" {
				t.Error("a refusal is a stream")
			}
		})
	}
	// The live token was neither verified nor charged: its usage is empty.
	var u usageJSON
	e.clock.Advance(time.Hour)
	e.get(e.path("/api/api_tokens/%d/usage", live.ID), e.admin).want(200).decode(&u)
	if len(u.Days) != 0 {
		t.Errorf("usage of the live token named by a test key: %+v, want none", u.Days)
	}
	// The forwarded request's own test key passes GET /api/verify.
	e.send(request{method: "GET", path: "/api/verify", token: testKey}).want(204)
	// A live token with the same access is a service token.
	service := e.createToken(e.admin, "gateway", perm("account", e.acme, 100))
	e.post("/api/verify", service.Token, map[string]any{"token": live.Token}).want(200)
}
