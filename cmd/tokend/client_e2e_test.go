package main_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
)

// TestGoClientAgainstServe drives the real "tokend serve" through the Go
// client: the first admin token it prints, a project, a token scoped to it,
// verified, deleted, and then unknown.
func TestGoClientAgainstServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db)
	adminToken := s.WaitToken(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	admin, err := client.New(s.URL, adminToken, client.WithUserAgent("tokend-e2e"))
	if err != nil {
		t.Fatal(err)
	}
	me, err := admin.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if me.Name != "Admin token" || me.AccountID == 0 ||
		len(me.Permissions) != 1 || me.Permissions[0] != (client.Permission{ResourceType: "account", ResourceID: me.AccountID, AccessLevel: client.Admin}) {
		t.Fatalf("whoami = %+v", me)
	}

	project, err := admin.CreateProject(ctx, "Web")
	if err != nil {
		t.Fatal(err)
	}
	viewerOfProject := client.Permission{ResourceType: "project", ResourceID: project.ID, AccessLevel: client.Viewer}
	scoped, err := admin.CreateToken(ctx, client.NewToken{Name: "web reader", Permissions: []client.Permission{viewerOfProject}})
	if err != nil {
		t.Fatal(err)
	}

	v, err := admin.Verify(ctx, scoped.Value, viewerOfProject)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.Code != client.CodeValid || v.TokenID != scoped.ID || v.AccountID != me.AccountID {
		t.Errorf("verify the scoped token = %+v", v)
	}
	adminOfProject := viewerOfProject
	adminOfProject.AccessLevel = client.Admin
	if v, err := admin.Verify(ctx, scoped.Value, adminOfProject); err != nil || v.Code != client.CodeInsufficientPermissions {
		t.Errorf("verify admin on the project: %+v, %v", v, err)
	}
	// The scoped token works for what it holds, and nothing more.
	reader, err := client.New(s.URL, scoped.Value)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := reader.GetProject(ctx, project.ID); err != nil || got.Name != "Web" {
		t.Errorf("the scoped token reading its project: %+v, %v", got, err)
	}
	if _, err := reader.CreateProject(ctx, "Other"); client.StatusOf(err) != 403 {
		t.Errorf("the scoped token creating a project: %v, want 403", err)
	}

	if err := admin.DeleteToken(ctx, scoped.ID); err != nil {
		t.Fatal(err)
	}
	v, err = admin.Verify(ctx, scoped.Value)
	if err != nil {
		t.Fatal(err)
	}
	if v.Valid || v.Code != client.CodeNotFound || v.TokenID != 0 {
		t.Errorf("verify the deleted token = %+v, want NOT_FOUND", v)
	}
	if _, err := admin.GetToken(ctx, scoped.ID); !client.IsNotFound(err) {
		t.Errorf("get the deleted token: %v, want 404", err)
	}
	s.Stop(t)
}
