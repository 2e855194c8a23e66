package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
)

func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)

	// Create: the value is in this answer only.
	created, err := admin.CreateToken(ctx, client.NewToken{Name: "CI deploys",
		Permissions: []client.Permission{perm("account", e.acme, client.Viewer)}})
	ok(t, err)
	if !strings.HasPrefix(created.Value, "tk_live_") || created.Last4 != created.Value[len(created.Value)-4:] {
		t.Fatalf("issued value %q, last 4 %q", created.Value, created.Last4)
	}
	if created.Name != "CI deploys" || created.Environment != client.EnvironmentLive || created.ExpiresAt != nil ||
		created.CreatedBy != "Admin token" || !created.CreatedAt.Equal(e.clock.Now()) ||
		!slices.Equal(created.Permissions, []client.Permission{perm("account", e.acme, client.Viewer)}) {
		t.Errorf("created = %+v", created.Token)
	}

	// The new token works and says who it is.
	ci := e.client(created.Value)
	who, err := ci.Whoami(ctx)
	ok(t, err)
	if who.ID != created.ID || who.Name != "CI deploys" || who.AccountID != e.acme || len(who.Permissions) != 1 {
		t.Errorf("whoami = %+v", who)
	}

	// List and Get show it, without its value.
	list, err := admin.ListTokens(ctx)
	ok(t, err)
	ids := []int64{}
	for _, tok := range list {
		ids = append(ids, tok.ID)
	}
	if !slices.Contains(ids, created.ID) || !slices.Contains(ids, e.adminID) {
		t.Errorf("list holds %v, want the admin %d and the new token %d", ids, e.adminID, created.ID)
	}
	got, err := admin.GetToken(ctx, created.ID)
	ok(t, err)
	if got.ID != created.ID || got.Last4 != created.Last4 || got.Name != created.Name {
		t.Errorf("get = %+v", got)
	}

	// Update: name alone, then permissions alone; the other stays.
	updated, err := admin.UpdateToken(ctx, created.ID, client.TokenUpdate{Name: new("CI")})
	ok(t, err)
	if updated.Name != "CI" || len(updated.Permissions) != 1 || updated.Permissions[0].AccessLevel != client.Viewer {
		t.Errorf("renamed = %+v", updated)
	}
	project, err := admin.CreateProject(ctx, "Web")
	ok(t, err)
	updated, err = admin.UpdateToken(ctx, created.ID, client.TokenUpdate{
		Permissions: &[]client.Permission{perm("project", project.ID, client.Admin)}})
	ok(t, err)
	if updated.Name != "CI" || !slices.Equal(updated.Permissions, []client.Permission{perm("project", project.ID, client.Admin)}) {
		t.Errorf("permissions replaced = %+v", updated)
	}
	if who, err := ci.Whoami(ctx); err != nil || who.Permissions[0].ResourceType != "project" {
		t.Errorf("the token's own view after the update: %+v, %v", who, err)
	}

	// Usage counts the requests the token made: its two Whoami.
	usage, err := admin.TokenUsage(ctx, created.ID)
	ok(t, err)
	if usage.TokenID != created.ID || len(usage.Days) != 1 || usage.Days[0].Success != 2 || usage.Days[0].Total != 2 ||
		!usage.Days[0].Date.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || usage.LastUsedAt == nil {
		t.Errorf("usage = %+v", usage)
	}

	// Reset: a new token; the old value keeps working for the grace period.
	fresh, err := admin.ResetToken(ctx, created.ID, client.Expiry{})
	ok(t, err)
	if fresh.ID == created.ID || fresh.Value == "" || fresh.Value == created.Value ||
		fresh.Name != fmt.Sprintf("CI token %d", fresh.ID) || !slices.Equal(fresh.Permissions, updated.Permissions) {
		t.Errorf("reset = %+v", fresh.Token)
	}
	for name, c := range map[string]*client.Client{"old": ci, "new": e.client(fresh.Value)} {
		if _, err := c.Whoami(ctx); err != nil {
			t.Errorf("during the grace period the %s value: %v", name, err)
		}
	}
	old, err := admin.GetToken(ctx, created.ID)
	ok(t, err)
	if old.ExpiresAt == nil || !old.ExpiresAt.Equal(e.clock.Now().Add(12*time.Hour)) {
		t.Errorf("the reset token expires at %v, want the end of the grace period", old.ExpiresAt)
	}
	_, err = admin.ResetToken(ctx, created.ID, client.Expiry{})
	if ae := apiError(t, err, http.StatusUnprocessableEntity); len(ae.Fields["base"]) == 0 {
		t.Errorf("a second reset: %v", ae)
	}
	e.clock.Advance(12*time.Hour + time.Second)
	_, err = ci.Whoami(ctx)
	if ae := apiError(t, err, http.StatusUnauthorized); ae.Code != "expired_api_key" {
		t.Errorf("after the grace period the old value: %v", ae)
	}

	// Delete: the value stops working at once and the token is gone.
	ok(t, admin.DeleteToken(ctx, fresh.ID))
	if _, err := admin.GetToken(ctx, fresh.ID); !client.IsNotFound(err) {
		t.Errorf("get after delete: %v, want 404", err)
	}
	_, err = e.client(fresh.Value).Whoami(ctx)
	if ae := apiError(t, err, http.StatusUnauthorized); ae.Code != "invalid_api_key" {
		t.Errorf("a deleted token: %v", ae)
	}
}

