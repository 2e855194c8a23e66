package main_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// kill -9 of one of two instances on PostgreSQL during creates and resets:
// every write it acknowledged is there on the other, and no reset is half
// done (a reset token always has its successor, and the other way round).
func TestKilledInstanceOnPostgresLosesNothing(t *testing.T) {
	url := testutil.Postgres(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	args := []string{"--db", url, "--secrets-key-file", key, "--auth-failure-limit", "1000000"}
	a := tokend.Serve(t, nil, args...)
	admin := a.WaitToken(t)
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "1000000", "--db", url); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	b := tokend.Serve(t, nil, args...)
	client := &http.Client{Timeout: 5 * time.Second}
	post := func(path, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", a.URL+path, strings.NewReader(body))
		req.Header.Set("Api-Token", admin)
		res, err := client.Do(req)
		if err != nil {
			return 0, nil // A is gone
		}
		defer res.Body.Close()
		var out map[string]any
		json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	var mu sync.Mutex
	acked := map[string]bool{} // token values A answered with
	var wg sync.WaitGroup
	stop := time.Now().Add(1200 * time.Millisecond)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000 && time.Now().Before(stop.Add(time.Second)); i++ {
				code, tok := post("/api/api_tokens", fmt.Sprintf(`{"name": "w%d-%d", "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 10}]}`, w, i))
				if code == 0 {
					return
				}
				if code != 200 {
					continue
				}
				mu.Lock()
				acked[tok["token"].(string)] = true
				mu.Unlock()
				if code, fresh := post(fmt.Sprintf("/api/api_tokens/%.0f/reset", tok["id"].(float64)), ""); code == 200 {
					mu.Lock()
					acked[fresh["token"].(string)] = true
					mu.Unlock()
				} else if code == 0 {
					return
				}
			}
		}()
	}
	time.Sleep(time.Until(stop))
	a.Kill(t)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}
	lost := 0
	for v := range acked {
		if code, _ := call(t, "GET", b.URL+"/api/whoami", v, ""); code != 200 {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged tokens do not work on the surviving instance", lost, len(acked))
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var resets, audited, orphans int
	db.QueryRow(`SELECT count(*) FROM api_tokens WHERE reset_at IS NOT NULL`).Scan(&resets)
	db.QueryRow(`SELECT count(*) FROM audit_events WHERE action = 'token.reset'`).Scan(&audited)
	db.QueryRow(`SELECT count(*) FROM audit_events e WHERE action = 'token.reset'
		AND NOT EXISTS (SELECT 1 FROM api_tokens t WHERE t.id = (e.details::json->>'new_token_id')::bigint)`).Scan(&orphans)
	if resets != audited || orphans != 0 || resets == 0 {
		t.Errorf("resets: %d tokens marked reset, %d reset events, %d without their new token", resets, audited, orphans)
	}
	t.Logf("%d writes acknowledged before kill -9, all on the other instance; %d complete resets", len(acked), resets)
	b.Stop(t)
}
