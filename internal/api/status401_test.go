package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/app"
)

// Every authenticated endpoint answers 401 for a missing, malformed, forged,
// deleted or expired token: with {"error", "status", "code"}, or on the
// Mailtrap sending routes with their {"success": false, "errors": [...]} and
// the same "code".
func TestUnauthenticated(t *testing.T) {
	e := newEnv(t)
	deleted := e.createToken(e.admin, "deleted", perm("account", e.acme, 100))
	e.del(e.path("/api/api_tokens/%d", deleted.ID), e.admin).want(204)
	var expired apiToken
	e.post("/api/api_tokens", e.admin, map[string]any{"name": "expired", "expires_at": e.clock.Now().Add(time.Minute),
		"resources": []any{perm("account", e.acme, 100)}}).want(200).decode(&expired)
	e.secrets.add(expired.Token)
	e.clock.Advance(2 * time.Minute)
	forged := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	wrongPrefix := "ms" + e.admin[2:]
	credentials := []struct {
		name   string
		header http.Header
		code   string
	}{
		{"missing", nil, "missing_api_key"},
		{"malformed", http.Header{"Api-Token": {"not-a-token"}}, "invalid_api_key"},
		{"bad checksum", http.Header{"Api-Token": {forged}}, "invalid_api_key"},
		{"other prefix", http.Header{"Authorization": {"Bearer " + wrongPrefix}}, "invalid_api_key"},
		{"deleted", http.Header{"Api-Token": {deleted.Token}}, "invalid_api_key"},
		{"expired", http.Header{"Api-Token": {expired.Token}}, "expired_api_key"},
	}
	for _, ep := range endpoints(e) {
		for _, c := range credentials {
			t.Run(ep.name+"/"+c.name, func(t *testing.T) {
				e := e.with(t)
				r := e.send(request{method: ep.method, path: ep.path, header: c.header, body: ep.body}).want(401)
				if ep.method == http.MethodHead {
					return // no body to check
				}
				body := r.object()
				if strings.HasPrefix(ep.path, "/api/send") || strings.HasPrefix(ep.path, "/api/batch") {
					if errs, _ := body["errors"].([]any); body["success"] != false || len(errs) != 1 || errs[0] == "" || body["code"] != c.code {
						t.Errorf("body = %v, want the sending API's error shape with code %q", body, c.code)
					}
					return
				}
				if body["code"] != c.code || body["status"] != float64(401) || body["error"] == "" {
					t.Errorf("body = %v, want code %q", body, c.code)
				}
			})
		}
	}
}

func flip(c byte) byte {
	if c == 'a' {
		return 'b'
	}
	return 'a'
}

func TestErrorBodiesNeverEchoTheToken(t *testing.T) {
	e := newEnv(t)
	forged := e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	r := e.send(request{method: "GET", path: "/api/api_tokens", header: http.Header{"Api-Token": {forged}}}).want(401)
	if strings.Contains(string(r.Body), forged[8:]) {
		t.Fatalf("401 body echoes the presented token: %s", r.Body)
	}
}

// endpoint is one operation of the API with a valid-looking request body.
// route is the router's "METHOD /pattern" that path is an instance of.
type endpoint struct {
	name, method, path, route string
	body                      any
}

