package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/e2e/internal/openapitest"
	"github.com/tokend/tokend/internal/testutil"
)

// transcribed are the packages of the root module whose tests record the
// API's answers (testutil.Transcript): the HTTP API's, and the binary's.
var transcribed = []string{"internal/api", "cmd/tokend"}

// TestAPIResponsesMatchTheContract holds every API answer that the root
// module's tests saw against the OpenAPI document, as those tests did when
// the root module depended on an OpenAPI validator: each response of the
// HTTP API's suite (on every store scripts/test runs it on) and of the
// binary's, including an undocumented status; and each value that must match
// a schema of the document's components.
//
// The answers are read from the transcript directory $TOKEND_API_TRANSCRIPT,
// which scripts/test fills while it runs the root module's tests. Without
// it, this test runs those packages' tests itself to record one.
func TestAPIResponsesMatchTheContract(t *testing.T) {
	dir := os.Getenv(testutil.TranscriptEnv)
	if dir == "" {
		dir = record(t)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}

	// A few workers check the lines; a failure names its file and line.
	type line struct {
		where string
		x     testutil.Exchange
	}
	lines := make(chan line, 256)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for l := range lines {
				if err := check(l.x); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s (%s %s): %v", l.where, l.x.Source, l.x.Test, err))
					mu.Unlock()
				}
			}
		})
	}
	count := map[string]int{}
	readErr := func() error {
		defer close(lines)
		for _, f := range files {
			if err := readTranscript(f, func(n int, x testutil.Exchange) {
				count[x.Source]++
				lines <- line{fmt.Sprintf("%s:%d", filepath.Base(f), n), x}
			}); err != nil {
				return err
			}
		}
		return nil
	}()
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}

	for _, p := range transcribed {
		if count[p] == 0 {
			t.Errorf("the transcript in %s has no answer from %s's tests: were they run with %s=%s?", dir, p, testutil.TranscriptEnv, dir)
		}
	}
	slices.Sort(failures)
	const shown = 50
	for i, f := range failures {
		if i == shown {
			t.Errorf("... and %d more", len(failures)-shown)
			break
		}
		t.Error(f)
	}
	t.Logf("checked %v answers from %d files in %s", count, len(files), dir)
}

// record runs the tests of the transcribed packages in the root module, as
// scripts/test does, to record a transcript, and returns its directory. They
// take minutes: within this test's -timeout, or it fails saying so.
func record(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	args := []string{"test", "-count=1"}
	if deadline, ok := t.Deadline(); ok {
		// Stop in time to say why, and the tests a little earlier, so that
		// their timeout names the tests that were running.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
		args = append(args, "-timeout", max(time.Until(deadline)-time.Minute, 30*time.Second).Round(time.Second).String())
	}
	for _, p := range transcribed {
		args = append(args, "./"+p)
	}
	t.Logf("%s is not set: recording a transcript with go %s in the root module (minutes)", testutil.TranscriptEnv, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), testutil.TranscriptEnv+"="+dir)
	// go test and the test binaries it starts, as one process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 16<<10 {
			out = append([]byte("...\n"), out[len(out)-16<<10:]...)
		}
		t.Fatalf("go %s: %v (%v)\n%s\n(recording a transcript runs those tests, which take minutes: give this test a longer -timeout, "+
			"or set %s to a directory they recorded in, as scripts/test does)", strings.Join(args, " "), err, ctx.Err(), out, testutil.TranscriptEnv)
	}
	return dir
}

// check returns what is wrong with one line of a transcript.
func check(x testutil.Exchange) error {
	if x.Schema != "" {
		var v any
		if err := json.Unmarshal(x.Value, &v); err != nil {
			return err
		}
		return openapitest.ValidateSchema(x.Schema, v)
	}
	return openapitest.Validate(x.Method, x.Path, x.Request, x.Status, x.Header, x.Body)
}

// readTranscript calls each with every line of the transcript file f.
func readTranscript(f string, each func(n int, x testutil.Exchange)) error {
	fh, err := os.Open(f)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		var x testutil.Exchange
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return fmt.Errorf("%s:%d: %w", f, n, err)
		}
		each(n, x)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", f, err)
	}
	return nil
}

// TestTranscriptCheck shows that the contract test refuses what the OpenAPI
// document does not allow, line by line, and passes what it does.
func TestTranscriptCheck(t *testing.T) {
	jsonHeader := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	answer := func(method, path string, status int, body string) testutil.Exchange {
		return testutil.Exchange{Method: method, Path: path, Status: status, Header: jsonHeader, Body: []byte(body)}
	}
	tests := []struct {
		name string
		x    testutil.Exchange
		want string // in the error; "" for none
	}{
		{"documented answer", answer("GET", "/healthz", 200, `{"status":"ok"}`), ""},
		{"documented error", answer("GET", "/api/whoami", 401, `{"code":"invalid_api_key","error":"Incorrect API token","status":401}`), ""},
		{"unknown route's 404", answer("GET", "/api/nowhere", 404, `{"error":"Not Found"}`), ""},
		{"undocumented status", answer("GET", "/healthz", 418, `{"status":"ok"}`), "418"},
		{"body of the wrong shape", answer("GET", "/api/whoami", 200, `{"id":"three"}`), "does not match the OpenAPI document"},
		{"unknown route answering 200", answer("GET", "/api/nowhere", 200, `{}`), "no such operation"},
		{"unknown route's 404 without an error", answer("GET", "/api/nowhere", 404, `not found`), `want {"error": ...}`},
		{"schema value", testutil.Exchange{Schema: "ApiTokenWithToken", Value: json.RawMessage(`{"id":1,"name":"n","token":"tk_live_x","environment":"live"}`)}, ""},
		{"schema value of the wrong shape", testutil.Exchange{Schema: "ApiTokenWithToken", Value: json.RawMessage(`{"id":"one"}`)}, "does not match the schema ApiTokenWithToken"},
		{"unknown schema", testutil.Exchange{Schema: "Nothing", Value: json.RawMessage(`{}`)}, "no schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.x)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("check = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("check = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
