package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCreateTokenReturnsValueOnce(t *testing.T) {
	e := newEnv(t)
	created := e.createToken(e.admin, "CI deploys", perm("account", e.acme, 10))
	if !strings.HasPrefix(created.Token, "tk_live_") || len(created.Token) != len("tk_live_")+36 {
		t.Fatalf("token value %q: want tk_live_ and 36 characters", created.Token)
	}
	if created.Last4 != created.Token[len(created.Token)-4:] {
		t.Errorf("last_4_digits %q is not the end of %q", created.Last4, created.Token)
	}
	if created.CreatedBy != "Admin token" || created.Environment != "live" || created.ExpiresAt != nil {
		t.Errorf("created = %+v", created)
	}
	if len(created.Resources) != 1 || created.Resources[0].ResourceType != "account" || created.Resources[0].AccessLevel != 10 {
		t.Errorf("resources = %+v", created.Resources)
	}
	for _, path := range []string{e.path("/api/api_tokens/%d", created.ID), "/api/api_tokens"} {
		if body := e.get(path, e.admin).want(200).Body; bytes.Contains(body, []byte(created.Token)) || bytes.Contains(body, []byte(`"token"`)) {
			t.Errorf("GET %s shows the token value: %s", path, body)
		}
	}
	// The new token works, and says who it is.
	var self apiToken
	e.get(e.path("/api/api_tokens/%d", created.ID), created.Token).want(200).decode(&self)
	if self.Name != "CI deploys" {
		t.Errorf("self = %+v", self)
	}
}

func TestBearerAndApiTokenHeaders(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"Api-Token", http.Header{"Api-Token": {e.admin}}, 200},
		{"Bearer", http.Header{"Authorization": {"Bearer " + e.admin}}, 200},
		{"bearer in lower case", http.Header{"Authorization": {"bearer " + e.admin}}, 200},
		{"both agreeing", http.Header{"Api-Token": {e.admin}, "Authorization": {"Bearer " + e.admin}}, 200},
		{"both disagreeing", http.Header{"Api-Token": {e.admin}, "Authorization": {"Bearer " + e.otherAdmin}}, 401},
		{"Basic scheme", http.Header{"Authorization": {"Basic " + e.admin}}, 401},
		{"Api-Token beside a Basic header", http.Header{"Api-Token": {e.admin}, "Authorization": {"Basic dXNlcjpwYXNz"}}, 200},
		{"Bearer disagreeing with a repeated Api-Token", http.Header{"Api-Token": {e.admin, e.otherAdmin}}, 401},
		{"Bearer without value", http.Header{"Authorization": {"Bearer"}}, 401},
		{"two Bearer headers disagreeing", http.Header{"Authorization": {"Bearer " + e.admin, "Bearer " + e.otherAdmin}}, 401},
		{"two Bearer headers, the last one differing", http.Header{"Authorization": {"Bearer " + e.otherAdmin, "Bearer " + e.admin}}, 401},
		{"two Bearer headers agreeing", http.Header{"Authorization": {"Bearer " + e.admin, "Bearer " + e.admin}}, 200},
		{"Bearer and Basic without Api-Token", http.Header{"Authorization": {"Bearer " + e.admin, "Basic dXNlcjpwYXNz"}}, 401},
		{"Api-Token with a second Bearer disagreeing", http.Header{"Api-Token": {e.admin}, "Authorization": {"Bearer " + e.admin, "Bearer " + e.otherAdmin}}, 401},
		{"Api-Token, Bearer and Basic agreeing", http.Header{"Api-Token": {e.admin}, "Authorization": {"Basic dXNlcjpwYXNz", "Bearer " + e.admin}}, 200},
		{"a second Api-Token empty", http.Header{"Api-Token": {e.admin, ""}}, 200},
		{"none", http.Header{}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			e.send(request{method: "GET", path: "/api/api_tokens", header: tt.header}).want(tt.want)
		})
	}
}

