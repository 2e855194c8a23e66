package api_test

import (
	"fmt"
	"strings"
	"testing"
)

type resourceJSON struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	DomainName  string `json:"domain_name"`
	ProjectID   int64  `json:"project_id"`
	Permissions struct {
		CanRead    bool `json:"can_read"`
		CanUpdate  bool `json:"can_update"`
		CanDestroy bool `json:"can_destroy"`
	} `json:"permissions"`
}

func TestAccounts(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10))
	projectOnly := e.createToken(e.admin, "project", perm("project", p, 100))
	tests := []struct {
		name, token string
		levels      string
	}{
		{"admin", e.admin, "[100]"},
		{"viewer", viewer.Token, "[10]"},
		{"project only", projectOnly.Token, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var accounts []struct {
				ID           int64 `json:"id"`
				Name         string
				AccessLevels []int `json:"access_levels"`
			}
			e.get("/api/accounts", tt.token).want(200).decode(&accounts)
			if len(accounts) != 1 || accounts[0].ID != e.acme || accounts[0].Name != "Acme" || fmt.Sprint(accounts[0].AccessLevels) != tt.levels {
				t.Errorf("accounts = %+v, want Acme with levels %s", accounts, tt.levels)
			}
		})
	}
}

func TestProjectsAndSandboxes(t *testing.T) {
	e := newEnv(t)
	a := e.acme
	var p resourceJSON
	e.post(e.path("/api/accounts/%d/projects", a), e.admin, map[string]any{"project": map[string]any{"name": "  Web  "}}).want(200).decode(&p)
	if p.Name != "Web" || !p.Permissions.CanRead || !p.Permissions.CanUpdate || !p.Permissions.CanDestroy {
		t.Fatalf("created project = %+v", p)
	}
	e.patch(e.path("/api/accounts/%d/projects/%d", a, p.ID), e.admin, map[string]any{"project": map[string]any{"name": "Website"}}).want(200).decode(&p)
	if p.Name != "Website" {
		t.Errorf("renamed project = %+v", p)
	}
	var sb resourceJSON
	e.post(e.path("/api/accounts/%d/projects/%d/inboxes", a, p.ID), e.admin, map[string]any{"inbox": map[string]any{"name": "QA"}}).want(200).decode(&sb)
	if sb.ProjectID != p.ID || sb.Name != "QA" {
		t.Errorf("sandbox = %+v", sb)
	}
	other := e.createProject(e.admin, "Other")
	otherSB := e.createSandbox(e.admin, other, "Other QA")

	// A project viewer reads the project and its sandboxes but may change neither.
	pv := e.createToken(e.admin, "project viewer", perm("project", p.ID, 10))
	var got resourceJSON
	e.get(e.path("/api/accounts/%d/projects/%d", a, p.ID), pv.Token).want(200).decode(&got)
	if !got.Permissions.CanRead || got.Permissions.CanUpdate || got.Permissions.CanDestroy {
		t.Errorf("viewer's permissions = %+v", got.Permissions)
	}
	var projects, sandboxes []resourceJSON
	e.get(e.path("/api/accounts/%d/projects", a), pv.Token).want(200).decode(&projects)
	e.get(e.path("/api/accounts/%d/inboxes", a), pv.Token).want(200).decode(&sandboxes)
	if len(projects) != 1 || projects[0].ID != p.ID || len(sandboxes) != 1 || sandboxes[0].ID != sb.ID {
		t.Errorf("project viewer lists projects %+v and sandboxes %+v", projects, sandboxes)
	}
	// A sandbox admin sees its sandbox only, and may rename it.
	sa := e.createToken(e.admin, "sandbox admin", perm("sandbox", sb.ID, 100))
	e.get(e.path("/api/accounts/%d/projects", a), sa.Token).want(200).decode(&projects)
	if len(projects) != 0 {
		t.Errorf("sandbox admin lists projects %+v", projects)
	}
	e.patch(e.path("/api/accounts/%d/inboxes/%d", a, sb.ID), sa.Token, map[string]any{"inbox": map[string]any{"name": "QA 2"}}).want(200)
	e.get(e.path("/api/accounts/%d/inboxes/%d", a, otherSB), sa.Token).want(404)

	// Deleting the project takes its sandbox and the permissions naming either.
	e.del(e.path("/api/accounts/%d/projects/%d", a, p.ID), e.admin).want(204)
	e.get(e.path("/api/accounts/%d/inboxes/%d", a, sb.ID), e.admin).want(404)
	for _, tok := range []apiToken{pv, sa} {
		var after apiToken
		e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200).decode(&after)
		if len(after.Resources) != 0 {
			t.Errorf("token %q keeps %+v after its resources were deleted", after.Name, after.Resources)
		}
	}
	// With nothing left, those tokens see no project.
	e.get(e.path("/api/accounts/%d/projects/%d", a, other), pv.Token).want(404)
}

