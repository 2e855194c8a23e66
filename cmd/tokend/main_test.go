package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// tokend is the binary built from this package, which every test here runs.
var tokend testutil.Binary

func TestMain(m *testing.M) { os.Exit(testutil.RunWithTokend(m, "../..", &tokend)) }

func TestUsageErrorsExitTwo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"no command", nil, nil},
		{"unknown command", nil, []string{"launch"}},
		{"account without subcommand", nil, []string{"account"}},
		{"unknown account subcommand", nil, []string{"account", "delete"}},
		{"create without name", nil, []string{"account", "create", "--db", db}},
		{"unknown plan", nil, []string{"account", "create", "--name", "x", "--plan", "gold", "--db", db}},
		{"unknown flag", nil, []string{"serve", "--port", "80"}},
		{"bad duration", nil, []string{"serve", "--reset-grace", "soon"}},
		{"bad duration from env", []string{"TOKEND_RESET_GRACE=soon"}, []string{"serve"}},
		{"negative duration", nil, []string{"serve", "--purge-after", "-1h"}},
		{"tls cert without key", nil, []string{"serve", "--tls-cert", "c.pem"}},
		{"bad token prefix", nil, []string{"serve", "--token-prefix", "TK_"}},
		{"webhook not a URL", nil, []string{"serve", "--alert-webhook", "hooks.example.com/x"}},
		{"zero failure limit", nil, []string{"serve", "--auth-failure-limit", "0"}},
		{"zero capture retention", []string{"TOKEND_CAPTURE_RETENTION=0s"}, []string{"serve"}},
		{"zero sends in flight", nil, []string{"serve", "--account-sends-in-flight", "0"}},
		{"zero redis timeout", nil, []string{"serve", "--redis-timeout", "0s"}},
		{"redis timeout of a minute", []string{"TOKEND_REDIS_TIMEOUT=1m"}, []string{"serve"}},
		{"stray argument", nil, []string{"account", "list", "extra", "--db", db}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tokend.Run(t, tt.env, tt.args...)
			if r.Code != 2 || r.Stderr == "" {
				t.Errorf("exit %d, stderr %q; want exit 2 with a message", r.Code, r.Stderr)
			}
			// The command list, two lines a command, and no more than ten others.
			if n := strings.Count(r.Stderr, "\n  tokend "); strings.Count(r.Stderr, "\n") > 2*n+10 {
				t.Errorf("usage message is not short: %d lines for %d commands", strings.Count(r.Stderr, "\n"), n)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	if r := tokend.Run(t, nil, "version"); r.Code != 0 || !strings.HasPrefix(r.Stdout, "tokend ") {
		t.Errorf("version: %+v", r)
	}
	if r := tokend.Run(t, nil, "help"); r.Code != 0 || !strings.Contains(r.Stdout, "account create") || !strings.Contains(r.Stdout, "serve") {
		t.Errorf("help: %+v", r)
	}
}

func TestAccountCreateJSON(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	r := tokend.Run(t, nil, "account", "create", "--name", "Acme", "--plan", "pro", "--db", db, "--json")
	if r.Code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	var out struct {
		Account struct {
			ID           int64  `json:"id"`
			Name         string `json:"name"`
			Plan         string `json:"plan"`
			RateLimit    int    `json:"rate_limit"`
			MessageLimit int    `json:"message_limit"`
		} `json:"account"`
		APIToken map[string]any `json:"api_token"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("--json output %q: %v", r.Stdout, err)
	}
	if out.Account.Name != "Acme" || out.Account.Plan != "pro" || out.Account.RateLimit != 1000 || out.Account.MessageLimit != 10_000 || out.Account.ID == 0 {
		t.Errorf("account = %+v", out.Account)
	}
	transcript.Schema(t, "ApiTokenWithToken", out.APIToken) // held against the OpenAPI document by e2e
	value, _ := out.APIToken["token"].(string)
	if !testutil.TokenPattern.MatchString(value) {
		t.Errorf("api_token.token = %q", value)
	}
	res := fmt.Sprint(out.APIToken["resources"])
	if want := fmt.Sprintf("[map[access_level:100 resource_id:%d resource_type:account]]", out.Account.ID); res != want {
		t.Errorf("resources = %s, want %s", res, want)
	}
	if strings.Contains(r.Stderr, value) {
		t.Error("the token value went to stderr")
	}

	// account list, as text and JSON, via TOKEND_DB instead of --db.
	tokend.Run(t, nil, "account", "create", "--name", "Beta", "--db", db)
	list := tokend.Run(t, []string{"TOKEND_DB=" + db}, "account", "list")
	if list.Code != 0 || !strings.Contains(list.Stdout, "Acme") || !strings.Contains(list.Stdout, "Beta") || !strings.Contains(list.Stdout, "pro") ||
		!strings.Contains(list.Stdout, "MESSAGE LIMIT") || !strings.Contains(list.Stdout, "10000/min") {
		t.Errorf("account list: %+v", list)
	}
	if testutil.TokenPattern.MatchString(list.Stdout) {
		t.Error("account list shows a token value")
	}
	var accounts []map[string]any
	jl := tokend.Run(t, nil, "account", "list", "--json", "--db", db)
	if err := json.Unmarshal([]byte(jl.Stdout), &accounts); err != nil || len(accounts) != 2 {
		t.Errorf("account list --json: %q, %v", jl.Stdout, err)
	}
}

// transcript records the API's answers the tests see; the e2e module holds
// each against the OpenAPI document (TestAPIResponsesMatchTheContract).
var transcript = testutil.NewTranscript("cmd/tokend")

// call sends a request to the API with a bearer token (testutil.Call) and
// records the answer, unless it is the Prometheus metrics: those are text,
// documented as such but not a JSON schema.
func call(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	return testutil.Call(t, method, url, token, body, func(t testing.TB, method, uri string, reqBody []byte, status int, header http.Header, answer []byte) {
		if path, _, _ := strings.Cut(uri, "?"); path != "/metrics" {
			transcript.Response(t, method, uri, reqBody, status, header, answer)
		}
	})
}

func TestServeFirstStartPrintsTokenOnce(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, []string{"TOKEND_DB=" + db})
	first := s.WaitToken(t)
	if code, _ := call(t, "GET", s.URL+"/healthz", "", ""); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	code, body := call(t, "GET", s.URL+"/api/api_tokens", first, "")
	if code != 200 || !strings.Contains(body, `"name":"Admin token"`) {
		t.Errorf("GET /api/api_tokens with the printed token: %d %s", code, body)
	}
	code, body = call(t, "GET", s.URL+"/api/accounts", first, "")
	if code != 200 || !strings.Contains(body, `"name":"Default"`) || !strings.Contains(body, `"access_levels":[100]`) {
		t.Errorf("GET /api/accounts: %d %s", code, body)
	}
	s.Stop(t)
	logs := s.Stderr.String()
	if strings.Contains(logs, first) || strings.Contains(logs, first[8:]) {
		t.Error("the token value appears in the server's logs")
	}
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs:\n%s", logs)
	}

	// A second start on the same database creates nothing and prints no token.
	again := tokend.Serve(t, []string{"TOKEND_DB=" + db})
	if code, _ := call(t, "GET", again.URL+"/api/api_tokens", first, ""); code != 200 {
		t.Errorf("the first token stopped working after a restart: %d", code)
	}
	again.Stop(t)
	if testutil.TokenPattern.MatchString(again.Stdout.String()) {
		t.Errorf("second start printed a token: %q", again.Stdout.String())
	}
}

// TestCurlWalkthrough follows the README: an account from the CLI, then
// create → use → reset → delete over HTTP against the real server.
func TestCurlWalkthrough(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	r := tokend.Run(t, nil, "account", "create", "--name", "Acme", "--db", db, "--json")
	var created struct {
		APIToken struct{ Token string } `json:"api_token"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &created); err != nil {
		t.Fatal(err)
	}
	admin := created.APIToken.Token
	s := tokend.Serve(t, nil, "--db", db, "--reset-grace", "1h")
	code, body := call(t, "POST", s.URL+"/api/api_tokens", admin, `{"name":"CI","resources":[{"resource_type":"account","resource_id":1,"access_level":10}]}`)
	var tok struct {
		ID    int64
		Token string
	}
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _ := call(t, "GET", s.URL+"/api/api_tokens", tok.Token, ""); code != 200 {
		t.Fatalf("use: %d", code)
	}
	code, body = call(t, "POST", fmt.Sprintf("%s/api/api_tokens/%d/reset", s.URL, tok.ID), admin, "")
	var fresh struct {
		ID    int64
		Token string
	}
	if code != 200 || json.Unmarshal([]byte(body), &fresh) != nil || fresh.Token == "" {
		t.Fatalf("reset: %d %s", code, body)
	}
	for _, v := range []string{tok.Token, fresh.Token} {
		if code, _ := call(t, "GET", s.URL+"/api/api_tokens", v, ""); code != 200 {
			t.Errorf("during the grace period a token answers %d", code)
		}
	}
	if code, _ := call(t, "DELETE", fmt.Sprintf("%s/api/api_tokens/%d", s.URL, fresh.ID), admin, ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := call(t, "GET", s.URL+"/api/api_tokens", fresh.Token, ""); code != 401 {
		t.Errorf("deleted token answers %d, want 401", code)
	}
	s.Stop(t)
	if testutil.TokenPattern.MatchString(s.Stdout.String()) {
		t.Error("serve printed a bootstrap token although an account existed")
	}
}

// TestPurgeRemovesExpiredTokens runs the real purge job with a short window.
func TestPurgeRemovesExpiredTokens(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db, "--purge-after", "1s")
	admin := s.WaitToken(t)
	expires := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	code, body := call(t, "POST", s.URL+"/api/api_tokens", admin, `{"name":"brief","expires_at":"`+expires+`"}`)
	var tok struct{ ID int64 }
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	url := fmt.Sprintf("%s/api/api_tokens/%d", s.URL, tok.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := call(t, "GET", url, admin, "")
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired token still there 10 s later (status %d)", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.Stop(t)
}

// TestCaptureRetentionPrunesCapturedMail runs the real purge job, which
// deletes captured mail past --capture-retention.
func TestCaptureRetentionPrunesCapturedMail(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, []string{"TOKEND_CAPTURE_RETENTION=1s"}, "--db", db, "--purge-after", "1s")
	admin := s.WaitToken(t)
	var p, sb struct{ ID int64 }
	code, body := call(t, "POST", s.URL+"/api/accounts/1/projects", admin, `{"project":{"name":"QA"}}`)
	if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
		t.Fatalf("project: %d %s", code, body)
	}
	code, body = call(t, "POST", fmt.Sprintf("%s/api/accounts/1/projects/%d/inboxes", s.URL, p.ID), admin, `{"inbox":{"name":"S"}}`)
	if code != 200 || json.Unmarshal([]byte(body), &sb) != nil {
		t.Fatalf("sandbox: %d %s", code, body)
	}
	code, body = call(t, "POST", fmt.Sprintf("%s/api/send/%d", s.URL, sb.ID), admin,
		`{"from":{"email":"qa@example.com"},"to":[{"email":"u@example.org"}],"subject":"Hi","text":"hi"}`)
	if code != 200 {
		t.Fatalf("send: %d %s", code, body)
	}
	list := fmt.Sprintf("%s/api/sandboxes/%d/messages", s.URL, sb.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := call(t, "GET", list, admin, "")
		if code == 200 && strings.TrimSpace(body) == "[]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("captured mail still there 10 s later: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.Stop(t)
}

func TestAccountSetPlan(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	tokend.Run(t, nil, "account", "create", "--name", "Acme", "--db", db)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"pro", []string{"--plan", "pro"}, 0, `"plan":"pro","rate_limit":1000,"message_limit":10000`},
		{"enterprise with a limit", []string{"--plan", "enterprise", "--rate-limit", "25000"}, 0, `"plan":"enterprise","rate_limit":25000,"message_limit":100000`},
		{"enterprise with both limits", []string{"--plan", "enterprise", "--rate-limit", "25000", "--message-limit", "300000"}, 0,
			`"plan":"enterprise","rate_limit":25000,"message_limit":300000`},
		{"enterprise keeps its allowance", []string{"--plan", "enterprise", "--rate-limit", "30000"}, 0, `"plan":"enterprise","rate_limit":30000,"message_limit":300000`},
		{"enterprise without a limit", []string{"--plan", "enterprise"}, 2, ""},
		{"custom limit on free", []string{"--plan", "free", "--rate-limit", "5"}, 2, ""},
		{"custom allowance on pro", []string{"--plan", "pro", "--message-limit", "5"}, 2, ""},
		{"negative allowance", []string{"--plan", "enterprise", "--rate-limit", "5", "--message-limit", "-1"}, 2, ""},
		{"back to free", []string{"--plan", "free"}, 0, `"plan":"free","rate_limit":100,"message_limit":1000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tokend.Run(t, nil, append([]string{"account", "set-plan", "1", "--db", db, "--json"}, tt.args...)...)
			if r.Code != tt.code || !strings.Contains(r.Stdout, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %s", r.Code, r.Stdout, r.Stderr, tt.code, tt.want)
			}
		})
	}
	if r := tokend.Run(t, nil, "account", "set-plan", "99", "--plan", "pro", "--db", db); r.Code != 1 || !strings.Contains(r.Stderr, "no account 99") {
		t.Errorf("unknown account: %+v", r)
	}
	if r := tokend.Run(t, nil, "account", "set-plan", "--plan", "pro", "--db", db); r.Code != 2 {
		t.Errorf("missing ID: %+v", r)
	}
}

// Usage counted in memory is written when the server stops, even if the
// periodic flush never ran.
func TestShutdownFlushesUsage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db, "--usage-flush", "1h")
	admin := s.WaitToken(t)
	const n = 25
	for i := 0; i < n; i++ {
		if code, _ := call(t, "GET", s.URL+"/api/accounts", admin, ""); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	s.Stop(t)
	again := tokend.Serve(t, nil, "--db", db)
	code, body := call(t, "GET", again.URL+"/api/api_tokens/1/usage", admin, "")
	var u struct {
		LastUsedAt *time.Time `json:"last_used_at"`
		Days       []struct{ Success int }
	}
	if code != 200 || json.Unmarshal([]byte(body), &u) != nil {
		t.Fatalf("usage: %d %s", code, body)
	}
	// A request is counted once it has been answered, so this one is not in its own answer.
	if len(u.Days) != 1 || u.Days[0].Success != n || u.LastUsedAt == nil {
		t.Fatalf("usage after restart = %s, want the %d successes from before the restart", body, n)
	}
	again.Stop(t)
}

func TestSeparateMetricsAddressAndWebhook(t *testing.T) {
	events := make(chan map[string]any, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e map[string]any
		json.NewDecoder(r.Body).Decode(&e)
		events <- e
	}))
	defer hook.Close()
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, []string{"TOKEND_ALERT_WEBHOOK=" + hook.URL}, "--db", db, "--metrics-addr", "127.0.0.1:0", "--alert-threshold", "3")
	admin := s.WaitToken(t)
	metricsURL := regexp.MustCompile(`"msg":"serving metrics".*"url":"([^"]+)"`).FindStringSubmatch(s.Stderr.String())
	if metricsURL == nil {
		t.Fatalf("no metrics listener in the logs:\n%s", s.Stderr.String())
	}
	if code, _ := call(t, "GET", s.URL+"/metrics", "", ""); code != 404 {
		t.Errorf("/metrics on the API address answered %d, want 404 when --metrics-addr is set", code)
	}
	for i := 0; i < 3; i++ {
		call(t, "GET", s.URL+"/api/api_tokens", admin[:len(admin)-2]+"xx", "")
	}
	select {
	case e := <-events:
		if e["type"] != "address_failures" || e["client_addr"] != "127.0.0.1" {
			t.Errorf("webhook got %v", e)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no alert reached the webhook")
	}
	// The delivery is counted once the webhook has answered: poll briefly.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := call(t, "GET", metricsURL[1], "", "")
		ok := code == 200 && strings.Contains(body, `tokend_auth_attempts_total{outcome="invalid"} 3`) &&
			strings.Contains(body, `tokend_alert_deliveries_total{result="delivered"} 1`)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %d\n%s", code, body)
		}
	}
	s.Stop(t)
}