// Expiry distinguishes the server's default from an explicit never.
func TestTokenExpiry(t *testing.T) {
	const ttl = 24 * time.Hour
	e := newEnv(t, withDefaultTTL(ttl))
	ctx := t.Context()
	admin := e.client(e.admin)
	now := e.clock.Now()
	at := now.Add(72 * time.Hour)
	tests := []struct {
		name   string
		expiry client.Expiry
		want   *time.Time // nil: never
	}{
		{"default is the server's TTL", client.Expiry{}, new(now.Add(ttl))},
		{"never overrides the default", client.NeverExpires(), nil},
		{"a time", client.ExpiresAt(at), &at},
		{"a time in another zone", client.ExpiresAt(at.In(time.FixedZone("CEST", 2*3600))), &at},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, got *time.Time) {
				t.Helper()
				if (got == nil) != (tt.want == nil) || got != nil && !got.Equal(*tt.want) {
					t.Errorf("%s: expires_at %v, want %v", what, got, tt.want)
				}
			}
			created, err := admin.CreateToken(ctx, client.NewToken{Name: tt.name, ExpiresAt: tt.expiry})
			ok(t, err)
			check("create", created.ExpiresAt)
			reset, err := admin.ResetToken(ctx, created.ID, tt.expiry)
			ok(t, err)
			check("reset", reset.ExpiresAt)
		})
	}
	_, err := admin.CreateToken(ctx, client.NewToken{Name: "past", ExpiresAt: client.ExpiresAt(now.Add(-time.Minute))})
	if ae := apiError(t, err, http.StatusUnprocessableEntity); len(ae.Fields["expires_at"]) == 0 {
		t.Errorf("an expiry in the past: %v", ae)
	}
}

