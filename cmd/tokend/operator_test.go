package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

// createAccount runs "account create --json" and returns the account ID and its admin token.
func createAccount(t *testing.T, db, name string) (int64, string) {
	t.Helper()
	r := tokend.Run(t, nil, "account", "create", "--name", name, "--db", db, "--json")
	var out struct {
		Account  struct{ ID int64 }
		APIToken struct{ Token string } `json:"api_token"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
		t.Fatalf("account create: %+v", r)
	}
	return out.Account.ID, out.APIToken.Token
}

// The operator mints an admin token into an existing account while the
// server runs: it works at once, names the operator as creator, and the
// audit log says who made it.
func TestTokenCreateRecoversAnAccount(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	account, admin := createAccount(t, db, "Acme")
	s := tokend.Serve(t, nil, "--db", db)

	r := tokend.Run(t, []string{"USER=oncall"}, "token", "create", "--account", fmt.Sprint(account), "--name", "Recovery", "--db", db, "--json")
	var tok struct {
		ID        int64
		Name      string
		Token     string
		CreatedBy string `json:"created_by"`
		Resources []struct {
			ResourceType string `json:"resource_type"`
			ResourceID   int64  `json:"resource_id"`
			AccessLevel  int    `json:"access_level"`
		}
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &tok) != nil {
		t.Fatalf("token create: %+v", r)
	}
	if tok.Name != "Recovery" || tok.CreatedBy != "oncall" || !testutil.TokenPattern.MatchString(tok.Token) ||
		len(tok.Resources) != 1 || tok.Resources[0].ResourceType != "account" || tok.Resources[0].ResourceID != account || tok.Resources[0].AccessLevel != 100 {
		t.Fatalf("token create --json = %s", r.Stdout)
	}
	if code, body := call(t, "GET", s.URL+"/api/whoami", tok.Token, ""); code != 200 || !strings.Contains(body, `"name":"Recovery"`) {
		t.Fatalf("the running server refused the new token: %d %s", code, body)
	}
	// It is a full account admin: it can create tokens.
	if code, _ := call(t, "POST", s.URL+"/api/api_tokens", tok.Token, `{"name":"made by recovery"}`); code != 200 {
		t.Errorf("the recovery token cannot create tokens: %d", code)
	}
	_, body := call(t, "GET", s.URL+"/api/audit_log?limit=5", admin, "")
	if !strings.Contains(body, `"action":"token.created","actor":"oncall"`) || !strings.Contains(body, fmt.Sprintf(`"target_id":%d`, tok.ID)) {
		t.Errorf("the audit log does not show the operator creating token %d:\n%s", tok.ID, body)
	}

	// Text output shows the value once, with the warning.
	text := tokend.Run(t, nil, "token", "create", "--account", fmt.Sprint(account), "--name", "Second", "--db", db)
	if text.Code != 0 || !testutil.TokenPattern.MatchString(text.Stdout) || !strings.Contains(text.Stdout, "will not show it again") {
		t.Errorf("token create: %+v", text)
	}

	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"unknown account", []string{"--account", "99", "--name", "x"}, 1, "no account 99"},
		{"no account", []string{"--name", "x"}, 2, "--account"},
		{"no name", []string{"--account", "1"}, 2, "--name"},
		{"blank name", []string{"--account", "1", "--name", "  "}, 2, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tokend.Run(t, nil, append([]string{"token", "create", "--db", db}, tt.args...)...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) || testutil.TokenPattern.MatchString(r.Stdout) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d mentioning %q", r.Code, r.Stdout, r.Stderr, tt.code, tt.says)
			}
		})
	}
	s.Stop(t)
}

// A token revoked from the command line stops working on a running server
// within a second; a domain's last admin token needs --force.
func TestTokenRevoke(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	account, admin := createAccount(t, db, "Acme")
	s := tokend.Serve(t, nil, "--db", db)
	code, body := call(t, "POST", s.URL+"/api/api_tokens", admin, `{"name":"doomed"}`)
	var tok struct {
		ID    int64
		Token string
	}
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _ := call(t, "GET", s.URL+"/api/whoami", tok.Token, ""); code != 200 {
		t.Fatalf("whoami: %d", code) // now it is in the server's cache
	}
	r := tokend.Run(t, []string{"USER=oncall"}, "token", "revoke", fmt.Sprint(tok.ID), "--db", db)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Revoked token") {
		t.Fatalf("token revoke: %+v", r)
	}
	waitFor(t, time.Second, "the revoked token to be refused", func() bool {
		code, _ := call(t, "GET", s.URL+"/api/whoami", tok.Token, "")
		return code == 401
	})
	_, audit := call(t, "GET", s.URL+"/api/audit_log?limit=1", admin, "")
	if !strings.Contains(audit, `"action":"token.deleted","actor":"oncall"`) {
		t.Errorf("the audit log does not show the revocation: %s", audit)
	}

	// A domain's own token is its last admin token.
	code, body = call(t, "POST", fmt.Sprintf("%s/api/accounts/%d/sending_domains", s.URL, account), admin, `{"sending_domain":{"domain_name":"example.com"}}`)
	var d struct {
		APIToken struct {
			ID    int64
			Token string
		} `json:"api_token"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("domain: %d %s", code, body)
	}
	// While the account admin token lives it covers the domain too; once it
	// is revoked, the domain's own token is the domain's last admin token.
	if r := tokend.Run(t, nil, "token", "revoke", "1", "--db", db); r.Code != 0 {
		t.Fatalf("revoking the account admin token: %+v", r)
	}
	id := fmt.Sprint(d.APIToken.ID)
	if r := tokend.Run(t, nil, "token", "revoke", id, "--db", db); r.Code != 1 || !strings.Contains(r.Stderr, "example.com") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("revoking a domain's last token: %+v", r)
	}
	if code, _ := call(t, "GET", s.URL+"/api/whoami", d.APIToken.Token, ""); code != 200 {
		t.Errorf("a refused revoke still removed the token: %d", code)
	}
	if r := tokend.Run(t, nil, "token", "revoke", "--db", db, "--force", id); r.Code != 0 {
		t.Errorf("revoke --force: %+v", r)
	}
	waitFor(t, time.Second, "the force-revoked token to be refused", func() bool {
		code, _ := call(t, "GET", s.URL+"/api/whoami", d.APIToken.Token, "")
		return code == 401
	})
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"999"}, 1, "no token 999"},
		{[]string{}, 2, "missing token ID"},
		{[]string{"abc"}, 2, "not a token ID"},
	} {
		if r := tokend.Run(t, nil, append([]string{"token", "revoke", "--db", db}, tt.args...)...); r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
			t.Errorf("token revoke %v: %+v; want exit %d mentioning %q", tt.args, r, tt.code, tt.says)
		}
	}
	s.Stop(t)
}

