package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/testutil"
)

// The documentation is tested: every shell example in README.md and
// docs/*.md runs, and what it prints is compared with what the document
// shows. The format, as docs/development.md ("The documentation is tested")
// tells writers:
//
//   - A fenced code block whose info string starts with "sh" (or "bash",
//     "shell") is a shell example. It runs, unless its info string also
//     says "no-run" ("```sh no-run"): for the few that cannot run in a test
//     (systemd, the test suite itself). Every fenced block
//     must name its language, so that no command hides in a block that is
//     not run.
//   - Output is shown right after the command that prints it, as comments:
//     "# → first line", then "#   next line" for each further line ("#"
//     alone for an empty one). A command the document shows no output for
//     must print nothing (not even on stderr). The examples run with
//     set -euo pipefail: one that fails must show it (cmd || echo ...).
//   - In shown output, "..." stands for any text within a line (a token
//     value, a timestamp), and a line that is only "..." for any number of
//     lines. Lines are compared as a terminal shows them: CRLF as LF, and
//     without the spaces that end them.
//
// README.md runs as a newcomer runs it: in a fresh copy of the repository,
// in one shell, from nothing. Each docs/*.md runs in one shell too, top to
// bottom, in a fresh copy of the repository, in the state the README's quick
// start leaves: tokend serving a fresh database (quickstart.db) with one
// account, Acme, and the variables the quick start sets (see docEnv).

// docFiles are the documents whose examples run: README.md, then docs/*.md.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(docs)
	return append([]string{"../../README.md"}, docs...)
}

// codeBlock is one fenced code block of a document.
type codeBlock struct {
	file  string   // the document, relative to the repository
	line  int      // of the opening fence, from 1
	lang  string   // the info string's first word
	attrs []string // its further words, such as "no-run"
	body  []string // the lines inside, without the fence's indentation
}

func (b codeBlock) shell() bool { return b.lang == "sh" || b.lang == "bash" || b.lang == "shell" }
func (b codeBlock) runs() bool  { return b.shell() && !slices.Contains(b.attrs, "no-run") }
func (b codeBlock) where() string {
	return fmt.Sprintf("%s:%d", b.file, b.line)
}

var fence = regexp.MustCompile("^( *)(```+|~~~+)\\s*(.*)$")

// codeBlocks returns the fenced code blocks of the markdown file path, named
// by name; a fence left open is an error.
func codeBlocks(t *testing.T, path, name string) []codeBlock {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []codeBlock
	var cur *codeBlock
	var indent, marker string
	for i, line := range strings.Split(string(raw), "\n") {
		m := fence.FindStringSubmatch(line)
		switch {
		case cur == nil && m != nil:
			words := strings.Fields(m[3])
			cur = &codeBlock{file: name, line: i + 1}
			if len(words) > 0 {
				cur.lang, cur.attrs = words[0], words[1:]
			}
			indent, marker = m[1], m[2]
		case cur != nil && m != nil && strings.HasPrefix(m[2], marker) && m[3] == "":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body = append(cur.body, strings.TrimPrefix(line, indent))
		}
	}
	if cur != nil {
		t.Fatalf("%s: a code block is never closed", cur.where())
	}
	return blocks
}

// docStep is a stretch of a shell example: commands, and the output the
// document shows for them.
type docStep struct {
	line  int      // of the step's first line in the document
	code  []string // the commands, as written
	shown []string // the output shown after them; none: prints nothing
	at    int      // the line of the "# →" that shows it
}

const (
	outputFirst = "# →"
	outputMore  = "#   "
)

