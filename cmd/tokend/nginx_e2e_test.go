package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The documented nginx configuration answers every refusal as tokend's
// gateway does, JSON {"error", "status", "code"} with tokend's status, code
// and message, not nginx's HTML pages; and with tokend gone it refuses
// with 503 unavailable rather than letting anything through.
func TestNginxAnswersRefusalsAsJSON(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db, "--trusted-proxies", "127.0.0.1", "--auth-failure-limit", "10")
	admin := s.WaitToken(t)
	up, served := echoUpstream(t)
	base := documentedNginx(t, s.URL, up.URL) + "/v1/things"

	guarded := func(name, guards string) string {
		_, tok := newToken(t, s.URL, admin, fmt.Sprintf(`{"name": %q, "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 10}], %s}`, name, guards))
		return tok
	}
	expiring := guarded("expiring", fmt.Sprintf(`"expires_at": %q`, time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)))
	elsewhere := guarded("elsewhere", `"allowed_ips": ["203.0.113.0/24"]`)
	quota := guarded("quota", `"quota": {"limit": 1, "period": "day", "unit": "requests"}`)
	rated := guarded("rated", `"rate_limit": {"limit": 1, "period_seconds": 3600}`)
	time.Sleep(1100 * time.Millisecond) // the expiring token expires

	type refusal struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	get := func(token string) (int, http.Header, refusal, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var r refusal
		json.Unmarshal(b, &r)
		return res.StatusCode, res.Header, r, string(b)
	}
	before := served.Load()
	cases := []struct {
		name    string
		token   string
		status  int
		code    string
		message string // a part of it
		limited bool   // with Retry-After
	}{
		{"no token", "", 401, "missing_api_key", "Missing API token", false},
		{"malformed token", "tk_live_unknown", 401, "invalid_api_key", "Incorrect API token", false},
		{"expired token", expiring, 401, "expired_api_key", "expired", false},
		{"outside allowed_ips", elsewhere, 403, "ip_not_allowed", "IP address", false},
		{"quota passes once", quota, 200, "", "", false},
		{"quota used up", quota, 429, "quota_exceeded", "quota of 1 request a day is used up", true},
		{"own rate limit passes once", rated, 200, "", "", false},
		{"own rate limit spent", rated, 429, "token_rate_limited", "rate limit", true},
	}
	for _, c := range cases {
		status, header, r, body := get(c.token)
		if status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
			continue
		}
		if status == 200 {
			continue
		}
		if r.Status != c.status || r.Code != c.code || !strings.Contains(r.Error, c.message) ||
			!strings.HasPrefix(header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %s %v, want code %s and a message with %q", c.name, body, header, c.code, c.message)
		}
		if c.limited && header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After: %v", c.name, header)
		}
	}
	if got := served.Load() - before; got != 2 {
		t.Errorf("the API behind served %d requests, want the 2 that passed", got)
	}

	// Guessing from one address (nginx's X-Forwarded-For) is throttled.
	var status int
	var r refusal
	var header http.Header
	for i := range 20 {
		if status, header, r, _ = get(fmt.Sprintf("tk_live_guess%d", i)); status == 429 {
			break
		}
	}
	if status != 429 || r.Code != "auth_throttled" || header.Get("Retry-After") == "" {
		t.Errorf("guessing: %d %+v %v", status, r, header)
	}

	// tokend gone: nothing passes.
	s.Stop(t)
	status, header, r, body := get(rated)
	if status != 503 || r.Code != "unavailable" || header.Get("Retry-After") == "" {
		t.Errorf("tokend gone: %d %s %v", status, body, header)
	}
}