// A backup taken while the server is busy writing opens as a tokend database
// of its own, with everything acknowledged before the backup began.
func TestBackupWhileServing(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "tokend.db")
	_, admin := createAccount(t, db, "Acme")
	if r := tokend.Run(t, nil, "account", "set-plan", "1", "--plan", "enterprise", "--rate-limit", "1000000", "--db", db); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	s := tokend.Serve(t, nil, "--db", db)

	create := func(name string) string {
		code, body := call(t, "POST", s.URL+"/api/api_tokens", admin, `{"name":"`+name+`"}`)
		var tok struct{ Token string }
		if code != 200 || json.Unmarshal([]byte(body), &tok) != nil {
			t.Errorf("create %s: %d %s", name, code, body)
		}
		return tok.Token
	}
	var before []string
	for i := 0; i < 20; i++ {
		before = append(before, create(fmt.Sprintf("before %d", i)))
	}
	// Writes keep coming while the backup runs.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && i < 500; i++ {
			create(fmt.Sprintf("during %d", i))
		}
	}()
	out := filepath.Join(dir, "backup.db")
	r := tokend.Run(t, nil, "backup", out, "--db", db)
	stop.Store(true)
	wg.Wait()
	if r.Code != 0 || !strings.Contains(r.Stdout, out) {
		t.Fatalf("backup: %+v", r)
	}
	// The copy holds what the database holds: it is the owner's alone, as the
	// database and its key file are.
	for _, f := range []string{out, out + ".key"} {
		if info, err := os.Stat(f); err != nil {
			t.Error(err)
		} else if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; want 0600", f, info.Mode().Perm())
		}
	}
	if r := tokend.Run(t, nil, "backup", "--db", db, out); r.Code != 1 || !strings.Contains(r.Stderr, "already exists") {
		t.Errorf("a second backup to the same file: %+v", r)
	}
	nowhere := filepath.Join(dir, "no", "such", "dir", "b.db")
	if r := tokend.Run(t, nil, "backup", "--db", db, nowhere); r.Code != 1 || !strings.Contains(r.Stderr, "cannot create "+nowhere) {
		t.Errorf("a backup into a missing directory: %+v", r)
	}
	s.Stop(t)

	// Restore: a server on the copy knows every token acknowledged before the backup.
	restored := tokend.Serve(t, nil, "--db", out)
	for i, v := range before {
		if code, _ := call(t, "GET", restored.URL+"/api/whoami", v, ""); code != 200 {
			t.Errorf("token %d created before the backup answers %d on the restored copy", i, code)
		}
	}
	restored.Stop(t)
	if testutil.TokenPattern.MatchString(restored.Stdout.String()) {
		t.Error("the restored copy looked empty: serve bootstrapped a new account")
	}
	check := exec.Command("sh", "-c", "command -v sqlite3 >/dev/null || exit 0; sqlite3 \"$1\" 'PRAGMA integrity_check'", "sh", out)
	if b, err := check.CombinedOutput(); err != nil || (len(b) > 0 && strings.TrimSpace(string(b)) != "ok") {
		t.Errorf("integrity check of the backup: %v %s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "backup.db-wal")); err == nil {
		data, _ := os.ReadFile(filepath.Join(dir, "backup.db-wal"))
		if testutil.TokenPattern.Match(data) {
			t.Error("the backup holds a token value")
		}
	}
}

