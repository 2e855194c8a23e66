package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// sandboxSendBody is a sandbox send to n recipients.
func sandboxSendBody(n int) string {
	to := make([]string, n)
	for i := range to {
		to[i] = fmt.Sprintf(`{"email": "user%d@example.org"}`, i)
	}
	return `{"from": {"email": "qa@example.com"}, "to": [` + strings.Join(to, ",") + `], "subject": "Hello", "text": "Hello there"}`
}

// newSandbox creates a project and a sandbox in account 1 through url and
// returns the sandbox's id.
func newSandbox(t *testing.T, url, admin string) int64 {
	t.Helper()
	var p, sb struct{ ID int64 }
	code, body := call(t, "POST", url+"/api/accounts/1/projects", admin, `{"project": {"name": "QA"}}`)
	if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
		t.Fatalf("create project: %d %s", code, body)
	}
	code, body = call(t, "POST", fmt.Sprintf("%s/api/accounts/1/projects/%d/inboxes", url, p.ID), admin, `{"inbox": {"name": "Inbox"}}`)
	if code != 200 || json.Unmarshal([]byte(body), &sb) != nil {
		t.Fatalf("create sandbox: %d %s", code, body)
	}
	return sb.ID
}

// An operator's --message-limit reaches a running server: more recipients
// than the new allowance are refused at once, and sends stop within it.
func TestMessageLimitFromTheCLITakesEffect(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	s := tokend.Serve(t, nil, "--db", db)
	admin := s.WaitToken(t) // the Default account, free plan: 1,000 messages a minute
	sb := newSandbox(t, s.URL, admin)
	send := fmt.Sprintf("%s/api/send/%d", s.URL, sb)
	if code, body := call(t, "POST", send, admin, sandboxSendBody(6)); code != 200 {
		t.Fatalf("6 recipients on the free plan: %d %s", code, body)
	}

	r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "1000", "--message-limit", "5", "--db", db, "--json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"rate_limit":1000,"message_limit":5`) {
		t.Fatalf("set-plan --message-limit: %+v", r)
	}
	if l := tokend.Run(t, nil, "account", "list", "--db", db); !strings.Contains(l.Stdout, "MESSAGE LIMIT") || !strings.Contains(l.Stdout, "5/min") {
		t.Errorf("account list does not show the allowance: %q", l.Stdout)
	}
	var body string
	waitFor(t, time.Second, "the running server to apply the new allowance", func() bool {
		var code int
		code, body = call(t, "POST", send, admin, sandboxSendBody(6))
		return code == 400
	})
	if !strings.Contains(body, "more than the 5 messages a minute this account's live keys may send") {
		t.Errorf("6 recipients over an allowance of 5: %s", body)
	}
	// Sends of one recipient run out within five.
	limited := false
	for i := 0; i < 5 && !limited; i++ {
		code, body := call(t, "POST", send, admin, sandboxSendBody(1))
		switch {
		case code == 429 && strings.Contains(body, "Message allowance exceeded"):
			limited = true
		case code != 200:
			t.Fatalf("send %d: %d %s", i, code, body)
		}
	}
	if !limited {
		code, body := call(t, "POST", send, admin, sandboxSendBody(1))
		if code != 429 || !strings.Contains(body, "Message allowance exceeded") {
			t.Errorf("a sixth message within the minute: %d %s", code, body)
		}
	}
	// Requests that send nothing still pass.
	if code, _ := call(t, "GET", s.URL+"/api/whoami", admin, ""); code != 200 {
		t.Errorf("whoami with the allowance spent: %d", code)
	}
	s.Stop(t)
}

// Two instances on one PostgreSQL and one Redis spend one message
// allowance: together they admit the account's allowance, not twice it.
func TestTwoInstancesShareTheMessageAllowance(t *testing.T) {
	url := testutil.Postgres(t)
	redis := testutil.Redis(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	_, admin := createAccount(t, url, "Acme")
	const allowance, perSend = 50, 5
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "100000",
		"--message-limit", fmt.Sprint(allowance), "--db", url); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	var nodes []*testutil.Process
	for range 2 {
		nodes = append(nodes, tokend.Serve(t, nil, "--db", url, "--secrets-key-file", key, "--redis", redis.URL))
	}
	sb := newSandbox(t, nodes[0].URL, admin)
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(n *testutil.Process) (int, string, http.Header) {
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/send/%d", n.URL, sb), strings.NewReader(sandboxSendBody(perSend)))
		req.Header.Set("Api-Token", admin)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, h := post(nodes[i%2])
			switch {
			case code == 200:
				ok.Add(1)
			case code == 429 && strings.Contains(body, "Message allowance exceeded") && h.Get("X-RateLimit-Messages-Limit") == fmt.Sprint(allowance):
				limited.Add(1)
			default:
				t.Errorf("send: %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// GCRA admits the allowance, plus one send for every five messages'
	// worth of time that passed (1.2 s a message at 50 a minute).
	want := int64(allowance/perSend) + int64(elapsed/(perSend*1200*time.Millisecond))
	if n := ok.Load(); n < allowance/perSend || n > want {
		t.Errorf("two instances admitted %d sends of %d recipients in %v, want %d (the allowance of %d, shared)", n, perSend, elapsed, want, allowance)
	}
	if ok.Load()+limited.Load() != 40 {
		t.Errorf("answers: %d ok, %d refused for the allowance, of 40", ok.Load(), limited.Load())
	}
	t.Logf("admitted %d, refused %d, in %v", ok.Load(), limited.Load(), elapsed)
	for _, n := range nodes {
		n.Stop(t)
	}
}