// steps cuts a shell example at each output it shows.
func steps(t *testing.T, b codeBlock) []docStep {
	t.Helper()
	var out []docStep
	cur := docStep{line: b.line + 1}
	inOutput := false
	for i, line := range b.body {
		n := b.line + 1 + i
		switch {
		case strings.HasPrefix(line, outputFirst):
			if inOutput || len(strings.TrimSpace(strings.Join(cur.code, ""))) == 0 {
				t.Errorf("%s:%d: output shown with no command before it", b.file, n)
			}
			first := strings.TrimPrefix(strings.TrimPrefix(line, outputFirst), " ")
			cur.shown, cur.at, inOutput = []string{strings.TrimRight(first, " \t")}, n, true
		case inOutput && strings.TrimRight(line, " \t") == "#":
			cur.shown = append(cur.shown, "") // an empty line of output
		case inOutput && strings.HasPrefix(line, outputMore):
			cur.shown = append(cur.shown, strings.TrimRight(strings.TrimPrefix(line, outputMore), " \t"))
		default:
			if inOutput {
				out = append(out, cur)
				cur, inOutput = docStep{line: n}, false
			}
			cur.code = append(cur.code, line)
		}
	}
	if inOutput || strings.TrimSpace(strings.Join(cur.code, "")) != "" {
		out = append(out, cur)
	}
	return out
}

// stepMark ends each step's output in the script's output: a line no
// command prints.
const stepMark = "@@docstep:3f9c1e@@"

// shownPattern is the regular expression the output shown matches:
// literal, but for "..." (any text in a line) and a line that is only "..."
// (any lines).
func shownPattern(shown []string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString(`\A`)
	for _, line := range shown {
		if line == "..." {
			re.WriteString(`(?:[^\n]*\n)*?`)
			continue
		}
		parts := strings.Split(line, "...")
		for i, p := range parts {
			if i > 0 {
				re.WriteString(`[^\n]*?`)
			}
			re.WriteString(regexp.QuoteMeta(p))
		}
		re.WriteString(`\n`)
	}
	re.WriteString(`\z`)
	return regexp.MustCompile(re.String())
}

