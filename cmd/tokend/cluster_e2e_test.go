package main_test

import (
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// Three instances on one PostgreSQL and one Redis: an account's plan limit
// holds across all three (within 5%), and with Redis killed mid-run each
// instance follows --redis-fail.
func TestThreeInstancesShareTheLimit(t *testing.T) {
	url := testutil.Postgres(t)
	redis := testutil.Redis(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	var nodes []*server
	for i := range 3 {
		fail := "open"
		if i == 2 {
			fail = "closed"
		}
		nodes = append(nodes, startServe(t, nil, "--db", url, "--secrets-key-file", key, "--redis", redis.URL, "--redis-fail", fail))
	}
	admin := nodes[0].waitToken(t) // the Default account, free plan: 100 requests a minute
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(n *server) int {
		req, _ := http.NewRequest("GET", n.url+"/api/whoami", nil)
		req.Header.Set("Api-Token", admin)
		res, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch get(nodes[i%3]) {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// GCRA admits the burst of 100 plus one request per 600 ms that passed.
	want := 100 + int64(elapsed/(600*time.Millisecond))
	if n := ok.Load(); n < 95 || n > want+5 {
		t.Errorf("three instances admitted %d of 300 in %v, want the plan's 100 (within 5%%, up to %d)", n, elapsed, want)
	}
	if ok.Load()+limited.Load() != 300 {
		t.Errorf("answers: %d ok, %d limited, of 300", ok.Load(), limited.Load())
	}
	t.Logf("admitted %d, limited %d, in %v", ok.Load(), limited.Load(), elapsed)

	// Redis dies: the open instances count on their own (the limit is
	// spent, so after a minute's worth they still refuse nothing new here
	// but answer at once); the closed one refuses with 503.
	redis.Stop()
	if code := get(nodes[2]); code != http.StatusServiceUnavailable {
		t.Errorf("--redis-fail closed with Redis down answered %d, want 503", code)
	}
	begin := time.Now()
	for range 5 {
		if code := get(nodes[0]); code != 200 && code != 429 {
			t.Errorf("--redis-fail open with Redis down answered %d", code)
		}
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("five requests with Redis down took %v", d)
	}
	redis.Start(t)
	for _, n := range nodes {
		n.stop(t)
	}
}