// commandWord is a word of a command's name in the help's usage lines; what
// follows the name (flags, ID, [flags], OUT) is not.
var commandWord = regexp.MustCompile(`^[a-z][a-z-]*$`)

// helpCommands lists every command the top-level help shows, which is every
// command tokend has (the help is made from the command table), and the
// groups: the first words of the commands of more than one word.
func helpCommands(t *testing.T) (commands [][]string, groups map[string][]string) {
	t.Helper()
	r := tokend.Run(t, nil, "help")
	if r.Code != 0 {
		t.Fatalf("help: %+v", r)
	}
	groups = map[string][]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		words, ok := strings.CutPrefix(line, "  tokend ")
		if !ok {
			continue
		}
		var name []string
		for _, w := range strings.Fields(words) {
			if !commandWord.MatchString(w) {
				break
			}
			name = append(name, w)
		}
		commands = append(commands, name)
		if len(name) > 1 {
			groups[name[0]] = append(groups[name[0]], strings.Join(name, " "))
		}
	}
	if len(commands) < 10 || len(groups) < 4 {
		t.Fatalf("found %d commands and %d groups in the help:\n%s", len(commands), len(groups), r.Stdout)
	}
	return commands, groups
}

// Every command and every group of commands has help, asked for either way:
// "tokend help X [Y]" and "tokend X [Y] --help" (for a group, -h too) print
// the same to stdout and exit 0.
func TestHelpForEveryCommandAndGroup(t *testing.T) {
	commands, groups := helpCommands(t)
	ask := func(t *testing.T, name []string, want string, flags ...string) string {
		t.Helper()
		viaHelp := tokend.Run(t, nil, append([]string{"help"}, name...)...)
		if viaHelp.Code != 0 || viaHelp.Stderr != "" || !strings.HasPrefix(viaHelp.Stdout, want) {
			t.Fatalf("tokend help %s: exit %d, stderr %q, stdout %q; want exit 0 and stdout starting %q",
				strings.Join(name, " "), viaHelp.Code, viaHelp.Stderr, viaHelp.Stdout, want)
		}
		for _, flag := range flags {
			viaFlag := tokend.Run(t, nil, append(name, flag)...)
			if viaFlag.Code != 0 || viaFlag.Stderr != "" || viaFlag.Stdout != viaHelp.Stdout {
				t.Errorf("tokend %s %s: exit %d, stderr %q, stdout %q; want exit 0 and what tokend help %[1]s prints",
					strings.Join(name, " "), flag, viaFlag.Code, viaFlag.Stderr, viaFlag.Stdout)
			}
		}
		return viaHelp.Stdout
	}
	for _, name := range commands {
		t.Run(strings.Join(name, " "), func(t *testing.T) {
			ask(t, name, "Usage: tokend "+strings.Join(name, " "), "--help")
		})
	}
	for group, subs := range groups {
		t.Run(group, func(t *testing.T) {
			out := ask(t, []string{group}, "Usage: tokend "+group+" COMMAND", "--help", "-h")
			for _, sub := range subs {
				if !strings.Contains(out, "tokend "+sub+" ") && !strings.Contains(out, "tokend "+sub+"\n") {
					t.Errorf("tokend help %s does not list %s:\n%s", group, sub, out)
				}
			}
		})
	}
}

