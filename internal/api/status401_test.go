package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// Every authenticated endpoint answers 401 with {"error", "status", "code"}
// for a missing, malformed, forged, deleted or expired token.
func TestUnauthenticated(t *testing.T) {
	e := newEnv(t)
	deleted := e.createToken(e.admin, "deleted", perm("account", e.acme, 100))
	e.del(e.path("/api/api_tokens/%d", deleted.ID), e.admin).want(204)
	forged := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	wrongPrefix := "ms" + e.admin[2:]
	credentials := []struct {
		name   string
		header http.Header
		code   string
	}{
		{"missing", nil, "missing_api_key"},
		{"malformed", http.Header{"Api-Token": {"not-a-token"}}, "invalid_api_key"},
		{"bad checksum", http.Header{"Api-Token": {forged}}, "invalid_api_key"},
		{"other prefix", http.Header{"Authorization": {"Bearer " + wrongPrefix}}, "invalid_api_key"},
		{"deleted", http.Header{"Api-Token": {deleted.Token}}, "invalid_api_key"},
	}
	for _, ep := range endpoints(e) {
		for _, c := range credentials {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				e := e.with(t)
				r := e.send(request{method: ep.method, path: ep.path, header: c.header, body: ep.body}).want(401)
				body := r.object()
				if body["code"] != c.code || body["status"] != float64(401) || body["error"] == "" {
					t.Errorf("body = %v, want code %q", body, c.code)
				}
			})
		}
	}
}

func flip(c byte) byte {
	if c == 'a' {
		return 'b'
	}
	return 'a'
}

func TestErrorBodiesNeverEchoTheToken(t *testing.T) {
	e := newEnv(t)
	forged := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	r := e.send(request{method: "GET", path: "/api/api_tokens", header: http.Header{"Api-Token": {forged}}}).want(401)
	if strings.Contains(string(r.Body), forged[8:]) {
		t.Fatalf("401 body echoes the presented token: %s", r.Body)
	}
}

// endpoint is one operation of the API with a valid-looking request body.
type endpoint struct {
	name, method, path string
	body               any
}

// endpoints lists every authenticated operation, pointing at real records of
// Acme: a project, a sandbox, a domain and a spare token.
func endpoints(e *env) []endpoint {
	e.t.Helper()
	p := e.createProject(e.admin, "Fixture project")
	sb := e.createSandbox(e.admin, p, "Fixture sandbox")
	d, _ := e.createDomain(e.admin, "fixture.example.com")
	tok := e.createToken(e.admin, "fixture token", perm("project", p, 10))
	a := e.acme
	named := map[string]any{"name": "x", "resources": []any{perm("project", p, 10)}}
	return []endpoint{
		{"list tokens", "GET", "/api/api_tokens", nil},
		{"create token", "POST", "/api/api_tokens", named},
		{"get token", "GET", e.path("/api/api_tokens/%d", tok.ID), nil},
		{"patch token", "PATCH", e.path("/api/api_tokens/%d", tok.ID), map[string]any{"name": "renamed"}},
		{"reset token", "POST", e.path("/api/api_tokens/%d/reset", tok.ID), nil},
		{"delete token", "DELETE", e.path("/api/api_tokens/%d", tok.ID), nil},
		{"list tokens in account", "GET", e.path("/api/accounts/%d/api_tokens", a), nil},
		{"create token in account", "POST", e.path("/api/accounts/%d/api_tokens", a), named},
		{"get token in account", "GET", e.path("/api/accounts/%d/api_tokens/%d", a, tok.ID), nil},
		{"patch token in account", "PATCH", e.path("/api/accounts/%d/api_tokens/%d", a, tok.ID), map[string]any{"name": "renamed"}},
		{"reset token in account", "POST", e.path("/api/accounts/%d/api_tokens/%d/reset", a, tok.ID), nil},
		{"delete token in account", "DELETE", e.path("/api/accounts/%d/api_tokens/%d", a, tok.ID), nil},
		{"list accounts", "GET", "/api/accounts", nil},
		{"list projects", "GET", e.path("/api/accounts/%d/projects", a), nil},
		{"create project", "POST", e.path("/api/accounts/%d/projects", a), map[string]any{"project": map[string]any{"name": "n"}}},
		{"get project", "GET", e.path("/api/accounts/%d/projects/%d", a, p), nil},
		{"rename project", "PATCH", e.path("/api/accounts/%d/projects/%d", a, p), map[string]any{"project": map[string]any{"name": "n"}}},
		{"delete project", "DELETE", e.path("/api/accounts/%d/projects/%d", a, p), nil},
		{"create sandbox", "POST", e.path("/api/accounts/%d/projects/%d/inboxes", a, p), map[string]any{"inbox": map[string]any{"name": "n"}}},
		{"list sandboxes", "GET", e.path("/api/accounts/%d/inboxes", a), nil},
		{"get sandbox", "GET", e.path("/api/accounts/%d/inboxes/%d", a, sb), nil},
		{"rename sandbox", "PATCH", e.path("/api/accounts/%d/inboxes/%d", a, sb), map[string]any{"inbox": map[string]any{"name": "n"}}},
		{"delete sandbox", "DELETE", e.path("/api/accounts/%d/inboxes/%d", a, sb), nil},
		{"list domains", "GET", e.path("/api/accounts/%d/sending_domains", a), nil},
		{"create domain", "POST", e.path("/api/accounts/%d/sending_domains", a), map[string]any{"sending_domain": map[string]any{"domain_name": "new.example.com"}}},
		{"get domain", "GET", e.path("/api/accounts/%d/sending_domains/%d", a, d), nil},
		{"delete domain", "DELETE", e.path("/api/accounts/%d/sending_domains/%d", a, d), nil},
		{"token usage", "GET", e.path("/api/api_tokens/%d/usage", tok.ID), nil},
		{"token usage in account", "GET", e.path("/api/accounts/%d/api_tokens/%d/usage", a, tok.ID), nil},
		{"audit log", "GET", "/api/audit_log", nil},
		{"audit log in account", "GET", e.path("/api/accounts/%d/audit_log", a), nil},
		{"whoami", "GET", "/api/whoami", nil},
	}
}
