package client_test

import (
	"net/http"
	"testing"

	"github.com/tokend/tokend/client"
)

func TestAuditLogPages(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)
	p, err := admin.CreateProject(ctx, "Web")
	ok(t, err)
	tok, err := admin.CreateToken(ctx, client.NewToken{Name: "worker", Permissions: []client.Permission{perm("project", p.ID, client.Viewer)}})
	ok(t, err)
	_, err = admin.UpdateToken(ctx, tok.ID, client.TokenUpdate{Name: new("worker 2")})
	ok(t, err)
	ok(t, admin.DeleteToken(ctx, tok.ID))

	first, err := admin.AuditLog(ctx, client.AuditLogOptions{Limit: 2})
	ok(t, err)
	if len(first.Events) != 2 || first.NextCursor == "" {
		t.Fatalf("first page = %+v", first)
	}
	latest := first.Events[0]
	if latest.Action != "token.deleted" || latest.TargetType != "api_token" || latest.TargetID != tok.ID ||
		latest.ActorTokenID != e.adminID || latest.Actor != "Admin token" || latest.At.IsZero() || latest.Details == nil {
		t.Errorf("latest event = %+v", latest)
	}
	second, err := admin.AuditLog(ctx, client.AuditLogOptions{Limit: 2, Cursor: first.NextCursor})
	ok(t, err)
	if len(second.Events) != 2 || second.Events[0].ID >= first.Events[1].ID {
		t.Errorf("second page = %+v, want older events than the first", second.Events)
	}

	// The iterator walks every page, newest first.
	var actions []string
	var last int64
	for ev, err := range admin.AuditEvents(ctx, 2) {
		ok(t, err)
		if last != 0 && ev.ID >= last {
			t.Fatalf("event %d after %d: not newest first", ev.ID, last)
		}
		last = ev.ID
		actions = append(actions, ev.Action)
	}
	all, err := admin.AuditLog(ctx, client.AuditLogOptions{Limit: 200})
	ok(t, err)
	if len(actions) != len(all.Events) || all.NextCursor != "" || len(actions) < 5 {
		t.Errorf("the iterator saw %d events %v, one page of 200 holds %d", len(actions), actions, len(all.Events))
	}
	// Stopping early stops fetching.
	n := 0
	for range admin.AuditEvents(ctx, 1) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("iterated %d events after break", n)
	}

	tests := []struct {
		name   string
		c      *client.Client
		opts   client.AuditLogOptions
		status int
		field  string
	}{
		{"a cursor tokend did not issue", admin, client.AuditLogOptions{Cursor: "nope"}, 422, "cursor"},
		{"a negative limit", admin, client.AuditLogOptions{Limit: -1}, 422, "limit"},
		{"a project admin is not an account admin", e.client(mustToken(t, admin, perm("project", p.ID, client.Admin))), client.AuditLogOptions{}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.AuditLog(ctx, tt.opts)
			ae := apiError(t, err, tt.status)
			if tt.field != "" && len(ae.Fields[tt.field]) == 0 {
				t.Errorf("fields %v do not name %s", ae.Fields, tt.field)
			}
		})
	}
	// An error ends the walk after being yielded once.
	var errs int
	for _, err := range e.client("tk_live_nope").AuditEvents(ctx, 0) {
		if client.StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("walk error %v", err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("%d errors yielded, want 1", errs)
	}
}

// mustToken creates a token holding perms and returns its value.
func mustToken(t *testing.T, c *client.Client, perms ...client.Permission) string {
	t.Helper()
	tok, err := c.CreateToken(t.Context(), client.NewToken{Name: "helper", Permissions: perms})
	ok(t, err)
	return tok.Value
}
