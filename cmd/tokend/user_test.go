package main_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestUserCreateAndList(t *testing.T) {
	db := filepath.Join(t.TempDir(), "users.db")
	if r := tokend.Run(t, nil, "account", "create", "--name", "Acme", "--db", db); r.Code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	r := tokend.RunInput(t, "correct horse battery\n", "user", "create", "--account", "1", "--email", "Ann@Example.com", "--name", "Ann", "--password-stdin", "--db", db, "--json")
	var u struct {
		ID        int64  `json:"id"`
		AccountID int64  `json:"account_id"`
		Email     string `json:"email"`
		Role      string `json:"role"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &u) != nil || u.Email != "ann@example.com" || u.Role != "admin" || u.AccountID != 1 {
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
			if r := tokend.RunInput(t, tt.stdin, args...); r.Code != tt.code || !strings.Contains(r.Stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.Code, r.Stderr, tt.code, tt.stderr)
			}
		})
	}
	if r := tokend.RunInput(t, "", "user", "create", "--account", "1", "--email", "e@example.com", "--db", db); r.Code != 2 || !strings.Contains(r.Stderr, "--password-stdin") {
		t.Errorf("without --password-stdin: %+v", r)
	}
	// What a command is asked to do is never read from the environment: a
	// stray TOKEND_EMAIL or TOKEND_ROLE names no one.
	if r := tokend.Run(t, []string{"TOKEND_EMAIL=e@example.com", "TOKEND_ROLE=viewer"}, "user", "create", "--account", "1", "--password-stdin", "--db", db); r.Code != 2 || !strings.Contains(r.Stderr, "--email") {
		t.Errorf("with TOKEND_EMAIL set and no --email: %+v", r)
	}
	list := tokend.Run(t, nil, "user", "list", "--db", db)
	if list.Code != 0 || !strings.Contains(list.Stdout, "ann@example.com") || strings.Count(list.Stdout, "@") != 1 {
		t.Errorf("user list: %+v", list)
	}
	if data, _ := os.ReadFile(db); strings.Contains(string(data), "correct horse battery") {
		t.Error("the database holds a password in clear")
	}
	// The user signs in to the dashboard of a server on that database.
	s := tokend.Serve(t, nil, "--db", db)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := client.PostForm(s.URL+"/login", url.Values{"email": {"ann@example.com"}, "password": {"correct horse battery"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Request.URL.Path != "/settings/api-tokens" {
		t.Errorf("sign-in ended at %s with %d", res.Request.URL, res.StatusCode)
	}
	page := func() string {
		res, err := client.Get(s.URL + "/projects")
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
	if r := tokend.RunInput(t, "another fine password\n", "user", "set-password", "1", "--password-stdin", "--db", db); r.Code != 0 || !strings.Contains(r.Stdout, "sessions ended") {
		t.Fatalf("set-password: %+v", r)
	}
	if p := page(); p != "/login" {
		t.Errorf("after set-password the old session still opens /projects (ended at %s)", p)
	}
	if r := tokend.RunInput(t, "short", "user", "set-password", "1", "--password-stdin", "--db", db); r.Code != 2 {
		t.Errorf("short password: %+v", r)
	}
	res, _ = client.PostForm(s.URL+"/login", url.Values{"email": {"ann@example.com"}, "password": {"another fine password"}})
	res.Body.Close()
	if r := tokend.Run(t, nil, "user", "delete", "1", "--db", db); r.Code != 0 || !strings.Contains(r.Stdout, "Deleted user 1 ann@example.com") {
		t.Fatalf("user delete: %+v", r)
	}
	if p := page(); p != "/login" {
		t.Errorf("a deleted user's session still opens /projects (ended at %s)", p)
	}
	if r := tokend.Run(t, nil, "user", "delete", "1", "--db", db); r.Code != 1 || !strings.Contains(r.Stderr, "no user 1") {
		t.Errorf("deleting again: %+v", r)
	}
	s.Stop(t)
}

var setupLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/setup\?code=[A-Za-z0-9_-]{43}`)

// The first start prints a one-time link to set the owner's password.
func TestFirstStartPrintsASetupLink(t *testing.T) {
	db := filepath.Join(t.TempDir(), "fresh.db")
	s := tokend.Serve(t, nil, "--db", db)
	s.WaitToken(t)
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		link = setupLink.FindString(s.Stdout.String())
	}
	if link == "" || !strings.HasPrefix(link, s.URL) {
		t.Fatalf("no setup link for %s in %q", s.URL, s.Stdout.String())
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
	s.Stop(t)
	again := tokend.Serve(t, nil, "--db", db)
	time.Sleep(200 * time.Millisecond)
	if setupLink.MatchString(again.Stdout.String()) {
		t.Error("a second start printed another setup link")
	}
	again.Stop(t)
}

// Refused input is explained in sentences naming what is wrong, as an
// operator reads them: never Go's rendering of a map or a slice.
func TestValidationErrorsAreSentences(t *testing.T) {
	db := filepath.Join(t.TempDir(), "v.db")
	if r := tokend.Run(t, nil, "account", "create", "--name", "Acme", "--db", db); r.Code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	if r := tokend.RunInput(t, "a long enough password\n", "user", "create", "--account", "1", "--email", "ann@example.com", "--password-stdin", "--db", db); r.Code != 0 {
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
			r := tokend.RunInput(t, tt.stdin, append(tt.args, "--db", db)...)
			if got := strings.TrimSpace(r.Stderr); r.Code != 2 || got != "tokend: "+tt.want {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.Code, r.Stderr, "tokend: "+tt.want)
			}
		})
	}
}

