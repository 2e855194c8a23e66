package main_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// Two instances of the binary on one PostgreSQL database: what one creates
// works on the other at once, what one revokes the other refuses within a
// second, and neither log shows the database password.
func TestTwoInstancesOnPostgres(t *testing.T) {
	url := testutil.Postgres(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	a := tokend.Serve(t, nil, "--db", url, "--secrets-key-file", key)
	admin := a.WaitToken(t)
	b := tokend.Serve(t, nil, "--db", url, "--secrets-key-file", key)
	if testutil.TokenPattern.MatchString(b.Stdout.String()) {
		t.Fatal("the second instance bootstrapped the database again")
	}
	code, body := call(t, "POST", a.URL+"/api/api_tokens", admin, `{"name": "ci", "resources": [{"resource_type": "account", "resource_id": 1, "access_level": 10}]}`)
	var tok struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("create on A: %d %s", code, body)
	}
	if code, _ := call(t, "GET", b.URL+"/api/whoami", tok.Token, ""); code != 200 {
		t.Fatalf("a token created on A answers %d on B", code)
	}
	if code, _ := call(t, "DELETE", fmt.Sprintf("%s/api/api_tokens/%d", a.URL, tok.ID), admin, ""); code != 204 {
		t.Fatalf("delete on A: %d", code)
	}
	waitFor(t, time.Second, "B refuses the token A deleted", func() bool {
		code, _ := call(t, "GET", b.URL+"/api/whoami", tok.Token, "")
		return code == 401
	})
	// A sending domain made on A signs on B: both hold the same secrets key.
	if code, body := call(t, "POST", b.URL+"/api/accounts/1/sending_domains", admin, `{"sending_domain": {"domain_name": "example.com"}}`); code != 200 {
		t.Fatalf("domain on B: %d %s", code, body)
	}
	a.Stop(t)
	b.Stop(t)
	for _, s := range []*testutil.Process{a, b} {
		if strings.Contains(s.Stderr.String(), admin) {
			t.Error("a log holds the admin token")
		}
	}
	// A third instance with another key, or with none, refuses to start.
	other := filepath.Join(t.TempDir(), "other.key")
	r := tokend.Run(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", url, "--secrets-key-file", other)
	if r.Code == 0 || !strings.Contains(r.Stderr, "is missing, but database") {
		t.Errorf("an instance without the secrets key: %+v", r)
	}
	if err := os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = tokend.Run(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", url, "--secrets-key-file", other)
	if r.Code == 0 || !strings.Contains(r.Stderr, "sealed with another key") {
		t.Errorf("an instance with another secrets key: %+v", r)
	}
	if r := tokend.Run(t, nil, "serve", "--addr", "127.0.0.1:0", "--db", url); r.Code != 2 || !strings.Contains(r.Stderr, "--secrets-key-file is required") {
		t.Errorf("PostgreSQL without --secrets-key-file: %+v", r)
	}
	if r := tokend.Run(t, nil, "backup", "out.db", "--db", url); r.Code != 2 || !strings.Contains(r.Stderr, "pg_dump") {
		t.Errorf("backup of PostgreSQL: %+v", r)
	}
}
