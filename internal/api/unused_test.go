package api_test

import (
	"slices"
	"testing"
	"time"
)

// The unused tokens are those the caller can see that made no request in
// the days asked (90 by default): used last before then, or never used and
// created before then; deleting one takes it off the list.
func TestUnusedTokens(t *testing.T) {
	e := newEnv(t)
	usedOnce := e.createToken(e.admin, "used once", perm("account", e.acme, 10))
	never := e.createToken(e.admin, "never used", perm("account", e.acme, 10))
	recent := e.createToken(e.admin, "used lately", perm("account", e.acme, 10))
	e.get("/api/whoami", usedOnce.Token).want(200)
	e.clock.Advance(50 * 24 * time.Hour)
	e.get("/api/whoami", recent.Token).want(200)
	e.clock.Advance(41 * 24 * time.Hour)
	unused := func(query string) []int64 {
		t.Helper()
		var list []apiToken
		e.get("/api/api_tokens/unused"+query, e.admin).want(200).decode(&list)
		ids := make([]int64, len(list))
		for i, tok := range list {
			ids[i] = tok.ID
		}
		return ids
	}
	if got := unused(""); !slices.Equal(got, []int64{usedOnce.ID, never.ID}) {
		t.Errorf("unused for 90 days: %v, want %d and %d", got, usedOnce.ID, never.ID)
	}
	if got := unused("?days=30"); !slices.Equal(got, []int64{usedOnce.ID, never.ID, recent.ID}) {
		t.Errorf("unused for 30 days: %v", got)
	}
	var inAccount []apiToken
	e.get(e.path("/api/accounts/%d/api_tokens/unused?days=100", e.acme), e.admin).want(200).decode(&inAccount)
	if len(inAccount) != 0 {
		t.Errorf("unused for 100 days: %+v, want none", inAccount)
	}
	for _, bad := range []string{"?days=0", "?days=abc", "?days=3651"} {
		e.get("/api/api_tokens/unused"+bad, e.admin).want(422)
	}
	e.del(e.path("/api/api_tokens/%d", never.ID), e.admin).want(204)
	if got := unused(""); !slices.Equal(got, []int64{usedOnce.ID}) {
		t.Errorf("after deleting one: %v", got)
	}
	// A viewer sees only itself, which it just used.
	var mine []apiToken
	e.get("/api/api_tokens/unused?days=1", recent.Token).want(200).decode(&mine)
	if len(mine) != 0 {
		t.Errorf("a viewer's unused tokens: %+v", mine)
	}
}