func TestListShowsOnlyVisibleTokens(t *testing.T) {
	e := newEnv(t)
	p1 := e.createProject(e.admin, "Web")
	p2 := e.createProject(e.admin, "Mobile")
	sb := e.createSandbox(e.admin, p1, "QA")
	projAdmin := e.createToken(e.admin, "p1 admin", perm("project", p1, 100))
	sandboxTok := e.createToken(e.admin, "sandbox viewer", perm("sandbox", sb, 10))
	p2Tok := e.createToken(e.admin, "p2 viewer", perm("project", p2, 10))
	mixed := e.createToken(e.admin, "p1 and p2", perm("project", p1, 10), perm("project", p2, 10))
	bare := e.createToken(e.admin, "no resources")
	viewer := e.createToken(e.admin, "account viewer", perm("account", e.acme, 10))

	ids := func(e *env, token string) []int64 {
		var list []apiToken
		e.get("/api/api_tokens", token).want(200).decode(&list)
		out := []int64{}
		for _, x := range list {
			out = append(out, x.ID)
		}
		return out
	}
	tests := []struct {
		name   string
		caller string
		want   []int64
	}{
		{"account admin sees every token of its account", e.admin, []int64{e.adminID, projAdmin.ID, sandboxTok.ID, p2Tok.ID, mixed.ID, bare.ID, viewer.ID}},
		{"project admin sees itself and tokens inside its project", projAdmin.Token, []int64{projAdmin.ID, sandboxTok.ID}},
		{"viewer sees only itself", viewer.Token, []int64{viewer.ID}},
		{"token without resources sees only itself", bare.Token, []int64{bare.ID}},
		{"other account sees none of these", e.otherAdmin, []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			if got := ids(e, tt.caller); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("visible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnvironmentAndPrefix(t *testing.T) {
	e := newEnv(t)
	var tok apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "staging", "environment": "test",
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	if !strings.HasPrefix(tok.Token, "tk_test_") || tok.Environment != "test" {
		t.Fatalf("test token = %+v", tok)
	}
	e.get("/api/api_tokens", tok.Token).want(200)
	var reset apiToken
	e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, nil).want(200).decode(&reset)
	e.secrets.add(reset.Token)
	if !strings.HasPrefix(reset.Token, "tk_test_") || reset.Environment != "test" {
		t.Errorf("reset of a test token = %+v, want a test token", reset)
	}
}

func TestResourceAliasesAndStringIDs(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	sb := e.createSandbox(e.admin, p, "QA")
	d, _ := e.createDomain(e.admin, "example.com")
	var tok apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "aliases", "resources": []any{
		map[string]any{"resource_type": "inbox", "resource_id": fmt.Sprint(sb), "access_level": 100},
		map[string]any{"resource_type": "sending_domain", "resource_id": d, "access_level": 10},
	}}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	got := fmt.Sprint(tok.Resources)
	if want := fmt.Sprintf("[{sandbox %d 100} {domain %d 10}]", sb, d); got != want {
		t.Errorf("resources = %s, want %s (contract names, integer ids)", got, want)
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	e := newEnv(t)
	var tok apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "x", "id": 999, "created_by": "mallory",
		"last_4_digits": "AAAA", "token": "tk_live_chosen", "account_id": e.other, "resources": []any{}}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	if tok.ID == 999 || tok.CreatedBy != "Admin token" || tok.Last4 == "AAAA" || tok.Token == "tk_live_chosen" {
		t.Fatalf("unknown fields were applied: %+v", tok)
	}
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200)
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.otherAdmin).want(404)
}

func TestDeleteToken(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "temp", perm("account", e.acme, 10))
	e.del(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(204)
	e.get("/api/api_tokens", tok.Token).want(401)
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(404)
	e.del(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(404)
}

func TestTokenMayDeleteItself(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "self-destruct", perm("account", e.acme, 10))
	e.del(e.path("/api/api_tokens/%d", tok.ID), tok.Token).want(204)
	e.get("/api/api_tokens", tok.Token).want(401)
}