// A setup link lost, leaked or used is replaced from the command line: the
// new link works in the dashboard of a running server, and every earlier
// link of the account stops working there at once.
func TestUserSetupLinkReplacesEarlierLinks(t *testing.T) {
	db := filepath.Join(t.TempDir(), "links.db")
	s := tokend.Serve(t, nil, "--db", db)
	s.WaitToken(t)
	var first string
	for deadline := time.Now().Add(10 * time.Second); first == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		first = setupLink.FindString(s.Stdout.String())
	}
	if first == "" {
		t.Fatalf("no setup link on the first start: %q", s.Stdout.String())
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	status := func(link string) int {
		t.Helper()
		res, err := client.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	issue := func(env []string, args ...string) string {
		t.Helper()
		r := tokend.Run(t, env, append([]string{"user", "setup-link", "--account", "1", "--db", db}, args...)...)
		link := setupLink.FindString(r.Stdout)
		if r.Code != 0 || !strings.HasPrefix(link, s.URL+"/setup?code=") {
			t.Fatalf("user setup-link: %+v", r)
		}
		return link
	}

	second := issue(nil, "--url", s.URL+"/")
	if code := status(first); code != 404 {
		t.Errorf("the first start's link answers %d after a new one was issued, want 404", code)
	}
	if code := status(second); code != 200 {
		t.Errorf("the new link answers %d", code)
	}
	// TOKEND_URL says where tokend is reached, as for the SDK.
	third := issue([]string{"TOKEND_URL=" + s.URL}, "--role", "viewer")
	if status(second) != 404 || status(third) != 200 {
		t.Errorf("after a third link: the second answers %d, the third %d; want 404 and 200", status(second), status(third))
	}
	// The third link sets up a viewer; used, it is gone, and another can be issued.
	code := strings.TrimPrefix(third, s.URL+"/setup?code=")
	res, err := client.PostForm(s.URL+"/setup", url.Values{"code": {code}, "email": {"vic@example.com"}, "password": {"a long enough password"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.Path != "/settings/api-tokens" {
		t.Errorf("setting up through the new link ended at %s with %d", res.Request.URL, res.StatusCode)
	}
	if list := tokend.Run(t, nil, "user", "list", "--db", db); !strings.Contains(list.Stdout, "vic@example.com") || !strings.Contains(list.Stdout, "viewer") {
		t.Errorf("user list after the setup: %+v", list)
	}
	if code := status(third); code != 404 {
		t.Errorf("a used link answers %d, want 404", code)
	}
	r := tokend.Run(t, nil, "user", "setup-link", "--account", "1", "--db", db, "--url", s.URL, "--json")
	var out struct {
		URL       string    `json:"url"`
		AccountID int64     `json:"account_id"`
		Role      string    `json:"role"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || out.AccountID != 1 || out.Role != "admin" ||
		time.Until(out.ExpiresAt) < 6*24*time.Hour || time.Until(out.ExpiresAt) > 7*24*time.Hour || status(out.URL) != 200 {
		t.Errorf("setup-link --json: %+v", r)
	}
	s.Stop(t)
	for _, f := range []string{db, db + "-wal"} {
		if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), strings.TrimPrefix(out.URL, s.URL+"/setup?code=")) {
			t.Errorf("%s holds a setup link's code in clear", f)
		}
	}

	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no account", []string{"--db", db}, 2, "--account ID is required"},
		{"unknown account", []string{"--account", "9", "--db", db}, 1, "no account 9"},
		{"unknown role", []string{"--account", "1", "--role", "owner", "--db", db}, 2, "admin or viewer"},
		{"not a URL", []string{"--account", "1", "--url", "tokend.example.com", "--db", db}, 2, "not an http or https URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tokend.Run(t, nil, append([]string{"user", "setup-link"}, tt.args...)...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.stderr) || r.Stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", r.Code, r.Stdout, r.Stderr, tt.code, tt.stderr)
			}
		})
	}
}
