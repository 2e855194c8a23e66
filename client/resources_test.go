package client_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tokend/tokend/client"
)

func TestAccountsAndWhoami(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	counter := &countingTransport{}
	admin := e.client(e.admin, client.WithHTTPClient(&http.Client{Transport: counter}), client.WithUserAgent("client-test"))

	accounts, err := admin.ListAccounts(ctx)
	ok(t, err)
	if len(accounts) != 1 || accounts[0].ID != e.acme || accounts[0].Name != "Acme" ||
		len(accounts[0].AccessLevels) != 1 || accounts[0].AccessLevels[0] != client.Admin {
		t.Errorf("accounts = %+v", accounts)
	}
	ok(t, admin.Health(ctx))

	// The account id is looked up once, then remembered.
	for range 3 {
		if id, err := admin.AccountID(ctx); err != nil || id != e.acme {
			t.Fatalf("AccountID = %d, %v; want %d", id, err, e.acme)
		}
		if _, err := admin.ListProjects(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := counter.count("/api/whoami"); n != 1 {
		t.Errorf("whoami asked %d times, want once", n)
	}
	// Given, it is never looked up.
	given := &countingTransport{}
	c := e.client(e.admin, client.WithHTTPClient(&http.Client{Transport: given}), client.WithAccountID(e.acme))
	_, err = c.ListSandboxes(ctx)
	ok(t, err)
	if n := given.count("/api/whoami"); n != 0 {
		t.Errorf("whoami asked %d times with WithAccountID", n)
	}
	// A wrong one is a 404: other accounts are invisible.
	_, err = e.client(e.admin, client.WithAccountID(e.other)).ListProjects(ctx)
	if !client.IsNotFound(err) {
		t.Errorf("another account's projects: %v, want 404", err)
	}
	// A token that does not authenticate cannot resolve its account.
	_, err = e.client("tk_live_nope").ListProjects(ctx)
	if ae := apiError(t, err, http.StatusUnauthorized); ae.Code != "invalid_api_key" {
		t.Errorf("bad token resolving its account: %v", ae)
	}
}

func TestProjectsSandboxesDomains(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)

	web, err := admin.CreateProject(ctx, "Web")
	ok(t, err)
	mobile, err := admin.CreateProject(ctx, "Mobile")
	ok(t, err)
	if web.Name != "Web" || web.ID == 0 || !web.CreatedAt.Equal(e.clock.Now()) ||
		web.Access != (client.ResourceAccess{CanRead: true, CanUpdate: true, CanDestroy: true}) {
		t.Errorf("project = %+v", web)
	}
	renamed, err := admin.RenameProject(ctx, web.ID, "Website")
	ok(t, err)
	got, err := admin.GetProject(ctx, web.ID)
	ok(t, err)
	if renamed.Name != "Website" || got.Name != "Website" {
		t.Errorf("renamed %+v, then got %+v", renamed, got)
	}

	qa, err := admin.CreateSandbox(ctx, web.ID, "QA")
	ok(t, err)
	if qa.ProjectID != web.ID || qa.Name != "QA" {
		t.Errorf("sandbox = %+v", qa)
	}
	_, err = admin.RenameSandbox(ctx, qa.ID, "Staging")
	ok(t, err)
	sb, err := admin.GetSandbox(ctx, qa.ID)
	ok(t, err)
	if sb.Name != "Staging" {
		t.Errorf("renamed sandbox = %+v", sb)
	}

	d, err := admin.CreateDomain(ctx, "Mail.Example.com")
	ok(t, err)
	if d.Name != "mail.example.com" || len(d.DNSRecords) == 0 || d.Token.Value == "" ||
		d.Token.Name != "mail.example.com token "+strconv.FormatInt(d.Token.ID, 10) ||
		len(d.Token.Permissions) != 1 || d.Token.Permissions[0] != perm("domain", d.ID, client.Admin) {
		t.Errorf("created domain = %+v", d)
	}
	var dkim bool
	for _, r := range d.DNSRecords {
		dkim = dkim || r.Key == "dkim" && r.Type == "TXT" && strings.HasSuffix(r.Domain, ".mail.example.com") && r.Status == "unchecked"
	}
	if !dkim {
		t.Errorf("no DKIM record in %+v", d.DNSRecords)
	}
	// The domain's own token works and sees the domain.
	domainClient := e.client(d.Token.Value)
	if list, err := domainClient.ListDomains(ctx); err != nil || len(list) != 1 || list[0].ID != d.ID {
		t.Errorf("the domain token's domains: %+v, %v", list, err)
	}
	gotDomain, err := admin.GetDomain(ctx, d.ID)
	ok(t, err)
	if gotDomain.Name != d.Name || len(gotDomain.DNSRecords) != len(d.DNSRecords) {
		t.Errorf("get domain = %+v", gotDomain)
	}

	// A viewer reads but may not change.
	v, err := admin.CreateToken(ctx, client.NewToken{Name: "viewer", Permissions: []client.Permission{perm("project", web.ID, client.Viewer)}})
	ok(t, err)
	viewer := e.client(v.Value)
	projects, err := viewer.ListProjects(ctx)
	ok(t, err)
	if len(projects) != 1 || projects[0].ID != web.ID || projects[0].Access != (client.ResourceAccess{CanRead: true}) {
		t.Errorf("a project viewer sees %+v", projects)
	}
	if sandboxes, err := viewer.ListSandboxes(ctx); err != nil || len(sandboxes) != 1 || sandboxes[0].ID != qa.ID {
		t.Errorf("a project viewer's sandboxes: %+v, %v", sandboxes, err)
	}
	for name, call := range map[string]func() error{
		"rename":         func() error { _, err := viewer.RenameProject(ctx, web.ID, "x"); return err },
		"create sandbox": func() error { _, err := viewer.CreateSandbox(ctx, web.ID, "x"); return err },
		"delete":         func() error { return viewer.DeleteProject(ctx, web.ID) },
		"create domain":  func() error { _, err := viewer.CreateDomain(ctx, "b.example.com"); return err },
	} {
		if ae := apiError(t, call(), http.StatusForbidden); ae.Code != "forbidden" || ae.Message == "" {
			t.Errorf("viewer %s: %v", name, ae)
		}
	}
	if _, err := viewer.GetProject(ctx, mobile.ID); !client.IsNotFound(err) {
		t.Errorf("a project the viewer cannot read: %v, want 404", err)
	}

	// Bad input is a 422 naming the field.
	for name, call := range map[string]func() error{
		"blank project": func() error { _, err := admin.CreateProject(ctx, ""); return err },
		"blank sandbox": func() error { _, err := admin.CreateSandbox(ctx, web.ID, " "); return err },
		"bad domain":    func() error { _, err := admin.CreateDomain(ctx, "not a domain"); return err },
		"blank rename":  func() error { _, err := admin.RenameSandbox(ctx, qa.ID, ""); return err },
		"blank domain":  func() error { _, err := admin.CreateDomain(ctx, ""); return err },
	} {
		if ae := apiError(t, call(), http.StatusUnprocessableEntity); len(ae.Fields) == 0 {
			t.Errorf("%s: no fields in %v", name, ae)
		}
	}

	// Deleting: a project takes its sandboxes with it.
	ok(t, admin.DeleteProject(ctx, web.ID))
	if _, err := admin.GetSandbox(ctx, qa.ID); !client.IsNotFound(err) {
		t.Errorf("sandbox of a deleted project: %v", err)
	}
	list, err := admin.ListProjects(ctx)
	ok(t, err)
	if len(list) != 1 || list[0].ID != mobile.ID {
		t.Errorf("projects after the delete = %+v", list)
	}
	ok(t, admin.DeleteDomain(ctx, d.ID))
	if domains, err := admin.ListDomains(ctx); err != nil || len(domains) != 0 {
		t.Errorf("domains after the delete = %+v, %v", domains, err)
	}
	if err := admin.DeleteSandbox(ctx, qa.ID); !client.IsNotFound(err) {
		t.Errorf("deleting a deleted sandbox: %v", err)
	}
}