func TestResetKeepsOldTokenForGracePeriod(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	old := e.createToken(e.admin, "deploy", perm("project", p, 100))
	var fresh apiToken
	e.post(e.path("/api/api_tokens/%d/reset", old.ID), e.admin, nil).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	if fresh.ID == old.ID || fresh.Token == old.Token || fresh.Name != fmt.Sprintf("deploy token %d", fresh.ID) {
		t.Fatalf("reset returned %+v", fresh)
	}
	if fmt.Sprint(fresh.Resources) != fmt.Sprint(old.Resources) || fresh.CreatedBy != "Admin token" {
		t.Errorf("reset token = %+v, want the old token's resources %+v", fresh, old.Resources)
	}
	var oldNow apiToken
	e.get(e.path("/api/api_tokens/%d", old.ID), e.admin).want(200).decode(&oldNow)
	if want := e.clock.Now().Add(12 * time.Hour); oldNow.ExpiresAt == nil || !oldNow.ExpiresAt.Equal(want) {
		t.Errorf("old token expires_at = %v, want %v", oldNow.ExpiresAt, want)
	}

	e.clock.Advance(12*time.Hour - time.Second)
	e.get("/api/api_tokens", old.Token).want(200)
	e.clock.Advance(time.Second)
	r := e.get("/api/api_tokens", old.Token).want(401).object()
	if r["code"] != "expired_api_key" {
		t.Errorf("expired token body = %v", r)
	}
	e.get("/api/api_tokens", fresh.Token).want(200)

	// The expired token stays listed until it is purged.
	var list []apiToken
	e.get("/api/api_tokens", e.admin).want(200).decode(&list)
	if !containsID(list, old.ID) {
		t.Fatalf("expired token %d is not listed before the purge", old.ID)
	}
	e.clock.Advance(23 * time.Hour)
	if _, err := e.svc.PurgeExpired(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.get(e.path("/api/api_tokens/%d", old.ID), e.admin).want(200)
	e.clock.Advance(time.Hour)
	if n, err := e.svc.PurgeExpired(t.Context()); err != nil || n != 1 {
		t.Fatalf("purge 24 h after expiry deleted %d, %v; want 1", n, err)
	}
	e.get(e.path("/api/api_tokens/%d", old.ID), e.admin).want(404)
	e.get(e.path("/api/api_tokens/%d", fresh.ID), e.admin).want(200)
}

func containsID(list []apiToken, id int64) bool {
	for _, x := range list {
		if x.ID == id {
			return true
		}
	}
	return false
}

func TestResetNamesDoNotStack(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "mailer token 77", perm("account", e.acme, 10))
	cur := tok
	for i := 0; i < 3; i++ {
		var next apiToken
		e.post(e.path("/api/api_tokens/%d/reset", cur.ID), e.admin, nil).want(200).decode(&next)
		e.secrets.add(next.Token)
		if want := fmt.Sprintf("mailer token %d", next.ID); next.Name != want {
			t.Fatalf("reset %d named %q, want %q", i+1, next.Name, want)
		}
		cur = next
	}
}

func TestResetKeepsEarlierExpiry(t *testing.T) {
	e := newEnv(t)
	soon := e.clock.Now().Add(time.Hour)
	var tok apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "short", "expires_at": soon.Format(time.RFC3339),
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	var fresh apiToken
	e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, map[string]any{"expires_at": nil}).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	if fresh.ExpiresAt != nil {
		t.Errorf("new token expires_at = %v, want null as requested", fresh.ExpiresAt)
	}
	var old apiToken
	e.get(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(200).decode(&old)
	if old.ExpiresAt == nil || !old.ExpiresAt.Equal(soon) {
		t.Errorf("old expires_at = %v, want its own earlier %v", old.ExpiresAt, soon)
	}
}

func TestExpiresAt(t *testing.T) {
	e := newEnv(t, withDefaultTTL(90*24*time.Hour))
	now := e.clock.Now()
	tests := []struct {
		name      string
		body      map[string]any
		wantNil   bool
		wantUntil time.Time
	}{
		{"omitted takes the server default", map[string]any{}, false, now.Add(90 * 24 * time.Hour)},
		{"null never expires", map[string]any{"expires_at": nil}, true, time.Time{}},
		{"explicit time with offset", map[string]any{"expires_at": "2026-06-01T10:00:00+02:00"}, false, time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			tt.body["name"] = tt.name
			tt.body["resources"] = []any{perm("account", e.acme, 10)}
			var tok apiToken
			e.post("/api/api_tokens", e.admin, tt.body).want(200).decode(&tok)
			e.secrets.add(tok.Token)
			if tt.wantNil != (tok.ExpiresAt == nil) || !tt.wantNil && !tok.ExpiresAt.Equal(tt.wantUntil) {
				t.Errorf("expires_at = %v, want %v (nil: %v)", tok.ExpiresAt, tt.wantUntil, tt.wantNil)
			}
		})
	}
}

func TestTokenCreatedWithExpiryStopsWorking(t *testing.T) {
	e := newEnv(t)
	var tok apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "1h", "expires_at": e.clock.Now().Add(time.Hour),
		"resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	e.get("/api/accounts", tok.Token).want(200)
	e.clock.Advance(time.Hour)
	e.get("/api/accounts", tok.Token).want(401)
}

