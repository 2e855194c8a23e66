package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
)

func TestVerify(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)
	p, err := admin.CreateProject(ctx, "Web")
	ok(t, err)
	other, err := admin.CreateProject(ctx, "Other")
	ok(t, err)
	worker, err := admin.CreateToken(ctx, client.NewToken{Name: "worker", Permissions: []client.Permission{perm("project", p.ID, client.Viewer)}})
	ok(t, err)
	foreign := mustToken(t, e.client(e.otherAdmin))
	tests := []struct {
		name     string
		token    string
		required []client.Permission
		code     string
		ownToken bool // the answer describes the token
	}{
		{"valid", worker.Value, nil, client.CodeValid, true},
		{"valid with what it holds", worker.Value, []client.Permission{client.MustPermission("project:" + itoa(p.ID) + ":viewer")}, client.CodeValid, true},
		{"a permission it lacks", worker.Value, []client.Permission{perm("project", other.ID, client.Viewer)}, client.CodeInsufficientPermissions, true},
		{"admin where it is viewer", worker.Value, []client.Permission{perm("project", p.ID, client.Admin)}, client.CodeInsufficientPermissions, true},
		{"not a token", "hello", nil, client.CodeNotFound, false},
		{"another account's token", foreign, nil, client.CodeNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := admin.Verify(ctx, tt.token, tt.required...)
			ok(t, err)
			if v.Code != tt.code || v.Valid != (tt.code == client.CodeValid) {
				t.Errorf("verification = %+v, want %s", v, tt.code)
			}
			if tt.ownToken && (v.TokenID != worker.ID || v.Name != "worker" || v.AccountID != e.acme || len(v.Permissions) != 1) {
				t.Errorf("verification does not describe the token: %+v", v)
			}
			if !tt.ownToken && v.TokenID != 0 {
				t.Errorf("verification of a token outside the account describes it: %+v", v)
			}
		})
	}
	// Deleted: NOT_FOUND.
	ok(t, admin.DeleteToken(ctx, worker.ID))
	if v, err := admin.Verify(ctx, worker.Value); err != nil || v.Code != client.CodeNotFound {
		t.Errorf("a deleted token: %+v, %v", v, err)
	}
}

func TestAuthChanges(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	admin := e.client(e.admin)
	worker, err := admin.CreateToken(ctx, client.NewToken{Name: "worker"})
	ok(t, err)

	s, err := admin.AuthChanges(ctx)
	ok(t, err)
	defer s.Close()
	ev, err := s.Next()
	ok(t, err)
	if ev.Kind != client.EventReady {
		t.Fatalf("first event %+v, want ready", ev)
	}
	ok(t, admin.DeleteToken(ctx, worker.ID))
	ev, err = s.Next()
	ok(t, err)
	if ev.Kind != client.EventToken || ev.TokenID != worker.ID || ev.AccountID != e.acme {
		t.Errorf("after a delete: %+v, want a token event for %d", ev, worker.ID)
	}
	// A resource deleted changes every token of the account.
	p, err := admin.CreateProject(ctx, "Temp")
	ok(t, err)
	ok(t, admin.DeleteProject(ctx, p.ID))
	ev, err = s.Next()
	ok(t, err)
	if ev.Kind != client.EventAccount || ev.AccountID != e.acme || ev.TokenID != 0 {
		t.Errorf("after a project delete: %+v, want an account event", ev)
	}
	ok(t, s.Close())
}
