package api_test

import (
	"strings"
	"testing"
)

// Any token of the account reads its token settings; account admins change
// them, and bad values are 422 on their field.
func TestTokenSettings(t *testing.T) {
	e := newEnv(t)
	path := e.path("/api/accounts/%d/token_settings", e.acme)
	var got struct {
		Days   []int  `json:"expiry_warning_days"`
		Policy string `json:"leak_policy"`
	}
	e.get(path, e.admin).want(200).decode(&got)
	if len(got.Days) != 2 || got.Days[0] != 7 || got.Days[1] != 1 || got.Policy != "revoke" {
		t.Errorf("defaults: %+v, want [7 1] revoke", got)
	}
	e.patch(path, e.admin, map[string]any{"expiry_warning_days": []int{1, 30, 7, 7}}).want(200).decode(&got)
	if len(got.Days) != 3 || got.Days[0] != 30 || got.Days[2] != 1 || got.Policy != "revoke" {
		t.Errorf("after setting the days: %+v, want [30 7 1] revoke", got)
	}
	e.patch(path, e.admin, map[string]any{"leak_policy": "notify"}).want(200).decode(&got)
	if len(got.Days) != 3 || got.Policy != "notify" {
		t.Errorf("after setting the policy: %+v", got)
	}
	viewer := e.createToken(e.admin, "viewer", perm("account", e.acme, 10))
	e.get(path, viewer.Token).want(200)
	r := e.patch(path, viewer.Token, map[string]any{"leak_policy": "revoke"}).want(403)
	if !strings.Contains(string(r.Body), "account admin") {
		t.Errorf("a viewer changing the settings: %s", r.Body)
	}
	e.get(e.path("/api/accounts/%d/token_settings", e.other), e.admin).want(404)
	for _, bad := range []map[string]any{
		{"expiry_warning_days": []int{0}},
		{"expiry_warning_days": []int{1, 2, 3, 4, 5, 6}},
		{"expiry_warning_days": []int{400}},
		{"leak_policy": "ignore"},
	} {
		e.patch(path, e.admin, bad).want(422)
	}
	var audit auditPage
	e.get("/api/audit_log?limit=2", e.admin).want(200).decode(&audit)
	if audit.Data[1].Action != "account.token_settings_changed" {
		t.Errorf("the audit log's event before the viewer's creation: %+v", audit.Data[1])
	}
}