func TestSendingDomains(t *testing.T) {
	e := newEnv(t)
	a := e.acme
	var d struct {
		resourceJSON
		APIToken apiToken `json:"api_token"`
	}
	e.post(e.path("/api/accounts/%d/sending_domains", a), e.admin,
		map[string]any{"sending_domain": map[string]any{"domain_name": "Mail.Example.com"}}).want(200).decode(&d)
	e.secrets.add(d.APIToken.Token)
	if d.DomainName != "mail.example.com" {
		t.Errorf("domain_name = %q, want it lower-cased", d.DomainName)
	}
	tok := d.APIToken
	if tok.Name != fmt.Sprintf("mail.example.com token %d", tok.ID) || tok.CreatedBy != "Admin token" || !strings.HasPrefix(tok.Token, "tk_live_") {
		t.Errorf("domain token = %+v", tok)
	}
	if fmt.Sprint(tok.Resources) != fmt.Sprintf("[{domain %d 100}]", d.ID) {
		t.Errorf("domain token resources = %+v, want domain admin", tok.Resources)
	}
	// The domain's token works and sees its domain, not others.
	other, _ := e.createDomain(e.admin, "other.example.com")
	var list struct{ Data []resourceJSON }
	e.get(e.path("/api/accounts/%d/sending_domains", a), tok.Token).want(200).decode(&list)
	if len(list.Data) != 1 || list.Data[0].ID != d.ID || !list.Data[0].Permissions.CanDestroy {
		t.Errorf("domain token lists %+v", list.Data)
	}
	e.get(e.path("/api/accounts/%d/sending_domains/%d", a, other), tok.Token).want(404)
	e.get(e.path("/api/accounts/%d/sending_domains", a), e.admin).want(200).decode(&list)
	if len(list.Data) != 2 {
		t.Errorf("admin lists %d domains, want 2", len(list.Data))
	}
	// GET does not show the token again.
	body := e.get(e.path("/api/accounts/%d/sending_domains/%d", a, d.ID), e.admin).want(200).Body
	if strings.Contains(string(body), "api_token") {
		t.Errorf("GET domain shows its token: %s", body)
	}
	// Deleting the domain strips the permission from its token, which stays.
	e.del(e.path("/api/accounts/%d/sending_domains/%d", a, d.ID), tok.Token).want(204)
	var after apiToken
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200).decode(&after)
	if len(after.Resources) != 0 {
		t.Errorf("domain token keeps %+v", after.Resources)
	}
}

func TestHealthAndOpenAPI(t *testing.T) {
	e := newEnv(t)
	if body := e.get("/healthz", "").want(200).object(); body["status"] != "ok" {
		t.Errorf("healthz = %v", body)
	}
	doc := e.get("/api/openapi.json", "").want(200).object()
	if doc["openapi"] != "3.0.3" {
		t.Errorf("served document declares openapi %v", doc["openapi"])
	}
}

func TestWhoami(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	tok := e.createToken(e.admin, "me", perm("project", p, 100))
	var got struct {
		ID          int64  `json:"id"`
		Name        string `json:"name"`
		AccountID   int64  `json:"account_id"`
		Environment string `json:"environment"`
		Resources   []struct {
			ResourceType string `json:"resource_type"`
			ResourceID   int64  `json:"resource_id"`
		} `json:"resources"`
	}
	e.get("/api/whoami", tok.Token).want(200).decode(&got)
	if got.ID != tok.ID || got.Name != "me" || got.AccountID != e.acme || got.Environment != "live" ||
		len(got.Resources) != 1 || got.Resources[0].ResourceID != p {
		t.Errorf("whoami = %+v", got)
	}
	e.get("/api/whoami", "").want(401)
}
