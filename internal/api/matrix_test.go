package api_test

import (
	"testing"
	"time"
)

// callers are the kinds of credential the matrix tries on every endpoint.
var callers = []string{"no token", "malformed", "bad checksum", "expired", "deleted",
	"other account", "viewer", "admin of another resource", "account admin"}

// caller returns a credential of the named kind in e.
func caller(e *env, kind string) string {
	e.t.Helper()
	switch kind {
	case "no token":
		return ""
	case "malformed":
		return "tk_live_tooshort"
	case "bad checksum":
		return e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	case "expired":
		var tok apiToken
		e.post("/api/api_tokens", e.admin, map[string]any{"name": "expiring", "expires_at": e.clock.Now().Add(time.Minute),
			"resources": []any{perm("account", e.acme, 100)}}).want(200).decode(&tok)
		e.secrets.add(tok.Token)
		e.clock.Advance(time.Minute)
		return tok.Token
	case "deleted":
		tok := e.createToken(e.admin, "doomed", perm("account", e.acme, 100))
		e.del(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(204)
		return tok.Token
	case "other account":
		return e.otherAdmin
	case "viewer":
		return e.createToken(e.admin, "viewer", perm("account", e.acme, 10)).Token
	case "admin of another resource":
		return e.createToken(e.admin, "elsewhere", perm("project", e.createProject(e.admin, "Elsewhere"), 100)).Token
	case "account admin":
		return e.admin
	}
	e.t.Fatalf("unknown caller %q", kind)
	return ""
}

func TestPermissionMatrix(t *testing.T) {
	const u = 401
	// Statuses in the order of callers.
	want := map[string][9]int{
		"list tokens":             {u, u, u, u, u, 200, 200, 200, 200},
		"create token":            {u, u, u, u, u, 422, 403, 422, 200}, // a resource the caller cannot read looks missing
		"get token":               {u, u, u, u, u, 404, 404, 404, 200},
		"patch token":             {u, u, u, u, u, 404, 404, 404, 200},
		"reset token":             {u, u, u, u, u, 404, 404, 404, 200},
		"delete token":            {u, u, u, u, u, 404, 404, 404, 204},
		"list tokens in account":  {u, u, u, u, u, 404, 200, 200, 200},
		"create token in account": {u, u, u, u, u, 404, 403, 422, 200},
		"get token in account":    {u, u, u, u, u, 404, 404, 404, 200},
		"patch token in account":  {u, u, u, u, u, 404, 404, 404, 200},
		"reset token in account":  {u, u, u, u, u, 404, 404, 404, 200},
		"delete token in account": {u, u, u, u, u, 404, 404, 404, 204},
		"list accounts":           {u, u, u, u, u, 200, 200, 200, 200},
		"list projects":           {u, u, u, u, u, 404, 200, 200, 200},
		"create project":          {u, u, u, u, u, 404, 403, 403, 200},
		"get project":             {u, u, u, u, u, 404, 200, 404, 200},
		"rename project":          {u, u, u, u, u, 404, 403, 404, 200},
		"delete project":          {u, u, u, u, u, 404, 403, 404, 204},
		"create sandbox":          {u, u, u, u, u, 404, 403, 404, 200},
		"list sandboxes":          {u, u, u, u, u, 404, 200, 200, 200},
		"get sandbox":             {u, u, u, u, u, 404, 200, 404, 200},
		"rename sandbox":          {u, u, u, u, u, 404, 403, 404, 200},
		"delete sandbox":          {u, u, u, u, u, 404, 403, 404, 204},
		"list domains":            {u, u, u, u, u, 404, 200, 200, 200},
		"create domain":           {u, u, u, u, u, 404, 403, 403, 200},
		"get domain":              {u, u, u, u, u, 404, 200, 404, 200},
		"delete domain":           {u, u, u, u, u, 404, 403, 404, 204},
		"token usage":             {u, u, u, u, u, 404, 404, 404, 200},
		"token usage in account":  {u, u, u, u, u, 404, 404, 404, 200},
		"audit log":               {u, u, u, u, u, 200, 403, 403, 200}, // another account reads its own log
		"audit log in account":    {u, u, u, u, u, 404, 403, 403, 200},
		"whoami":                  {u, u, u, u, u, 200, 200, 200, 200},
	}
	probe := newEnv(t)
	eps := endpoints(probe)
	if len(eps) != len(want) {
		t.Fatalf("matrix covers %d endpoints, the API has %d", len(want), len(eps))
	}
	for i, ep := range eps {
		row, ok := want[ep.name]
		if !ok {
			t.Fatalf("no matrix row for %q", ep.name)
		}
		for c, kind := range callers {
			t.Run(ep.name+"/"+kind, func(t *testing.T) {
				e := newEnv(t)
				ep := endpoints(e)[i]
				token := caller(e, kind)
				e.send(request{method: ep.method, path: ep.path, token: token, body: ep.body}).want(row[c])
			})
		}
	}
}
