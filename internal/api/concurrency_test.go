package api_test

import (
	"net/http"
	"sync"
	"testing"
)

// Two concurrent deletes of a domain's last two admin tokens: one wins, the
// other is refused, and the domain keeps a token.
func TestConcurrentDeletesKeepADomainToken(t *testing.T) {
	for round := 0; round < 5; round++ {
		e := newEnv(t)
		d, first := e.createDomain(e.admin, "example.com")
		second := e.createToken(e.admin, "second", perm("domain", d, 100))
		// Take the account admin's coverage away so the two domain tokens are the last.
		p := e.createProject(e.admin, "p")
		e.patch(e.path("/api/api_tokens/%d", e.adminID), e.admin, map[string]any{"resources": []any{perm("project", p, 100)}}).want(200)

		statuses := make([]int, 2)
		var wg sync.WaitGroup
		for i, tok := range []apiToken{first, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("DELETE", e.srv.URL+e.path("/api/api_tokens/%d", tok.ID), nil)
				req.Header.Set("Api-Token", tok.Token) // each token deletes itself
				res, err := e.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				statuses[i] = res.StatusCode
			}()
		}
		wg.Wait()
		if !(statuses[0] == 204 && statuses[1] == 403 || statuses[0] == 403 && statuses[1] == 204) {
			t.Fatalf("round %d: concurrent deletes answered %v, want one 204 and one 403", round, statuses)
		}
	}
}

// Concurrent resets of one token: exactly one succeeds and exactly one new token exists.
func TestConcurrentResetsHappenOnce(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "shared", perm("account", e.acme, 10))
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.srv.URL+e.path("/api/api_tokens/%d/reset", tok.ID), nil)
			req.Header.Set("Api-Token", e.admin)
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 422:
		default:
			t.Errorf("reset answered %d", s)
		}
	}
	var list []apiToken
	e.get("/api/api_tokens", e.admin).want(200).decode(&list)
	if ok != 1 || len(list) != 3 {
		t.Fatalf("%d resets succeeded and %d tokens exist; want 1 and 3", ok, len(list))
	}
}
