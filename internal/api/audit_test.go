package api_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tokend/tokend"
)

type auditPage struct {
	Data []struct {
		ID           int64          `json:"id"`
		Action       string         `json:"action"`
		Actor        string         `json:"actor"`
		ActorTokenID *int64         `json:"actor_token_id"`
		TargetType   string         `json:"target_type"`
		TargetID     *int64         `json:"target_id"`
		ClientAddr   string         `json:"client_addr"`
		Details      map[string]any `json:"details"`
	} `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func TestAuditLogRecordsEveryChange(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	sb := e.createSandbox(e.admin, p, "QA")
	d, dtok := e.createDomain(e.admin, "example.com")
	tok := e.send(request{method: "POST", path: "/api/api_tokens", token: e.admin, from: "127.0.0.9",
		body: map[string]any{"name": "ci", "resources": []any{perm("project", p, 10)}}}).want(200)
	var created apiToken
	tok.decode(&created)
	e.secrets.add(created.Token)
	e.patch(e.path("/api/api_tokens/%d", created.ID), e.admin, map[string]any{"name": "ci-2"}).want(200)
	var fresh apiToken
	e.post(e.path("/api/api_tokens/%d/reset", created.ID), e.admin, nil).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	e.del(e.path("/api/api_tokens/%d", fresh.ID), e.admin).want(204)
	e.patch(e.path("/api/accounts/%d/inboxes/%d", e.acme, sb), e.admin, map[string]any{"inbox": map[string]any{"name": "QA2"}}).want(200)
	e.del(e.path("/api/accounts/%d/projects/%d", e.acme, p), e.admin).want(204)
	if _, err := e.svc.SetPlan(t.Context(), e.acme, tokend.PlanPro, 0, 0, "ops"); err != nil {
		t.Fatal(err)
	}

	r := e.get("/api/audit_log?limit=200", e.admin).want(200)
	var page auditPage
	r.decode(&page)
	var actions []string
	for _, ev := range page.Data {
		actions = append(actions, ev.Action+":"+ev.TargetType)
	}
	want := []string{
		"plan.changed:account", "resource.deleted:project", "resource.renamed:sandbox", "token.deleted:api_token",
		"token.reset:api_token", "token.updated:api_token", "token.created:api_token",
		"token.created:api_token", "resource.created:domain", "resource.created:sandbox", "resource.created:project",
		"plan.changed:account", "token.created:api_token", "account.created:account", // the test setup
	}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Fatalf("audit actions, newest first:\n got %v\nwant %v", actions, want)
	}
	byAction := page.Data[6] // token.created for "ci"
	if byAction.Actor != "Admin token" || byAction.ActorTokenID == nil || *byAction.ActorTokenID != e.adminID ||
		byAction.TargetID == nil || *byAction.TargetID != created.ID || byAction.ClientAddr != "127.0.0.9" || byAction.Details["name"] != "ci" {
		t.Errorf("token.created event = %+v", byAction)
	}
	if plan := page.Data[0]; plan.Actor != "ops" || plan.ActorTokenID != nil || plan.Details["plan"] != "pro" || plan.Details["from_plan"] != "enterprise" {
		t.Errorf("plan.changed event = %+v", plan)
	}
	if dom := page.Data[8]; dom.TargetID == nil || *dom.TargetID != d || dom.Details["name"] != "example.com" {
		t.Errorf("domain event = %+v", dom)
	}
	// No token value, nor any part of one, is in the log.
	for _, v := range []string{e.admin, created.Token, fresh.Token, dtok.Token} {
		if strings.Contains(string(r.Body), v[8:]) {
			t.Fatal("the audit log holds a token value")
		}
	}
	if regexp.MustCompile(`tk_(live|test)_`).Match(r.Body) {
		t.Fatal("the audit log holds something shaped like a token value")
	}
	// Another account sees none of it.
	var other auditPage
	e.get("/api/audit_log", e.otherAdmin).want(200).decode(&other)
	for _, ev := range other.Data {
		if ev.Action != "account.created" && ev.Action != "token.created" && ev.Action != "plan.changed" {
			t.Errorf("other account sees %+v", ev)
		}
	}
}

func TestAuditLogPagination(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 7; i++ {
		e.createProject(e.admin, fmt.Sprint("p", i))
	}
	// 3 setup events (account, token, plan) + 7 projects = 10 events; pages of 4: 4, 4, 2.
	var ids []int64
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		path := "/api/audit_log?limit=4"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page auditPage
		e.get(path, e.admin).want(200).decode(&page)
		for _, ev := range page.Data {
			ids = append(ids, ev.ID)
		}
		if page.NextCursor == nil {
			if len(page.Data) != 2 {
				t.Errorf("last page has %d events, want 2", len(page.Data))
			}
			break
		}
		cursor = *page.NextCursor
	}
	if len(ids) != 10 {
		t.Fatalf("paged through %d events, want 10", len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("events not newest first: %v", ids)
		}
	}
	// The account-scoped path gives the same.
	e.get(e.path("/api/accounts/%d/audit_log", e.acme), e.admin).want(200)
	e.get(e.path("/api/accounts/%d/audit_log", e.other), e.admin).want(404)
}

func TestAuditLogErrors(t *testing.T) {
	e := newEnv(t)
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10))
	r := e.get("/api/audit_log", viewer.Token).want(403)
	if !strings.Contains(string(r.Body), "account admin") {
		t.Errorf("403 body %s", r.Body)
	}
	for _, q := range []string{"cursor=nonsense", "cursor=MA", "limit=0", "limit=x", "limit=-3"} {
		e.get("/api/audit_log?"+q, e.admin).want(422)
	}
	e.get("/api/audit_log?limit=100000", e.admin).want(200)
	e.send(request{method: "GET", path: "/api/audit_log", header: http.Header{}}).want(401)
}