// runDoc runs the shell examples of one document in one shell, in dir with
// env, and compares each step's output with the output shown.
func runDoc(t *testing.T, dir string, env []string, blocks []codeBlock) (output string) {
	t.Helper()
	var all []docStep
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, b := range blocks {
		if !b.runs() {
			continue
		}
		for _, s := range steps(t, b) {
			all = append(all, s)
			script.WriteString(strings.Join(s.code, "\n"))
			fmt.Fprintf(&script, "\nprintf '\\n%%s\\n' '%s'\n", stepMark)
		}
	}
	if len(all) == 0 {
		return ""
	}
	file := filepath.Join(t.TempDir(), "doc.sh")
	if err := os.WriteFile(file, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "doc.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", file)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = out, out // one file: what a terminal shows, in order
	// The script's own process group, so that whatever happens no server it
	// started in the background outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runErr := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	raw, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	// A terminal shows CRLF line ends (HTTP headers from curl -i) as LF.
	got := strings.Split(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n"+stepMark+"\n")
	for i, s := range all {
		if i >= len(got)-1 { // no mark after it: the step failed, and the script stopped
			t.Errorf("%s:%d: this example failed (%v); its output:\n%s", blocks[0].file, s.line, runErr, got[len(got)-1])
			break
		}
		printed := trimLineEnds(got[i])
		if !shownPattern(s.shown).MatchString(printed) {
			where := s.at
			if where == 0 {
				where = s.line
			}
			t.Errorf("%s:%d: the example prints\n%s--- but the document shows ---\n%s", blocks[0].file, where,
				indentLines(printed, "    "), indentLines(strings.Join(append(s.shown, ""), "\n"), "    "))
		}
	}
	if runErr != nil && len(got) > len(all) {
		t.Errorf("%s: the examples ran but the shell ended with %v", blocks[0].file, runErr)
	}
	return string(raw)
}

// trimLineEnds drops the spaces that end lines, which a terminal does not
// show, and ends the text with a line end, as a terminal's prompt would.
func trimLineEnds(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Join(lines, "\n") + "\n"
}

func indentLines(s, prefix string) string {
	if s == "" || s == "\n" {
		return prefix + "(nothing)\n"
	}
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// commandLike are the starts of lines that are commands: a block in another
// language holding one would be a shell example that never runs.
var commandLike = regexp.MustCompile(`^\s*(\$ |tokend |\./tokend |curl |go (run|build|test|install) |systemctl |printf |TOKEND_[A-Z_]+=\S* (tokend|go) )`)

// TestDocsCodeBlocks checks every document's code blocks for what the
// runner relies on: each names its language, commands are in shell blocks,
// and the blocks that do not run are shell that parses.
func TestDocsCodeBlocks(t *testing.T) {
	for _, path := range docFiles(t) {
		name := strings.TrimPrefix(path, "../../")
		for _, b := range codeBlocks(t, path, name) {
			if b.lang == "" {
				t.Errorf("%s: a code block without a language: say sh for commands (or sh no-run), text for output, go, nginx...", b.where())
				continue
			}
			if !b.shell() {
				for i, line := range b.body {
					if commandLike.MatchString(line) {
						t.Errorf("%s:%d: a command in a %s block, which does not run: put it in an sh block", name, b.line+1+i, b.lang)
					}
				}
				continue
			}
			if !b.runs() {
				t.Logf("%s: not run (no-run)", b.where())
				check := exec.Command("bash", "-n")
				check.Stdin = strings.NewReader(strings.Join(b.body, "\n"))
				if out, err := check.CombinedOutput(); err != nil {
					t.Errorf("%s: a no-run example is not valid shell: %v\n%s", b.where(), err, out)
				}
			}
		}
	}
}

// TestDocsRunAsShown runs every document's shell examples and compares what
// they print with what the document shows.
func TestDocsRunAsShown(t *testing.T) {
	requireCommands(t, "curl", "jq", "python3")
	for _, path := range docFiles(t) {
		name := strings.TrimPrefix(path, "../../")
		blocks := codeBlocks(t, path, name)
		runnable := slices.ContainsFunc(blocks, codeBlock.runs)
		t.Run(filepath.Base(name), func(t *testing.T) {
			if !runnable {
				t.Skipf("%s has no shell examples that run", name)
			}
			// The documents run at once: each has its own copy, database and
			// server, and no two start services on the same fixed address.
			t.Parallel()
			for _, addr := range fixedAddrs(blocks) {
				requireFreePort(t, addr)
			}
			if name == "README.md" {
				runReadme(t, blocks)
				return
			}
			dir := copyCheckout(t)
			env := docEnv(t, dir)
			runDoc(t, dir, env, blocks)
			logs, _ := os.ReadFile(filepath.Join(dir, "tokend.log"))
			if v := tokenValue.FindString(string(logs)); v != "" {
				t.Errorf("the server log holds a token value")
			}
		})
	}
}

// fixedAddrs are the loopback addresses a document's examples name, where
// they start services (the README's quick start on 127.0.0.1:8080, the
// gateway's examples on others). No two documents may share one.
func fixedAddrs(blocks []codeBlock) []string {
	var addrs []string
	for _, b := range blocks {
		if !b.runs() {
			continue
		}
		for _, m := range regexp.MustCompile(`127\.0\.0\.1:[0-9]+`).FindAllString(strings.Join(b.body, "\n"), -1) {
			if !slices.Contains(addrs, m) {
				addrs = append(addrs, m)
			}
		}
	}
	return addrs
}

// runReadme runs the README's examples as a newcomer would: in a fresh copy
// of the repository, with no TOKEND_ variables set, from nothing. The quick
// start listens on tokend's default address.
func runReadme(t *testing.T, blocks []codeBlock) {
	dir := copyCheckout(t)
	out := runDoc(t, dir, cleanEnv(), blocks)
	if t.Failed() {
		t.Logf("README output:\n%s", out)
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "tokend.log"))
	if len(logs) == 0 {
		t.Error("the quick start's server wrote no tokend.log")
	}
	if v := tokenValue.FindString(string(logs)); v != "" {
		t.Errorf("the server log holds a token value")
	}
}

// docEnv starts the tokend every docs/*.md example talks to, in dir, as the
// README's quick start leaves it: account Acme (id 1) with its admin token,
// "tokend serve" on quickstart.db logging to tokend.log, and the quick
// start's variables. Unlike the quick start it listens on a free port, and it
// has what a tokend in production has and a test machine does not: an SMTP
// relay to deliver through (a local one, which accepts everything but
// bounce@example.org, which it refuses with 550 5.1.1) and DNS
// (a local server, which knows the records of example.com, whose owner has
// published an SPF record for another mail provider and a DMARC record, and
// of nothing else).
func docEnv(t *testing.T, dir string) []string {
	t.Helper()
	db := "quickstart.db"
	create := exec.Command(tokend.Path, "account", "create", "--name", "Acme", "--json")
	create.Dir, create.Env = dir, append(cleanEnv(), "TOKEND_DB="+db)
	out, err := create.Output()
	if err != nil {
		t.Fatalf("account create: %v", err)
	}
	var created struct {
		Account  struct{ ID int64 }
		APIToken struct{ Token string } `json:"api_token"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.APIToken.Token == "" {
		t.Fatalf("account create printed %q: %v", out, err)
	}

	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay.RefuseRecipient("bounce@example.org", 550, "5.1.1", "no such user here")
	dns := testutil.StartDNS(t)
	dns.AddTXT("example.com", "v=spf1 include:_spf.google.com -all")
	dns.AddTXT("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:dmarc@example.com")

	addr, smtpAddr, mxAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	logFile, err := os.Create(filepath.Join(dir, "tokend.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	serve := exec.Command(tokend.Path, "serve", "--addr", addr, "--smtp-relay", "smtp://"+relay.Addr, "--dns-resolver", dns.Addr(),
		"--smtp-addr", smtpAddr, "--mx-addr", mxAddr, "--bounce-domain", "bounces.example.com")
	serve.Dir, serve.Env = dir, append(cleanEnv(), "TOKEND_DB="+db)
	serve.Stderr = logFile
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { serve.Wait(); close(done) }()
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			serve.Process.Kill()
			<-done
		}
	})
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get(url + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		select {
		case <-done:
			logs, _ := os.ReadFile(logFile.Name())
			t.Fatalf("serve exited:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not start listening within 20 s")
		}
	}
	bin, err := filepath.Abs(filepath.Dir(tokend.Path))
	if err != nil {
		t.Fatal(err)
	}
	return append(cleanEnv(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TOKEND_DB="+db,
		"TOKEND_URL="+url,
		"API="+url+"/api",
		"ACCOUNT="+strconv.FormatInt(created.Account.ID, 10),
		"ADMIN="+created.APIToken.Token,
		"SMTP_ADDR="+smtpAddr,
		"MX_ADDR="+mxAddr,
		// The operator's commands ask the same DNS as the server.
		"TOKEND_DNS_RESOLVER="+dns.Addr(),
	)
}

// TestDocsParserFormat holds the runner to the format it documents, so that
// a test that runs the documents cannot pass by running nothing.
func TestDocsParserFormat(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "doc.md")
	md := "# A doc\n\n```sh\necho one\n# → one\necho two; echo; echo three\n# → two\n#\n#   three\ntrue\n```\n\n" +
		"  ```sh no-run\n  systemctl start tokend\n  ```\n\n```text\nnot run\n```\n"
	if err := os.WriteFile(doc, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := codeBlocks(t, doc, "doc.md")
	if len(blocks) != 3 || !blocks[0].runs() || blocks[1].runs() || !blocks[1].shell() || blocks[2].shell() {
		t.Fatalf("blocks = %+v", blocks)
	}
	if got := blocks[1].body; len(got) != 1 || got[0] != "systemctl start tokend" {
		t.Errorf("an indented block's body = %q", got)
	}
	s := steps(t, blocks[0])
	if len(s) != 3 || fmt.Sprintf("%q", s[1].shown) != `["two" "" "three"]` || s[2].shown != nil || s[2].code[0] != "true" {
		t.Fatalf("steps = %+v", s)
	}
	tests := []struct {
		name    string
		shown   []string
		printed string
		match   bool
	}{
		{"the same", []string{`{"id":3}`}, "{\"id\":3}\n", true},
		{"different", []string{`{"id":3}`}, "{\"id\":4}\n", false},
		{"more lines than shown", []string{"a"}, "a\nb\n", false},
		{"nothing shown, something printed", nil, "a\n", false},
		{"nothing shown, nothing printed", nil, "", true},
		{"dots in a line", []string{`{"token":"tk_live_...","id":3}`}, "{\"token\":\"tk_live_abc\",\"id\":3}\n", true},
		{"dots do not cross lines", []string{"a...b"}, "a\nb\n", false},
		{"a line of dots", []string{"first", "...", "last"}, "first\nx\ny\nlast\n", true},
		{"a line of dots, no lines", []string{"first", "...", "last"}, "first\nlast\n", true},
		{"regexp characters are literal", []string{"a.c (d)"}, "abc (d)\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shownPattern(tt.shown).MatchString(tt.printed); got != tt.match {
				t.Errorf("%q against %q: %v, want %v", tt.shown, tt.printed, got, tt.match)
			}
		})
	}
}

// TestConfigurationTableIsServesFlags holds docs/operations.md's
// configuration table to "tokend help serve": the same flags, each with its
// environment variable.
func TestConfigurationTableIsServesFlags(t *testing.T) {
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]string{}
	in := false
	row := regexp.MustCompile("`(--[a-z0-9-]+)`")
	envVar := regexp.MustCompile("`(TOKEND_[A-Z0-9_]+)`")
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "### ") {
			in = strings.Contains(line, "Configuration")
		}
		if !in || !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, "|")
		flags, vars := row.FindAllStringSubmatch(cells[1], -1), envVar.FindAllStringSubmatch(cells[2], -1)
		if len(flags) == 0 || len(flags) != len(vars) {
			t.Errorf("docs/operations.md: a configuration row names %d flags and %d variables: %s", len(flags), len(vars), line)
			continue
		}
		for i, f := range flags {
			doc[f[1]] = vars[i][1]
		}
	}
	help := tokend.Run(t, nil, "help", "serve").Stdout
	served := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(--[a-z0-9-]+)\b.*?\b(TOKEND_[A-Z0-9_]+)\b`).FindAllStringSubmatch(help, -1) {
		served[m[1]] = m[2]
	}
	if len(served) == 0 {
		t.Fatalf("no flags found in tokend help serve:\n%s", help)
	}
	for f, v := range served {
		if d, ok := doc[f]; !ok {
			t.Errorf("serve has %s (%s), which docs/operations.md's configuration table lacks", f, v)
		} else if d != v {
			t.Errorf("docs/operations.md gives %s the variable %s; serve reads %s", f, d, v)
		}
	}
	for f := range doc {
		if _, ok := served[f]; !ok {
			t.Errorf("docs/operations.md's configuration table has %s, which serve does not take", f)
		}
	}
}

// TestAPIDocNamesEveryRoute holds docs/api.md to the API's routes: every
// route it names ("METHOD /path" in code) exists, and every route is named.
// The routes are the OpenAPI document's operations, which
// internal/api's TestEveryRouteIsDocumented holds to the router.
func TestAPIDocNamesEveryRoute(t *testing.T) {
	raw, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "head", "post", "put", "patch", "delete":
				routes[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^`?\\s]*)[^`]*`").FindAllStringSubmatch(string(raw), -1) {
		named[m[1]] = true
	}
	for r := range named {
		if !routes[r] {
			t.Errorf("docs/api.md names %s, which is not a route", r)
		}
	}
	for r := range routes {
		if !named[r] {
			t.Errorf("docs/api.md does not name the route %s", r)
		}
	}
}