func TestPatchToken(t *testing.T) {
	e := newEnv(t)
	p := e.createProject(e.admin, "Web")
	tok := e.createToken(e.admin, "before", perm("project", p, 10))
	var got apiToken
	e.patch(e.path("/api/api_tokens/%d", tok.ID), e.admin, map[string]any{"name": "after"}).want(200).decode(&got)
	if got.Name != "after" || len(got.Resources) != 1 {
		t.Fatalf("rename: %+v", got)
	}
	e.patch(e.path("/api/api_tokens/%d", tok.ID), e.admin, map[string]any{"resources": []any{perm("project", p, 100), perm("account", e.acme, 10)}}).want(200).decode(&got)
	if fmt.Sprint(got.Resources) != fmt.Sprintf("[{project %d 100} {account %d 10}]", p, e.acme) || got.Name != "after" {
		t.Fatalf("edit permissions: %+v", got)
	}
	// The edit takes effect on the token's next request.
	e.post(e.path("/api/accounts/%d/projects/%d/inboxes", e.acme, p), tok.Token, map[string]any{"inbox": map[string]any{"name": "new"}}).want(200)
	// A token may rename itself but not raise its own access.
	e.patch(e.path("/api/api_tokens/%d", tok.ID), tok.Token, map[string]any{"name": "self-named"}).want(200)
	e.patch(e.path("/api/api_tokens/%d", tok.ID), tok.Token, map[string]any{"resources": []any{perm("account", e.acme, 100)}}).want(403)
	// Lowering what it holds is fine.
	e.patch(e.path("/api/api_tokens/%d", tok.ID), tok.Token, map[string]any{"resources": []any{perm("project", p, 10)}}).want(200)
}

func TestAccountScopedTokenPaths(t *testing.T) {
	e := newEnv(t)
	base := e.path("/api/accounts/%d/api_tokens", e.acme)
	var tok apiToken
	e.post(base, e.admin, map[string]any{"name": "sdk", "resources": []any{perm("account", e.acme, 10)}}).want(200).decode(&tok)
	e.secrets.add(tok.Token)
	e.get(base, e.admin).want(200)
	e.get(e.path("%s/%d", base, tok.ID), e.admin).want(200)
	e.patch(e.path("%s/%d", base, tok.ID), e.admin, map[string]any{"name": "sdk2"}).want(200)
	var fresh apiToken
	e.post(e.path("%s/%d/reset", base, tok.ID), e.admin, map[string]any{"expires_at": e.clock.Now().Add(48 * time.Hour)}).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	if fresh.ExpiresAt == nil || !fresh.ExpiresAt.Equal(e.clock.Now().Add(48*time.Hour)) {
		t.Errorf("reset with expires_at: new token expires %v", fresh.ExpiresAt)
	}
	e.del(e.path("%s/%d", base, fresh.ID), e.admin).want(204)
	// Another account's id in the path is not found, whatever the token id.
	otherBase := e.path("/api/accounts/%d/api_tokens", e.other)
	e.get(otherBase, e.admin).want(404)
	e.get(e.path("%s/%d", otherBase, tok.ID), e.admin).want(404)
	e.post(otherBase, e.admin, map[string]any{"name": "x"}).want(404)
	e.get(e.path("/api/accounts/%d/api_tokens", 424242), e.admin).want(404)
}

// TestDatabaseHoldsNoTokenValue reads the database byte for byte (SQLite's
// files, or every row of PostgreSQL's tables): a copy of the database must
// not contain any token value, nor its random part.
func TestDatabaseHoldsNoTokenValue(t *testing.T) {
	e := newEnv(t)
	tok := e.createToken(e.admin, "secret", perm("account", e.acme, 100))
	_, dtok := e.createDomain(e.admin, "example.com")
	var fresh apiToken
	e.post(e.path("/api/api_tokens/%d/reset", tok.ID), e.admin, nil).want(200).decode(&fresh)
	e.secrets.add(fresh.Token)
	files := e.dump()
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	for _, v := range []string{e.admin, tok.Token, dtok.Token, fresh.Token} {
		for _, b := range files {
			if bytes.Contains(b, []byte(v[8:8+30])) {
				t.Fatalf("the database holds the secret part of a token value")
			}
		}
	}
}