// endpoints lists every authenticated operation, pointing at real records of
// Acme: a project, a sandbox, a domain and a spare token. Each names its route;
// TestPermissionMatrix checks that the routes are exactly the router's.
func endpoints(e *env) []endpoint {
	e.t.Helper()
	p := e.createProject(e.admin, "Fixture project")
	sb := e.createSandbox(e.admin, p, "Fixture sandbox")
	d, _ := e.verifiedDomain(e.admin, "fixture.example.com")
	tok := e.createToken(e.admin, "fixture token", perm("project", p, 10))
	named := map[string]any{"name": "x", "resources": []any{perm("project", p, 10)}}
	const acct = "/api/accounts/{account_id}"
	live := map[string]any{"from": map[string]any{"email": "news@fixture.example.com"}, "to": []any{map[string]any{"email": "a@example.org"}},
		"subject": "Fixture", "text": "t"}
	batch := map[string]any{"base": map[string]any{"from": map[string]any{"email": "news@fixture.example.com"}, "subject": "Fixture", "text": "t"},
		"requests": []any{map[string]any{"to": []any{map[string]any{"email": "a@example.org"}}}}}
	msgID, captured := e.captureFixture(sb)
	// Suppressions have UUIDs: the row of one names it by this stand-in.
	const suppressionFixture = -1
	var suppressed struct{ Data struct{ ID string } }
	e.post(e.path("/api/accounts/%d/suppressions", e.acme), e.admin, map[string]any{"email": "fixture@example.org", "domain_id": d}).want(201).decode(&suppressed)
	var hook struct{ Data struct{ ID int64 } }
	e.post(e.path("/api/accounts/%d/webhooks", e.acme), e.admin, map[string]any{"webhook": map[string]any{"url": "https://hooks.example.org/fixture",
		"event_types": []string{"reject"}, "domain_id": d}}).want(200).decode(&hook)
	// A send to the suppressed address makes a reject event, delivered to the webhook.
	e.post("/api/send", e.admin, map[string]any{"from": map[string]any{"email": "news@fixture.example.com"},
		"to": []any{map[string]any{"email": "fixture@example.org"}}, "subject": "Fixture", "text": "t"}).want(200)
	var deliveries struct{ Data []struct{ ID int64 } }
	e.get(e.path("/api/accounts/%d/webhooks/%d/deliveries", e.acme, hook.Data.ID), e.admin).want(200).decode(&deliveries)
	if len(deliveries.Data) != 1 {
		e.t.Fatalf("the fixture webhook has deliveries %+v, want the reject's", deliveries.Data)
	}
	read := map[string]any{"message": map[string]any{"is_read": true}}
	const inbox, sandbox = acct + "/inboxes/{inbox_id}/messages", "/api/sandboxes/{inbox_id}/messages"
	rows := []struct {
		name, route string
		id          int64 // the record {id} names
		body        any
	}{
		{"list tokens", "GET /api/api_tokens", 0, nil},
		{"create token", "POST /api/api_tokens", 0, named},
		{"get token", "GET /api/api_tokens/{id}", tok.ID, nil},
		{"patch token", "PATCH /api/api_tokens/{id}", tok.ID, map[string]any{"name": "renamed"}},
		{"reset token", "POST /api/api_tokens/{id}/reset", tok.ID, nil},
		{"delete token", "DELETE /api/api_tokens/{id}", tok.ID, nil},
		{"list tokens in account", "GET " + acct + "/api_tokens", 0, nil},
		{"create token in account", "POST " + acct + "/api_tokens", 0, named},
		{"get token in account", "GET " + acct + "/api_tokens/{id}", tok.ID, nil},
		{"patch token in account", "PATCH " + acct + "/api_tokens/{id}", tok.ID, map[string]any{"name": "renamed"}},
		{"reset token in account", "POST " + acct + "/api_tokens/{id}/reset", tok.ID, nil},
		{"delete token in account", "DELETE " + acct + "/api_tokens/{id}", tok.ID, nil},
		{"list accounts", "GET /api/accounts", 0, nil},
		{"list projects", "GET " + acct + "/projects", 0, nil},
		{"create project", "POST " + acct + "/projects", 0, map[string]any{"project": map[string]any{"name": "n"}}},
		{"get project", "GET " + acct + "/projects/{id}", p, nil},
		{"rename project", "PATCH " + acct + "/projects/{id}", p, map[string]any{"project": map[string]any{"name": "n"}}},
		{"delete project", "DELETE " + acct + "/projects/{id}", p, nil},
		{"create sandbox", "POST " + acct + "/projects/{project_id}/inboxes", 0, map[string]any{"inbox": map[string]any{"name": "n"}}},
		{"list sandboxes", "GET " + acct + "/inboxes", 0, nil},
		{"get sandbox", "GET " + acct + "/inboxes/{id}", sb, nil},
		{"rename sandbox", "PATCH " + acct + "/inboxes/{id}", sb, map[string]any{"inbox": map[string]any{"name": "n"}}},
		{"delete sandbox", "DELETE " + acct + "/inboxes/{id}", sb, nil},
		{"list domains", "GET " + acct + "/sending_domains", 0, nil},
		{"create domain", "POST " + acct + "/sending_domains", 0, map[string]any{"sending_domain": map[string]any{"domain_name": "new.example.com"}}},
		{"get domain", "GET " + acct + "/sending_domains/{id}", d, nil},
		{"update domain", "PATCH " + acct + "/sending_domains/{id}", d, map[string]any{"sending_domain": map[string]any{"open_tracking_enabled": false}}},
		{"delete domain", "DELETE " + acct + "/sending_domains/{id}", d, nil},
		{"verify domain", "POST " + acct + "/sending_domains/{id}/verify", d, nil},
		{"domain setup instructions", "POST " + acct + "/sending_domains/{id}/send_setup_instructions", d, map[string]any{"email": "dns@example.org"}},
		{"token usage", "GET /api/api_tokens/{id}/usage", tok.ID, nil},
		{"token usage in account", "GET " + acct + "/api_tokens/{id}/usage", tok.ID, nil},
		{"audit log", "GET /api/audit_log", 0, nil},
		{"audit log in account", "GET " + acct + "/audit_log", 0, nil},
		{"whoami", "GET /api/whoami", 0, nil},
		{"unused tokens", "GET /api/api_tokens/unused", 0, nil},
		{"unused tokens in account", "GET " + acct + "/api_tokens/unused", 0, nil},
		{"token settings", "GET " + acct + "/token_settings", 0, nil},
		{"change token settings", "PATCH " + acct + "/token_settings", 0, map[string]any{"leak_policy": "revoke"}},
		{"send", "POST /api/send", 0, live},
		{"batch", "POST /api/batch", 0, batch},
		{"send to sandbox", "POST /api/send/{inbox_id}", 0, live},
		{"batch to sandbox", "POST /api/batch/{inbox_id}", 0, batch},
		{"mailsage send", "POST /api/v1/emails/send", 0, map[string]any{"recipient": map[string]any{"email": "a@example.org"},
			"subject": "Fixture", "body": "t", "from": "news@fixture.example.com"}},
		{"email log", "GET /api/email_logs/{message_id}", 0, nil},
		{"email log in account", "GET " + acct + "/email_logs/{message_id}", 0, nil},
		{"email logs", "GET " + acct + "/email_logs", 0, nil},
		{"suppressions", "GET " + acct + "/suppressions", 0, nil},
		{"add suppression", "POST " + acct + "/suppressions", 0, map[string]any{"email": "new@example.org", "domain_id": d}},
		{"delete suppression", "DELETE " + acct + "/suppressions/{id}", suppressionFixture, nil},
		{"list webhooks", "GET " + acct + "/webhooks", 0, nil},
		{"create webhook", "POST " + acct + "/webhooks", 0, map[string]any{"webhook": map[string]any{"url": "https://hooks.example.org/",
			"event_types": []string{"delivery"}, "domain_id": d}}},
		{"get webhook", "GET " + acct + "/webhooks/{id}", hook.Data.ID, nil},
		{"update webhook", "PATCH " + acct + "/webhooks/{id}", hook.Data.ID, map[string]any{"webhook": map[string]any{"active": false}}},
		{"delete webhook", "DELETE " + acct + "/webhooks/{id}", hook.Data.ID, nil},
		{"webhook deliveries", "GET " + acct + "/webhooks/{id}/deliveries", hook.Data.ID, nil},
		{"resend webhook delivery", "POST " + acct + "/webhooks/{id}/deliveries/{delivery_id}/resend", hook.Data.ID, nil},
		{"verify token", "POST /api/verify", 0, map[string]any{"token": tok.Token}},
		{"report usage", "POST /api/usage_reports", 0, map[string]any{"reports": []any{map[string]any{"token_sha256": client.TokenSHA256(tok.Token), "want": 1}}}},
		{"verify forwarded request", "GET /api/verify", 0, nil},
		{"verify forwarded request (HEAD)", "HEAD /api/verify", 0, nil},
		{"auth changes", "GET /api/auth_changes", 0, nil},
	}
	for _, base := range []struct{ name, path string }{{"", inbox}, {" (sandboxes)", sandbox}} {
		rows = append(rows, []struct {
			name, route string
			id          int64
			body        any
		}{
			{"list messages" + base.name, "GET " + base.path, 0, nil},
			{"get message" + base.name, "GET " + base.path + "/{id}", captured, nil},
			{"mark message read" + base.name, "PATCH " + base.path + "/{id}", captured, read},
			{"delete message" + base.name, "DELETE " + base.path + "/{id}", captured, nil},
			{"message html" + base.name, "GET " + base.path + "/{id}/body.html", captured, nil},
			{"message html source" + base.name, "GET " + base.path + "/{id}/body.htmlsource", captured, nil},
			{"message text" + base.name, "GET " + base.path + "/{id}/body.txt", captured, nil},
			{"message raw" + base.name, "GET " + base.path + "/{id}/body.raw", captured, nil},
			{"message eml" + base.name, "GET " + base.path + "/{id}/body.eml", captured, nil},
			{"message headers" + base.name, "GET " + base.path + "/{id}/mail_headers", captured, nil},
			{"list attachments" + base.name, "GET " + base.path + "/{id}/attachments", captured, nil},
			{"get attachment" + base.name, "GET " + base.path + "/{id}/attachments/{attachment_id}", captured, nil},
			{"download attachment" + base.name, "GET " + base.path + "/{id}/attachments/{attachment_id}/download", captured, nil},
		}...)
	}
	eps := make([]endpoint, len(rows))
	for i, r := range rows {
		method, pattern, _ := strings.Cut(r.route, " ")
		if strings.Contains(pattern, "{id}") != (r.id != 0) {
			e.t.Fatalf("%s: route %s with record id %d", r.name, r.route, r.id)
		}
		id := fmt.Sprint(r.id)
		if r.id == suppressionFixture {
			id = suppressed.Data.ID
		}
		path := strings.NewReplacer("{account_id}", fmt.Sprint(e.acme), "{project_id}", fmt.Sprint(p),
			"{inbox_id}", fmt.Sprint(sb), "{attachment_id}", "1", "{message_id}", msgID, "{delivery_id}", fmt.Sprint(deliveries.Data[0].ID),
			"{id}", id).Replace(pattern)
		if strings.Contains(path, "{") {
			e.t.Fatalf("%s: no value for a parameter of %s", r.name, r.route)
		}
		eps[i] = endpoint{name: r.name, method: method, path: path, route: r.route, body: r.body}
	}
	return eps
}

