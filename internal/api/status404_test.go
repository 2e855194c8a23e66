package api_test

import (
	"testing"
)

func TestNotFound(t *testing.T) {
	e := newEnv(t)
	otherTok := e.createToken(e.otherAdmin, "other account's", []map[string]any{}...)
	tests := []struct {
		name, method, path string
		token              string
	}{
		{"unknown route", "GET", "/api/nothing-here", e.admin},
		{"unknown API route without a token", "GET", "/api/nope", ""},
		{"non-integer id", "GET", "/api/api_tokens/abc", e.admin},
		{"negative id", "GET", "/api/api_tokens/-1", e.admin},
		{"zero id", "DELETE", "/api/api_tokens/0", e.admin},
		{"id beyond int64", "GET", "/api/api_tokens/99999999999999999999", e.admin},
		{"missing token id", "GET", "/api/api_tokens/424242", e.admin},
		{"missing token reset", "POST", "/api/api_tokens/424242/reset", e.admin},
		{"other account's token", "GET", e.path("/api/api_tokens/%d", otherTok.ID), e.admin},
		{"other account's token, delete", "DELETE", e.path("/api/api_tokens/%d", otherTok.ID), e.admin},
		{"other account's token, reset", "POST", e.path("/api/api_tokens/%d/reset", otherTok.ID), e.admin},
		{"other account's token, patch", "PATCH", e.path("/api/api_tokens/%d", otherTok.ID), e.admin},
		{"other account in path", "GET", e.path("/api/accounts/%d/projects", e.other), e.admin},
		{"non-integer account in path", "GET", "/api/accounts/acme/projects", e.admin},
		{"missing project", "GET", e.path("/api/accounts/%d/projects/424242", e.acme), e.admin},
		{"missing sandbox", "DELETE", e.path("/api/accounts/%d/inboxes/424242", e.acme), e.admin},
		{"missing domain", "GET", e.path("/api/accounts/%d/sending_domains/424242", e.acme), e.admin},
		{"sandbox in missing project", "POST", e.path("/api/accounts/%d/projects/424242/inboxes", e.acme), e.admin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var body any
			if tt.method == "PATCH" || tt.method == "POST" {
				body = map[string]any{"name": "x", "inbox": map[string]any{"name": "x"}}
			}
			r := e.send(request{method: tt.method, path: tt.path, token: tt.token, body: body}).want(404)
			if got := r.object(); got["error"] != "Not Found" || len(got) != 1 {
				t.Errorf("body = %s, want {\"error\": \"Not Found\"}", r.Body)
			}
		})
	}
}

// A token the caller may not see answers exactly like one that does not exist.
func TestInvisibleTokenLooksMissing(t *testing.T) {
	e := newEnv(t)
	p1 := e.createProject(e.admin, "Web")
	p2 := e.createProject(e.admin, "Mobile")
	mine := e.createToken(e.admin, "p1 admin", perm("project", p1, 100))
	theirs := e.createToken(e.admin, "p2 admin", perm("project", p2, 100))
	for _, req := range []request{
		{method: "GET", path: e.path("/api/api_tokens/%d", theirs.ID)},
		{method: "DELETE", path: e.path("/api/api_tokens/%d", theirs.ID)},
		{method: "POST", path: e.path("/api/api_tokens/%d/reset", theirs.ID)},
		{method: "PATCH", path: e.path("/api/api_tokens/%d", theirs.ID), body: map[string]any{"name": "x"}},
		{method: "GET", path: e.path("/api/api_tokens/%d", e.adminID)},
	} {
		req.token = mine.Token
		invisible := e.send(req).want(404)
		req.path = "/api/api_tokens/424242" + map[bool]string{true: "/reset", false: ""}[req.method == "POST"]
		missing := e.send(req).want(404)
		if string(invisible.Body) != string(missing.Body) {
			t.Errorf("%s: invisible %s vs missing %s", req.method, invisible.Body, missing.Body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	r := e.send(request{method: "PUT", path: "/api/api_tokens/1", token: e.admin}).want(405)
	if r.Header.Get("Allow") != "GET, PATCH, DELETE" {
		t.Errorf("Allow = %q", r.Header.Get("Allow"))
	}
}