// TestDocsLinks checks the documents' relative links: each names a file of
// the repository, and each #fragment a heading of its document (as GitHub
// makes anchors of headings).
func TestDocsLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchors := map[string][]string{} // by document path, relative to the repository
	for _, path := range docFiles(t) {
		name := strings.TrimPrefix(path, "../../")
		anchors[name] = headingAnchors(t, path)
	}
	for _, path := range docFiles(t) {
		name := strings.TrimPrefix(path, "../../")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Code blocks hold no links.
		text := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(raw), "")
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			doc := name
			if file != "" {
				doc = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(name), file)))
				if _, err := os.Stat(filepath.Join("../..", doc)); err != nil {
					t.Errorf("%s links to %s, which does not exist", name, target)
					continue
				}
			}
			if frag == "" {
				continue
			}
			list, ok := anchors[doc]
			if !ok {
				t.Errorf("%s links to %s, a fragment of a file that is not a document", name, target)
			} else if !slices.Contains(list, frag) {
				t.Errorf("%s links to %s: %s has no heading with the anchor %q", name, target, doc, frag)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of the
// markdown file path: lower case, punctuation dropped, spaces as hyphens.
func headingAnchors(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(raw), "")
	var out []string
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, m := range regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`).FindAllStringSubmatch(text, -1) {
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		out = append(out, a)
	}
	return out
}

// debianPackage names the package of a command whose package is not named after it.
var debianPackage = map[string]string{"systemd-analyze": "systemd"}

// requireCommands makes sure the programs the documents use exist,
// installing them with apt-get when running as root (as CI does), and fails
// the test otherwise: it never skips.
func requireCommands(t *testing.T, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if pkg, ok := debianPackage[n]; ok {
				n = pkg
			}
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the documents need %v; install them (apt-get install -y %s)", missing, strings.Join(missing, " "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "+strings.Join(missing, " "))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing %v: %v\n%s", missing, err, out)
	}
}

// copyCheckout copies the repository's files (tracked, and new ones not
// ignored) into a fresh directory, as a clone would have them.
func copyCheckout(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ls := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	ls.Dir = root
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Stat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		} else if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// requireFreePort fails when something already listens on addr, so that a
// collision is reported as such and not as a broken document.
func requireFreePort(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the documents use %s, which is busy on this machine: %v", addr, err)
	}
	ln.Close()
}

var tokenValue = regexp.MustCompile(`tk_(live|test)_[0-9A-Za-z]{36}`)

// cleanEnv is the test's environment without TOKEND_* variables, so that the
// documents run as on a machine that never set any.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") {
			env = append(env, kv)
		}
	}
	return env
}

// The example systemd unit is valid for systemd, runs the real binary's
// serve, and sets only variables tokend reads.
func TestSystemdUnit(t *testing.T) {
	requireCommands(t, "systemd-analyze")
	raw, err := os.ReadFile("../../deploy/tokend.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(raw), "/usr/local/bin/tokend", tokend.Path)
	path := filepath.Join(t.TempDir(), "tokend.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	help := tokend.Run(t, nil, "help", "serve").Stdout
	vars := regexp.MustCompile(`(?m)^Environment=(TOKEND_[A-Z_]+)=`).FindAllStringSubmatch(string(raw), -1)
	if len(vars) == 0 {
		t.Fatal("the unit sets no TOKEND_ variable")
	}
	for _, v := range vars {
		if !strings.Contains(help, " "+v[1]+" ") {
			t.Errorf("the unit sets %s, which serve does not read", v[1])
		}
	}
}
