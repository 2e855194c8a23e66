package api_test

import (
	"testing"
	"time"
)

// Each change applies on the very next request even though the token was
// served from the authentication cache just before it.
func TestChangesToCachedTokensApplyOnTheNextRequest(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	sb := e.createSandbox(e.admin, p, "QA")
	warm := func(token string) { e.get("/api/whoami", token).want(200) }

	deleted := e.createToken(e.admin, "deleted", perm("account", e.acme, 10))
	warm(deleted.Token)
	e.del(e.path("/api/api_tokens/%d", deleted.ID), e.admin).want(204)
	e.get("/api/whoami", deleted.Token).want(401)

	narrowed := e.createToken(e.admin, "narrowed", perm("project", p, 100))
	warm(narrowed.Token)
	e.patch(e.path("/api/api_tokens/%d", narrowed.ID), e.admin, map[string]any{"resources": []any{perm("project", p, 10)}}).want(200)
	e.post(e.path("/api/accounts/%d/projects/%d/inboxes", e.acme, p), narrowed.Token, map[string]any{"inbox": map[string]any{"name": "x"}}).want(403)

	reset := e.createToken(e.admin, "reset", perm("account", e.acme, 10))
	warm(reset.Token)
	e.post(e.path("/api/api_tokens/%d/reset", reset.ID), e.admin, nil).want(200)
	e.clock.Advance(12 * time.Hour)
	e.get("/api/whoami", reset.Token).want(401)

	sandboxOnly := e.createToken(e.admin, "sandbox only", perm("sandbox", sb, 100))
	warm(sandboxOnly.Token)
	e.get(e.path("/api/accounts/%d/inboxes/%d", e.acme, sb), sandboxOnly.Token).want(200)
	e.del(e.path("/api/accounts/%d/projects/%d", e.acme, p), e.admin).want(204)
	var who struct{ Resources []any }
	e.get("/api/whoami", sandboxOnly.Token).want(200).decode(&who)
	if len(who.Resources) != 0 {
		t.Errorf("after its sandbox was deleted the cached token still holds %v", who.Resources)
	}
}
