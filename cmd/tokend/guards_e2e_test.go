package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// Two instances on one PostgreSQL and one Redis hold a token's own rate
// limit and its quota together, to the unit: 300 parallel requests spread
// over both admit exactly what one instance would.
func TestTwoInstancesHoldTokenLimitsAndQuotasExactly(t *testing.T) {
	url := testutil.Postgres(t)
	redis := testutil.Redis(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	_, admin := createAccount(t, url, "Acme")
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "1000000", "--db", url); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	var nodes []*testutil.Process
	for range 2 {
		// Exact, never over: a slow Redis refuses (closed) rather than
		// counting in each instance, and the bound leaves room for a loaded machine.
		nodes = append(nodes, tokend.Serve(t, nil, "--db", url, "--secrets-key-file", key, "--redis", redis.URL,
			"--redis-timeout", "2s", "--redis-fail", "closed"))
	}
	newToken := func(guard string) string {
		code, body := call(t, "POST", nodes[0].URL+"/api/api_tokens", admin,
			`{"name": "guarded", "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 10}], `+guard+`}`)
		value := testutil.TokenPattern.FindString(body)
		if code != 200 || value == "" {
			t.Fatalf("create a token with %s: %d %s", guard, code, body)
		}
		return value
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 150}}
	burst := func(token string) map[string]int {
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for i := range 300 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", nodes[i%2].URL+"/api/whoami", nil)
				req.Header.Set("Api-Token", token)
				res, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				k := fmt.Sprint(res.StatusCode)
				if res.StatusCode == 429 {
					var e struct{ Code string }
					json.Unmarshal(b, &e)
					k += " " + e.Code
				}
				mu.Lock()
				got[k]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return got
	}
	// 100 an hour: a burst of 100, then one every 36 s, longer than the test.
	start := time.Now()
	limited := burst(newToken(`"rate_limit": {"limit": 100, "period_seconds": 3600}`))
	if time.Since(start) < 36*time.Second && (limited["200"] != 100 || limited["429 token_rate_limited"] != 200) {
		t.Errorf("300 requests over two instances of a token limited to 100 an hour: %v", limited)
	}
	quota := burst(newToken(`"quota": {"limit": 100, "period": "day"}`))
	if quota["200"] != 100 || quota["429 quota_exceeded"] != 200 {
		t.Errorf("300 requests over two instances of a token with a quota of 100 a day: %v", quota)
	}
	t.Logf("rate limit: %v; quota: %v", limited, quota)
	if t.Failed() {
		for i, n := range nodes {
			logs := n.Stderr.String()
			t.Logf("instance %d log (last 3 KiB): %s", i, logs[max(0, len(logs)-3072):])
		}
	}
	for _, n := range nodes {
		n.Stop(t)
	}
}
