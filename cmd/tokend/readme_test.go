package main_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeSection returns the shell code blocks of the README section whose
// heading is title, in order, joined into one script.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	in, inCode, found := false, false, false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !inCode && strings.HasPrefix(line, "## "):
			in = strings.TrimPrefix(line, "## ") == title
			found = found || in
		case in && !inCode && line == "```sh":
			inCode = true
		case inCode && line == "```":
			inCode = false
		case in && inCode:
			script.WriteString(line + "\n")
		}
	}
	if !found || script.Len() == 0 {
		t.Fatalf("README.md has no section %q with sh code blocks", title)
	}
	return script.String()
}

// debianPackage names the package of a command whose package is not named after it.
var debianPackage = map[string]string{"systemd-analyze": "systemd"}

// requireCommands makes sure the programs a README section uses exist,
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
		t.Fatalf("the README needs %v; install them (apt-get install -y %s)", missing, strings.Join(missing, " "))
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
// collision is reported as such and not as a broken README.
func requireFreePort(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the README uses %s, which is busy on this machine: %v", addr, err)
	}
	ln.Close()
}

var tokenValue = regexp.MustCompile(`tk_(live|test)_[0-9A-Za-z]{36}`)

// TestReadmeRunsVerbatim runs the README's quick start and then its
// walkthrough, exactly as written, in one shell on a fresh copy of the
// repository, as a new user in one terminal would.
func TestReadmeRunsVerbatim(t *testing.T) {
	requireCommands(t, "curl", "jq")
	requireFreePort(t, "127.0.0.1:8080")
	requireFreePort(t, "127.0.0.1:8181")
	dir := copyCheckout(t)
	// Twice: a user who runs it again must get the same, not a collision.
	once := readmeSection(t, "Quick start") + readmeSection(t, "Walkthrough")
	script := "set -euo pipefail\n" + once + "echo '--- again ---'\n" + once
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	// The script's own process group, so that whatever happens no server it
	// started in the background outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("the README failed: %v\n--- script ---\n%s\n--- output ---\n%s", err, script, out.String())
	}
	t.Logf("README output:\n%s", out.String())
	first, second, _ := strings.Cut(out.String(), "--- again ---")
	for _, want := range readmeExpectations {
		if !strings.Contains(first, want) {
			t.Errorf("the README's output lacks %q", want)
		}
		if want != readmeExpectations[0] && !strings.Contains(second, want) {
			t.Errorf("run again, the README's output lacks %q", want)
		}
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "walkthrough.log"))
	if v := tokenValue.FindString(string(logs)); v != "" {
		t.Errorf("the server log holds a token value")
	}
}

// readmeExpectations are lines the README's own commands print when every
// step worked: the README shows them as "# →" comments.
var readmeExpectations = []string{
	`{"name":"Admin token","environment":"live","resources":[{"resource_type":"account","resource_id":`,
	"\nCI\n",
	`{"id":3,"name":"CI token 3"}`,
	"old token during the grace period: 200",
	"delete: 204",
	`{"code":"invalid_api_key","error":"Incorrect API token","status":401}`,
	`{"domain_name":"example.com","token_name":"example.com token 4"}`,
	"token.created api_token 4 by Admin token\nresource.created domain 1 by Admin token\ntoken.deleted api_token 3 by Admin token\ntoken.reset api_token 2 by Admin token\n",
	`{"success":true,"ids":1}`,
	"\nWelcome to ann@example.org\n",
	"\nRecovery\n",
	`Revoked token 6 "Recovery" of account 1.`,
	"Backed up walkthrough.db to walkthrough-backup.db, and its secrets key walkthrough.db.key to walkthrough-backup.db.key.",
}

// cleanEnv is the test's environment without TOKEND_* variables, so that the
// README runs as on a machine that never set any.
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
	unit := strings.ReplaceAll(string(raw), "/usr/local/bin/tokend", binary)
	path := filepath.Join(t.TempDir(), "tokend.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	help := tokend(t, nil, "help", "serve").stdout
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
