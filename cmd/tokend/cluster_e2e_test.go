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
	var nodes []*testutil.Process
	for i := range 3 {
		fail := "open"
		if i == 2 {
			fail = "closed"
		}
		// A generous --redis-timeout: this test counts what the instances
		// admit together, on a machine busy with other tests (race detector
		// on), where a 50 ms bound may expire and the policy take over.
		nodes = append(nodes, tokend.Serve(t, nil, "--db", url, "--secrets-key-file", key, "--redis", redis.URL, "--redis-fail", fail, "--redis-timeout", "1s"))
	}
	admin := nodes[0].WaitToken(t) // the Default account, free plan: 100 requests a minute
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(n *testutil.Process) int {
		req, _ := http.NewRequest("GET", n.URL+"/api/whoami", nil)
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

	// Sign-in attempts count across the instances too: ten from one address,
	// spread over three, spend its budget on all of them.
	if r := tokend.RunInput(t, "a long enough password\n", "user", "create", "--account", "1", "--email", "ann@example.com", "--password-stdin", "--db", url); r.Code != 0 {
		t.Fatalf("user create: %+v", r)
	}
	signIn := func(n *testutil.Process, password string) int {
		res, err := client.PostForm(n.URL+"/login", map[string][]string{"email": {"ann@example.com"}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for i := range 10 {
		if code := signIn(nodes[i%3], "wrong password!"); code != 401 {
			t.Fatalf("wrong sign-in %d: %d", i, code)
		}
	}
	for i, n := range nodes {
		if code := signIn(n, "a long enough password"); code != 429 {
			t.Errorf("instance %d let an 11th sign-in from the address through: %d", i, code)
		}
	}

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
	// At most three calls wait out the 1 s timeout before the circuit opens;
	// after that, none waits.
	if d := time.Since(begin); d > 4*time.Second {
		t.Errorf("five requests with Redis down took %v, want under three timeouts", d)
	}
	redis.Start(t)
	for _, n := range nodes {
		n.Stop(t)
	}
}