func TestExpiryJSON(t *testing.T) {
	at := time.Date(2030, 1, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"default is left out", client.NewToken{Name: "a"}, `{"name":"a","resources":null}`},
		{"never is null", client.NewToken{Name: "a", ExpiresAt: client.NeverExpires()}, `{"name":"a","resources":null,"expires_at":null}`},
		{"a time", client.NewToken{Name: "a", ExpiresAt: client.ExpiresAt(at)}, `{"name":"a","resources":null,"expires_at":"2030-01-31T12:00:00Z"}`},
		{"an update leaves out what it does not change", client.TokenUpdate{Name: new("b")}, `{"name":"b"}`},
		{"an update may take every permission away", client.TokenUpdate{Permissions: &[]client.Permission{}}, `{"resources":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			ok(t, err)
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
	if _, err := json.Marshal(client.Expiry{}); err == nil {
		t.Error("the default Expiry marshaled on its own")
	}
	if tm, set := client.ExpiresAt(at).Time(); !set || !tm.Equal(at) {
		t.Errorf("Time() = %v, %v", tm, set)
	}
	if _, set := client.NeverExpires().Time(); set || client.NeverExpires().IsZero() || !(client.Expiry{}).IsZero() {
		t.Error("never is not told from the default")
	}
}

// The errors a caller branches on: status, code, fields, and 404 for what
// belongs to another account.
func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(e.admin)
	viewer, err := admin.CreateToken(ctx, client.NewToken{Name: "viewer", Permissions: []client.Permission{perm("account", e.acme, client.Viewer)}})
	ok(t, err)
	foreign, err := e.client(e.otherAdmin).CreateToken(ctx, client.NewToken{Name: "theirs"})
	ok(t, err)
	tests := []struct {
		name   string
		call   func() error
		status int
		code   string
		field  string // a field the 422 names
	}{
		{"a viewer cannot create tokens", func() error {
			_, err := e.client(viewer.Value).CreateToken(ctx, client.NewToken{Name: "x", Permissions: []client.Permission{perm("account", e.acme, client.Viewer)}})
			return err
		}, 403, "forbidden", ""},
		{"a bad token", func() error {
			_, err := e.client("tk_live_000000000000000000000000000000000000").ListTokens(ctx)
			return err
		}, 401, "invalid_api_key", ""},
		{"no token", func() error { _, err := e.client("").ListTokens(ctx); return err }, 401, "missing_api_key", ""},
		{"another account's token", func() error { _, err := admin.GetToken(ctx, foreign.ID); return err }, 404, "not_found", ""},
		{"deleting another account's token", func() error { return admin.DeleteToken(ctx, foreign.ID) }, 404, "not_found", ""},
		{"a token that never existed", func() error { _, err := admin.TokenUsage(ctx, 999999); return err }, 404, "not_found", ""},
		{"a blank name", func() error { _, err := admin.CreateToken(ctx, client.NewToken{Name: " "}); return err }, 422, "invalid", "name"},
		{"a bad access level", func() error {
			_, err := admin.CreateToken(ctx, client.NewToken{Name: "x", Permissions: []client.Permission{perm("account", e.acme, 50)}})
			return err
		}, 422, "invalid", "resources"},
		{"a resource of another account", func() error {
			_, err := admin.CreateToken(ctx, client.NewToken{Name: "x", Permissions: []client.Permission{perm("account", e.other, client.Viewer)}})
			return err
		}, 422, "invalid", "resources"},
		{"a bad environment", func() error {
			_, err := admin.CreateToken(ctx, client.NewToken{Name: "x", Environment: "staging"})
			return err
		}, 422, "invalid", "environment"},
		{"renaming to blank", func() error {
			_, err := admin.UpdateToken(ctx, viewer.ID, client.TokenUpdate{Name: new("")})
			return err
		}, 422, "invalid", "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := apiError(t, tt.call(), tt.status)
			if ae.Code != tt.code {
				t.Errorf("code %q, want %q (%v)", ae.Code, tt.code, ae)
			}
			if tt.field != "" && len(ae.Fields[tt.field]) == 0 {
				t.Errorf("fields %v do not name %s", ae.Fields, tt.field)
			}
			if client.IsNotFound(ae) != (tt.status == 404) || client.StatusOf(fmt.Errorf("wrapped: %w", ae)) != tt.status {
				t.Errorf("IsNotFound / StatusOf disagree with %d", tt.status)
			}
			if ae.Error() == "" || !strings.Contains(ae.Error(), fmt.Sprint(tt.status)) {
				t.Errorf("Error() = %q", ae.Error())
			}
		})
	}
}

// A spent plan limit is a 429 that says when to come back.
func TestPlanLimitIs429WithRetryAfter(t *testing.T) {
	e := newEnv(t, withPlan("enterprise", 3))
	ctx := t.Context()
	admin := e.client(e.admin)
	for i := range 3 {
		if _, err := admin.ListTokens(ctx); err != nil {
			t.Fatalf("request %d of 3: %v", i+1, err)
		}
	}
	_, err := admin.ListTokens(ctx)
	ae := apiError(t, err, http.StatusTooManyRequests)
	if ae.Code != "rate_limited" || ae.RetryAfter <= 0 || ae.RetryAfter > time.Minute {
		t.Errorf("429 = %+v", ae)
	}
	// The other account has its own limit; this one is back once the time has passed.
	if _, err := e.client(e.otherAdmin).ListTokens(ctx); err != nil {
		t.Errorf("the other account: %v", err)
	}
	e.clock.Advance(ae.RetryAfter)
	if _, err := admin.ListTokens(ctx); err != nil {
		t.Errorf("after Retry-After: %v", err)
	}
}