// Two instances on one database and the CLI beside them: a token deleted
// through one instance, and a plan changed by the CLI, reach the other
// instance's authentication cache within a second.
func TestChangesReachEveryInstanceWithinASecond(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	a := tokend.Serve(t, nil, "--db", db)
	admin := a.WaitToken(t)
	b := tokend.Serve(t, nil, "--db", db)
	code, body := call(t, "POST", a.URL+"/api/api_tokens", admin, `{"name":"shared","resources":[{"resource_type":"account","resource_id":1,"access_level":10}]}`)
	var tok struct {
		ID    int64
		Token string
	}
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _ := call(t, "GET", b.URL+"/api/whoami", tok.Token, ""); code != 200 {
		t.Fatalf("instance b does not know the new token: %d", code)
	}
	if code, _ := call(t, "DELETE", fmt.Sprintf("%s/api/api_tokens/%d", a.URL, tok.ID), admin, ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := call(t, "GET", a.URL+"/api/whoami", tok.Token, ""); code != 401 {
		t.Errorf("instance a still accepts the token it deleted: %d", code)
	}
	waitFor(t, time.Second, "the deleted token to stop working on instance b", func() bool {
		code, _ := call(t, "GET", b.URL+"/api/whoami", tok.Token, "")
		return code == 401
	})

	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "4242", "--db", db); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	for _, s := range []*testutil.Process{a, b} {
		waitFor(t, time.Second, "the new plan limit on "+s.URL, func() bool {
			req, _ := http.NewRequest("GET", s.URL+"/api/whoami", nil)
			req.Header.Set("Api-Token", admin)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.Header.Get("X-RateLimit-Limit") == "4242"
		})
	}
	a.Stop(t)
	b.Stop(t)
}

// waitFor polls cond every 25 ms and fails if it is not true within limit
// (plus slack for polling on a loaded machine).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit+750*time.Millisecond { // slack for a loaded CI machine
			t.Fatalf("waited %v for %s", time.Since(start), what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// With --auth-cache=false tokend warms nothing and still authenticates.
func TestServeWithoutAuthCache(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, []string{"TOKEND_AUTH_CACHE=false"}, "--db", db)
	admin := s.WaitToken(t)
	if code, _ := call(t, "GET", s.URL+"/api/whoami", admin, ""); code != 200 {
		t.Errorf("whoami without the cache: %d", code)
	}
	s.Stop(t)
	if strings.Contains(s.Stderr.String(), "authentication cache warm") {
		t.Error("the cache was warmed although --auth-cache=false")
	}
	again := tokend.Serve(t, nil, "--db", db)
	again.Stop(t)
	if !strings.Contains(again.Stderr.String(), `"msg":"authentication cache warm","tokens":1`) {
		t.Errorf("default start did not warm the cache:\n%s", again.Stderr.String())
	}
}
