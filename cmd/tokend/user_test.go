package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tokendIn runs the binary with stdin.
func tokendIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = os.Environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func TestUserCreateAndList(t *testing.T) {
	db := filepath.Join(t.TempDir(), "users.db")
	if r := tokend(t, nil, "account", "create", "--name", "Acme", "--db", db); r.code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	r := tokendIn(t, "correct horse battery\n", "user", "create", "--account", "1", "--email", "Ann@Example.com", "--name", "Ann", "--password-stdin", "--db", db, "--json")
	var u struct {
		ID        int64  `json:"id"`
		AccountID int64  `json:"account_id"`
		Email     string `json:"email"`
		Role      string `json:"role"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &u) != nil || u.Email != "ann@example.com" || u.Role != "admin" || u.AccountID != 1 {
		t.Fatalf("user create: %+v", r)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"email taken", "another good password", []string{"--account", "1", "--email", "ANN@example.com"}, 2, "has already been taken"},
		{"short password", "short", []string{"--account", "1", "--email", "b@example.com"}, 2, "is too short"},
		{"no such account", "a long enough password", []string{"--account", "9", "--email", "c@example.com"}, 1, "no account 9"},
		{"bad role", "a long enough password", []string{"--account", "1", "--email", "d@example.com", "--role", "owner"}, 2, "admin or viewer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"user", "create", "--password-stdin", "--db", db}, tt.args...)
			if r := tokendIn(t, tt.stdin, args...); r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}
	if r := tokendIn(t, "", "user", "create", "--account", "1", "--email", "e@example.com", "--db", db); r.code != 2 || !strings.Contains(r.stderr, "--password-stdin") {
		t.Errorf("without --password-stdin: %+v", r)
	}
	list := tokend(t, nil, "user", "list", "--db", db)
	if list.code != 0 || !strings.Contains(list.stdout, "ann@example.com") || strings.Count(list.stdout, "@") != 1 {
		t.Errorf("user list: %+v", list)
	}
	if data, _ := os.ReadFile(db); strings.Contains(string(data), "correct horse battery") {
		t.Error("the database holds a password in clear")
	}
	// The user signs in to the dashboard of a server on that database.
	s := startServe(t, nil, "--db", db)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := client.PostForm(s.url+"/login", url.Values{"email": {"ann@example.com"}, "password": {"correct horse battery"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Request.URL.Path != "/settings/api-tokens" {
		t.Errorf("sign-in ended at %s with %d", res.Request.URL, res.StatusCode)
	}
	page := func() string {
		res, err := client.Get(s.url + "/projects")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Request.URL.Path
	}
	if p := page(); p != "/projects" {
		t.Fatalf("signed in, /projects ended at %s", p)
	}
	// A new password ends the user's sessions at once, on the running server.
	if r := tokendIn(t, "another fine password\n", "user", "set-password", "1", "--password-stdin", "--db", db); r.code != 0 || !strings.Contains(r.stdout, "sessions ended") {
		t.Fatalf("set-password: %+v", r)
	}
	if p := page(); p != "/login" {
		t.Errorf("after set-password the old session still opens /projects (ended at %s)", p)
	}
	if r := tokendIn(t, "short", "user", "set-password", "1", "--password-stdin", "--db", db); r.code != 2 {
		t.Errorf("short password: %+v", r)
	}
	res, _ = client.PostForm(s.url+"/login", url.Values{"email": {"ann@example.com"}, "password": {"another fine password"}})
	res.Body.Close()
	if r := tokend(t, nil, "user", "delete", "1", "--db", db); r.code != 0 || !strings.Contains(r.stdout, "Deleted user 1 ann@example.com") {
		t.Fatalf("user delete: %+v", r)
	}
	if p := page(); p != "/login" {
		t.Errorf("a deleted user's session still opens /projects (ended at %s)", p)
	}
	if r := tokend(t, nil, "user", "delete", "1", "--db", db); r.code != 1 || !strings.Contains(r.stderr, "no user 1") {
		t.Errorf("deleting again: %+v", r)
	}
	s.stop(t)
}

var setupLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/setup\?code=[A-Za-z0-9_-]{43}`)

// The first start prints a one-time link to set the owner's password.
func TestFirstStartPrintsASetupLink(t *testing.T) {
	db := filepath.Join(t.TempDir(), "fresh.db")
	s := startServe(t, nil, "--db", db)
	s.waitToken(t)
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		link = setupLink.FindString(s.stdout.String())
	}
	if link == "" || !strings.HasPrefix(link, s.url) {
		t.Fatalf("no setup link for %s in %q", s.url, s.stdout.String())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("the setup link answers %d", res.StatusCode)
	}
	s.stop(t)
	again := startServe(t, nil, "--db", db)
	time.Sleep(200 * time.Millisecond)
	if setupLink.MatchString(again.stdout.String()) {
		t.Error("a second start printed another setup link")
	}
	again.stop(t)
}

// Refused input is explained in sentences naming what is wrong, as an
// operator reads them: never Go's rendering of a map or a slice.
func TestValidationErrorsAreSentences(t *testing.T) {
	db := filepath.Join(t.TempDir(), "v.db")
	if r := tokend(t, nil, "account", "create", "--name", "Acme", "--db", db); r.code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	if r := tokendIn(t, "a long enough password\n", "user", "create", "--account", "1", "--email", "ann@example.com", "--password-stdin", "--db", db); r.code != 0 {
		t.Fatalf("user create: %+v", r)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string // the whole message, after "tokend: "
	}{
		{"short password", "short\n", []string{"user", "create", "--account", "1", "--email", "b@example.com", "--password-stdin"},
			"user create: password is too short (minimum is 10 characters)"},
		{"empty password", "", []string{"user", "create", "--account", "1", "--email", "b@example.com", "--password-stdin"},
			"user create: the password on standard input is empty: give it as the first line of standard input"},
		{"empty line as password", "\n", []string{"user", "set-password", "1", "--password-stdin"},
			"user set-password: the password on standard input is empty: give it as the first line of standard input"},
		{"short new password", "short\n", []string{"user", "set-password", "1", "--password-stdin"},
			"user set-password: password is too short (minimum is 10 characters)"},
		{"email taken", "a long enough password\n", []string{"user", "create", "--account", "1", "--email", "ANN@example.com", "--password-stdin"},
			"user create: email has already been taken"},
		{"two problems", "short\n", []string{"user", "create", "--account", "1", "--email", "not an address", "--password-stdin"},
			"user create: email is not a valid email address; password is too short (minimum is 10 characters)"},
		{"enterprise without a rate limit", "", []string{"account", "set-plan", "1", "--plan", "enterprise"},
			"account set-plan: rate limit is required for the enterprise plan"},
		{"blank account name", "", []string{"account", "create", "--name", " "},
			"account create: name can't be blank"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tokendIn(t, tt.stdin, append(tt.args, "--db", db)...)
			if got := strings.TrimSpace(r.stderr); r.code != 2 || got != "tokend: "+tt.want {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, "tokend: "+tt.want)
			}
		})
	}
}