// To GET /api/verify?account_id=N (and HEAD), a token of another account,
// valid or expired, is a token that does not exist: the same 401, body and
// headers, and a failure of the address's budget; POST /api/verify says
// NOT_FOUND for it and nothing more, as for a token that does not exist.
func TestVerifyAnotherAccountsTokenLooksUnknown(t *testing.T) {
	e := newEnv(t, withConfig(func(c *app.Config) { c.AuthFailureLimit = 3 }))
	theirs := e.createToken(e.otherAdmin, "theirs", perm("account", e.other, 100))
	var expiring apiToken
	e.post("/api/api_tokens", e.otherAdmin, map[string]any{"name": "expiring", "expires_at": e.clock.Now().Add(time.Minute),
		"resources": []any{perm("account", e.other, 100)}}).want(200).decode(&expiring)
	e.secrets.add(expiring.Token)
	e.clock.Advance(2 * time.Minute)
	format, _ := apikey.NewFormat("tk")
	unknown, err := format.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	// Everything but what differs between any two responses.
	same := func(r *response) string {
		h := r.Header.Clone()
		h.Del("Date")
		h.Del("X-Request-Id")
		return fmt.Sprintf("%d %v %s", r.Status, h, r.Body)
	}
	forward := e.path("/api/verify?account_id=%d", e.acme)
	for _, method := range []string{"GET", "HEAD"} {
		want := same(e.send(request{method: method, path: forward, token: unknown, from: "127.0.0.20"}).want(401))
		for _, c := range []struct{ name, token, from string }{
			{"valid", theirs.Token, "127.0.0.21"},
			{"expired", expiring.Token, "127.0.0.22"},
		} {
			t.Run(method+"/"+c.name, func(t *testing.T) {
				e := e.with(t)
				if got := same(e.send(request{method: method, path: forward, token: c.token, from: c.from})); got != want {
					t.Errorf("another account's %s token got\n%s\nwant, as an unknown token,\n%s", c.name, got, want)
				}
			})
		}
	}
	t.Run("spends the address's failures", func(t *testing.T) {
		e := e.with(t)
		// 127.0.0.21 and .22 have spent two of their three failures.
		e.send(request{method: "GET", path: forward, token: theirs.Token, from: "127.0.0.21"}).want(401)
		assertThrottled(t, e.send(request{method: "GET", path: forward, token: theirs.Token, from: "127.0.0.21"}))
		e.send(request{method: "GET", path: forward, token: expiring.Token, from: "127.0.0.22"}).want(401)
		assertThrottled(t, e.send(request{method: "GET", path: forward, token: expiring.Token, from: "127.0.0.22"}))
		// The token still passes for its own account, from another address.
		e.send(request{method: "GET", path: e.path("/api/verify?account_id=%d", e.other), token: theirs.Token, from: "127.0.0.23"}).want(204)
	})
	t.Run("POST", func(t *testing.T) {
		e := e.with(t)
		_, want := e.verify(e.admin, map[string]any{"token": unknown})
		for _, c := range []struct{ name, token string }{{"valid", theirs.Token}, {"expired", expiring.Token}} {
			if _, got := e.verify(e.admin, map[string]any{"token": c.token}); string(got.Body) != string(want.Body) ||
				got.Header.Get("X-Ratelimit-Limit") != want.Header.Get("X-Ratelimit-Limit") {
				t.Errorf("another account's %s token: %s %v, want as unknown %s %v", c.name, got.Body, got.Header, want.Body, want.Header)
			}
		}
	})
}