func TestHelpNamesEveryFlagAndItsVariable(t *testing.T) {
	serve := tokend.Run(t, nil, "help", "serve").Stdout
	for _, want := range []string{"--addr", "TOKEND_ADDR", "--db", "TOKEND_DB", "--trusted-proxies", "TOKEND_TRUSTED_PROXIES",
		"--insecure-http", "TOKEND_INSECURE_HTTP", "--alert-webhook", "TOKEND_ALERT_WEBHOOK", "default 127.0.0.1:8080"} {
		if !strings.Contains(serve, want) {
			t.Errorf("help serve lacks %q:\n%s", want, serve)
		}
	}
	// Every variable the help names is read: a bad value in it is refused.
	if r := tokend.Run(t, []string{"TOKEND_TRUSTED_PROXIES=nonsense"}, "serve"); r.Code != 2 || !strings.Contains(r.Stderr, "TOKEND_TRUSTED_PROXIES") {
		t.Errorf("a bad TOKEND_TRUSTED_PROXIES: %+v", r)
	}
	top := tokend.Run(t, nil, "help")
	for _, want := range []string{"token create", "token revoke", "backup", "version"} {
		if !strings.Contains(top.Stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if r := tokend.Run(t, nil, "help", "launch"); r.Code != 2 || !strings.Contains(r.Stderr, "unknown command") {
		t.Errorf("help of an unknown command: %+v", r)
	}
}

func TestUnknownCommands(t *testing.T) {
	for _, args := range [][]string{{"launch"}, {"account", "delete"}, {"token", "list"}, {"--frobnicate"}} {
		r := tokend.Run(t, nil, args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "unknown command") {
			t.Errorf("tokend %v: exit %d, stderr %q; want exit 2 saying unknown command", args, r.Code, r.Stderr)
		}
	}
}

// The version names the git revision the binary was built from.
func TestVersionNamesTheRevision(t *testing.T) {
	r := tokend.Run(t, nil, "version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "tokend ") {
		t.Fatalf("version: %+v", r)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("this test runs in a git checkout, as CI's clone is: %v", err)
	}
	if !strings.Contains(r.Stdout, "revision "+strings.TrimSpace(string(head))) {
		t.Errorf("version %q does not name revision %s", r.Stdout, head)
	}
}

func TestDatabaseErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte("not a database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Commands that only read or change a database never create an empty one.
	missing := filepath.Join(dir, "missing.db")
	for _, args := range [][]string{{"account", "list"}, {"account", "set-plan", "1", "--plan", "pro"}, {"token", "create", "--account", "1", "--name", "x"},
		{"token", "revoke", "1"}, {"backup", filepath.Join(dir, "b.db")}} {
		r := tokend.Run(t, nil, append(args, "--db", missing)...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "no database at "+missing) {
			t.Errorf("tokend %v on a missing database: exit %d, stderr %q", args, r.Code, r.Stderr)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("tokend %v created %s", args, missing)
		}
	}
	for _, db := range []string{notDB, filepath.Join(dir, "missing", "dir", "t.db")} {
		for _, args := range [][]string{{"account", "list"}, {"serve", "--addr", "127.0.0.1:0"}, {"backup", filepath.Join(dir, "b.db")}} {
			r := tokend.Run(t, nil, append(args, "--db", db)...)
			if r.Code != 1 || !strings.Contains(r.Stderr, db) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 0 {
				t.Errorf("tokend %v --db %s: exit %d, stderr %q; want exit 1 and one line naming the file", args, db, r.Code, r.Stderr)
			}
		}
	}
}

// An operator's guards reach a running server within a second: an address
// the token may no longer be used from is refused, a quota spent stops it;
// removing them lets it through again. Contradictions and bad values are
// usage errors.
func TestTokenGuard(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	_, admin := createAccount(t, db, "Acme")
	s := tokend.Serve(t, nil, "--db", db)
	code, body := call(t, "POST", s.URL+"/api/api_tokens", admin, `{"name":"app"}`)
	var tok struct {
		ID    int64
		Token string
	}
	if code != 200 || json.Unmarshal([]byte(body), &tok) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _ := call(t, "GET", s.URL+"/api/whoami", tok.Token, ""); code != 200 {
		t.Fatalf("whoami: %d", code)
	}
	id := fmt.Sprint(tok.ID)
	r := tokend.Run(t, []string{"USER=oncall"}, "token", "guard", id, "--allowed-ips", "203.0.113.0/24, 2001:db8::/32", "--quota", "1000/month/emails", "--db", db)
	if r.Code != 0 || !strings.Contains(r.Stdout, "allowed from 203.0.113.0/24, 2001:db8::/32") || !strings.Contains(r.Stdout, "a quota of 1000 emails a month") {
		t.Fatalf("token guard: %+v", r)
	}
	waitFor(t, time.Second, "the guarded token to be refused from 127.0.0.1", func() bool {
		code, body := call(t, "GET", s.URL+"/api/whoami", tok.Token, "")
		return code == 403 && strings.Contains(body, "ip_not_allowed")
	})
	_, audit := call(t, "GET", s.URL+"/api/audit_log?limit=1", admin, "")
	if !strings.Contains(audit, `"action":"token.updated","actor":"oncall"`) || !strings.Contains(audit, `"allowed_ips"`) {
		t.Errorf("the audit log does not show the change: %s", audit)
	}
	r = tokend.Run(t, nil, "token", "guard", id, "--any-ip", "--rate-limit", "1/1h", "--no-quota", "--json", "--db", db)
	var got struct {
		AllowedIPs []string `json:"allowed_ips"`
		RateLimit  struct {
			Limit         int `json:"limit"`
			PeriodSeconds int `json:"period_seconds"`
		} `json:"rate_limit"`
		Quota *struct{} `json:"quota"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &got) != nil || len(got.AllowedIPs) != 0 || got.RateLimit.Limit != 1 || got.RateLimit.PeriodSeconds != 3600 || got.Quota != nil {
		t.Fatalf("token guard --json: %+v", r)
	}
	waitFor(t, time.Second, "the token to pass from anywhere again", func() bool {
		code, _ := call(t, "GET", s.URL+"/api/whoami", tok.Token, "")
		return code == 200
	})
	if code, body := call(t, "GET", s.URL+"/api/whoami", tok.Token, ""); code != 429 || !strings.Contains(body, "token_rate_limited") {
		t.Errorf("the second request in an hour of a token limited to 1: %d %s", code, body)
	}
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{id}, 2, "nothing to change"},
		{[]string{id, "--any-ip", "--allowed-ips", "10.0.0.0/8"}, 2, "contradict"},
		{[]string{id, "--allowed-ips", "10.0.0.1/8"}, 2, "host bits"},
		{[]string{id, "--rate-limit", "100"}, 2, "want <requests>/<period>"},
		{[]string{id, "--rate-limit", "100/48h"}, 2, "from 1s to 24h"},
		{[]string{id, "--quota", "100/week"}, 2, "want <limit>/day"},
		{[]string{"999", "--no-quota"}, 1, "no token 999"},
	} {
		if r := tokend.Run(t, nil, append(append([]string{"token", "guard"}, tt.args...), "--db", db)...); r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
			t.Errorf("token guard %v: %+v; want exit %d mentioning %q", tt.args, r, tt.code, tt.says)
		}
	}
	s.Stop(t)
}

// tokend token unused lists an account's tokens that made no request
// lately (the listing's rule is tested through the API, whose clock a test
// can move); here what the command prints and refuses.
func TestTokenUnused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	createAccount(t, db, "Acme")
	if r := tokend.Run(t, nil, "token", "unused", "--account", "1", "--db", db); r.Code != 0 || !strings.Contains(r.Stdout, "No token of account 1 has gone 90 days without a request.") {
		t.Errorf("token unused: %+v", r)
	}
	if r := tokend.Run(t, nil, "token", "unused", "--account", "1", "--days", "1", "--json", "--db", db); r.Code != 0 || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("token unused --json: %+v", r)
	}
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--account", "1", "--days", "0"}, 2, "days must be a whole number of days from 1 to 3650"},
		{[]string{"--account", "9"}, 1, "no account 9"},
		{[]string{}, 2, "--account ID is required"},
	} {
		if r := tokend.Run(t, nil, append(append([]string{"token", "unused"}, tt.args...), "--db", db)...); r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
			t.Errorf("token unused %v: %+v; want exit %d mentioning %q", tt.args, r, tt.code, tt.says)
		}
	}
}

// tokend account settings shows and changes an account's expiry warnings
// and leak policy, audited.
func TestAccountSettings(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	createAccount(t, db, "Acme")
	if r := tokend.Run(t, nil, "account", "settings", "1", "--db", db); r.Code != 0 || r.Stdout != "Account 1: expiry warnings 7, 1 days before expiry; leaked tokens: revoke.\n" {
		t.Errorf("account settings: %+v", r)
	}
	r := tokend.Run(t, []string{"USER=oncall"}, "account", "settings", "1", "--expiry-warnings", "1,30", "--leak-policy", "notify", "--json", "--db", db)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != `{"expiry_warning_days":[30,1],"leak_policy":"notify"}` {
		t.Errorf("account settings --json: %+v", r)
	}
	if r := tokend.Run(t, nil, "account", "settings", "1", "--expiry-warnings", "none", "--db", db); r.Code != 0 || !strings.Contains(r.Stdout, "expiry warnings none; leaked tokens: notify.") {
		t.Errorf("account settings --expiry-warnings none: %+v", r)
	}
	for _, tt := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"1", "--leak-policy", "ignore"}, 2, "leak policy must be revoke or notify"},
		{[]string{"1", "--expiry-warnings", "soon"}, 2, "is not a number of days"},
		{[]string{"1", "--expiry-warnings", "0"}, 2, "must be whole days from 1 to 365"},
		{[]string{"9"}, 1, "no account 9"},
	} {
		if r := tokend.Run(t, nil, append(append([]string{"account", "settings"}, tt.args...), "--db", db)...); r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
			t.Errorf("account settings %v: %+v; want exit %d mentioning %q", tt.args, r, tt.code, tt.says)
		}
	}
}
