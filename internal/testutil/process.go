package testutil

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
)

// What the tests that run the tokend binary share (cmd/tokend's and the e2e
// module's): building it, running its commands, starting a server and
// stopping it, and calling the API it serves. Every wait is bounded, and
// every server listens on loopback.

// TokenPattern matches an API token's value, as tokend prints it.
var TokenPattern = regexp.MustCompile(`tk_(live|test)_[0-9A-Za-z]{36}`)

// Binary is a tokend binary built for the tests.
type Binary struct {
	Path string
}

// RunWithTokend is for a TestMain: it builds tokend's command from the
// module at root (the directory of tokend's go.mod) as a user builds it,
// into a temporary directory, sets *bin to it, runs the tests, removes the
// binary and returns the code to exit with. If the build fails it runs no
// test and returns 1.
func RunWithTokend(m *testing.M, root string, bin *Binary) int {
	dir, err := os.MkdirTemp("", "tokend-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin.Path = filepath.Join(dir, "tokend")
	// -buildvcs=true records the git revision, as a plain "go build" in a
	// checkout does, even where GOFLAGS turns that off.
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin.Path, "./cmd/tokend")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tokend:", err)
		return 1
	}
	return m.Run()
}

// Result is what a command that has exited wrote, and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// runLimit is how long a command that is not a server may run.
const runLimit = 30 * time.Second

// Run runs the binary with args and env added to the test's environment,
// and waits for it to exit (it is killed after 30 s). A non-zero exit is a
// Result; t fails only when the binary cannot be run.
func (b Binary) Run(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	return b.run(t, nil, env, args)
}

// RunInput is Run with stdin as the command's standard input and no
// environment added.
func (b Binary) RunInput(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return b.run(t, strings.NewReader(stdin), nil, args)
}

func (b Binary) run(t testing.TB, stdin io.Reader, env, args []string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
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
	return Result{out.String(), errb.String(), code}
}

// EnterpriseAccount creates an account named Mail in the database db, on the
// enterprise plan with a rate limit no test reaches, and returns its id and
// admin token.
func (b Binary) EnterpriseAccount(t testing.TB, db string) (int64, string) {
	t.Helper()
	r := b.Run(t, nil, "account", "create", "--name", "Mail", "--db", db, "--json")
	var out struct {
		Account struct {
			ID int64 `json:"id"`
		} `json:"account"`
		APIToken struct {
			Token string `json:"token"`
		} `json:"api_token"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
		t.Fatalf("account create: %+v", r)
	}
	if r := b.Run(t, nil, "account", "set-plan", fmt.Sprint(out.Account.ID), "--plan", "enterprise", "--rate-limit", "1000000", "--db", db); r.Code != 0 {
		t.Fatalf("set-plan: %+v", r)
	}
	return out.Account.ID, out.APIToken.Token
}

// Process is a running tokend command that serves HTTP: serve, or proxy.
// It is killed, if still running, when the test ends.
type Process struct {
	URL    string  // the URL it logged with "listening"
	Stdout *Buffer // what it has written so far
	Stderr *Buffer // its log so far
	name   string  // the command, for messages
	cmd    *exec.Cmd
	exited chan struct{} // closed once it has exited and err is set
	err    error         // cmd.Wait's
}

// processLimit bounds each wait for a server: to listen, and to exit.
const processLimit = 20 * time.Second

// Serve runs "tokend serve" on a free loopback port, with args and env
// added to the test's environment, and waits for it to listen.
func (b Binary) Serve(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	return b.Start(t, env, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
}

// Start runs the binary with args, a command that logs "listening" with its
// URL (serve, proxy; the caller gives a loopback address), and env added to
// the test's environment, and waits up to 20 s for it to listen. t fails if
// it exits or does not listen by then.
func (b Binary) Start(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(b.Path, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{Stdout: &Buffer{}, Stderr: &Buffer{}, name: args[0], cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout = p.Stdout
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(p.Stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
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
	case p.URL = <-found:
	case <-p.exited:
		t.Fatalf("%s exited before listening: %v\n%s", p.name, p.err, p.Stderr.String())
	case <-time.After(processLimit):
		t.Fatalf("%s did not start listening\n%s", p.name, p.Stderr.String())
	}
	return p
}

// WaitToken waits up to 10 s for the token value the first start of serve
// prints, and returns it. stdout and stderr reach the test through separate
// pipes, so "listening" on stderr may arrive before the token on stdout.
func (p *Process) WaitToken(t testing.TB) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if v := TokenPattern.FindString(p.Stdout.String()); v != "" && strings.Contains(p.Stdout.String(), "not show it again") {
			return v
		}
	}
	t.Fatalf("no token printed; stdout %q", p.Stdout.String())
	return ""
}

// Stop sends SIGTERM and waits up to 20 s for the process to exit; t fails
// unless it exits, and cleanly.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGTERM, "SIGTERM")
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM\n%s", p.name, p.err, p.Stderr.String())
	}
}

// Kill sends SIGKILL, a crash, and waits up to 20 s for the process to exit.
// t fails if it cannot be signalled (it had exited) or does not exit.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGKILL, "SIGKILL")
}

// signal sends sig, named name, and waits up to 20 s for the process to
// exit; t fails if it cannot be signalled or does not exit.
func (p *Process) signal(t testing.TB, sig syscall.Signal, name string) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(processLimit):
		t.Fatalf("%s did not exit within 20 s of %s", p.name, name)
	}
}

// ResponseCheck is given each answer Call receives: the request's method,
// URI (path and query) and body, and the status, header and body answered.
// Transcript.Response records it; e2e's OpenAPI check holds it against the
// document.
type ResponseCheck func(t testing.TB, method, uri string, reqBody []byte, status int, header http.Header, body []byte)

// Call sends a request with body to url and, unless token is "", a bearer
// token, and waits up to 10 s for the answer. check, unless nil, is given
// the answer. It returns the status and body; t fails if no answer comes.
func Call(t testing.TB, method, url, token, body string, check ResponseCheck) (int, string) {
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
	if check != nil {
		check(t, method, req.URL.RequestURI(), []byte(body), res.StatusCode, res.Header, b)
	}
	return res.StatusCode, string(b)
}
