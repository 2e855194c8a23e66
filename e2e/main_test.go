// Package e2e_test holds tokend's tests that need more than Go and the root
// module's dependencies: the dashboard driven in Chromium (chromedp), the
// Mailtrap Node SDK run against tokend (node and npm), and every API answer
// the root module's tests saw held against the OpenAPI document
// (kin-openapi). It is a module of its own, so that the root module does not
// depend on them; scripts/test runs it after the root module's tests.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/e2e/internal/openapitest"
	"github.com/tokend/tokend/internal/testutil"
)

// root is the root module's directory, tokend's checkout.
const root = ".."

var binary string

// TestMain builds the real tokend binary once, in the root module as a user
// builds it; the browser and SDK tests run it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokend-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tokend")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", binary, "./cmd/tokend")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tokend:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var tokenPattern = regexp.MustCompile(`tk_(live|test)_[0-9A-Za-z]{36}`)

type result struct {
	stdout, stderr string
	code           int
}

// tokend runs the binary with args and extra environment variables.
func tokend(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// server is a running "tokend serve" process.
type server struct {
	cmd    *exec.Cmd
	url    string
	stdout *testutil.Buffer
	stderr *testutil.Buffer
	done   chan error
}

// startServe runs "tokend serve" on a free loopback port and waits for it to
// listen (it logs "listening" with its URL).
func startServe(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	s := &server{cmd: cmd, stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout = s.stdout
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(s.stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				found <- line.URL
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case s.url = <-found:
	case err := <-s.done:
		t.Fatalf("serve exited before listening: %v\n%s", err, s.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start listening\n%s", s.stderr.String())
	}
	return s
}

// waitToken waits for the token value the first start prints. stdout and
// stderr reach the test through separate pipes, so "listening" on stderr may
// arrive before the token on stdout.
func (s *server) waitToken(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if v := tokenPattern.FindString(s.stdout.String()); v != "" && strings.Contains(s.stdout.String(), "not show it again") {
			return v
		}
	}
	t.Fatalf("no token printed; stdout %q", s.stdout.String())
	return ""
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM\n%s", err, s.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s of SIGTERM")
	}
}

// call sends a request to the API with a bearer token, and checks the answer
// against the OpenAPI document.
func call(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	openapitest.Check(t, method, req.URL.RequestURI(), []byte(body), res.StatusCode, res.Header, b)
	return res.StatusCode, string(b)
}

// mailAccount creates an enterprise account in db, with a rate limit no test
// reaches, and returns its id and admin token.
func mailAccount(t *testing.T, db string) (int64, string) {
	t.Helper()
	r := tokend(t, nil, "account", "create", "--name", "Mail", "--db", db, "--json")
	var out struct {
		Account struct {
			ID int64 `json:"id"`
		} `json:"account"`
		APIToken struct {
			Token string `json:"token"`
		} `json:"api_token"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
		t.Fatalf("account create: %+v", r)
	}
	if r := tokend(t, nil, "account", "set-plan", fmt.Sprint(out.Account.ID), "--plan", "enterprise", "--rate-limit", "1000000", "--db", db); r.code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	return out.Account.ID, out.APIToken.Token
}
