package testutil_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/testutil"
)

// readLines returns the exchanges of every transcript file in dir, by file name.
func readLines(t *testing.T, dir string) map[string][]testutil.Exchange {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]testutil.Exchange{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var x testutil.Exchange
			if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
				t.Fatalf("%s: %v in %s", f, err, sc.Bytes())
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], x)
		}
		fh.Close()
	}
	return out
}

func TestTranscriptRecordsWhatTestsSee(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "transcript") // made on the first record
	t.Setenv(testutil.TranscriptEnv, dir)
	tr := testutil.NewTranscript("internal/api")
	big := []byte(strings.Repeat("x", 5000))
	body := []byte("\x00\xffnot UTF-8")
	tr.Response(t, "POST", "/api/send?x=1", big, 413, http.Header{"Content-Type": {"application/json"}}, body)
	tr.Schema(t, "ApiTokenWithToken", map[string]any{"id": 1, "token": "tk_live_x"})

	files := readLines(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v, want one for this process", files)
	}
	for name, lines := range files {
		if !strings.HasPrefix(name, "internal-api-") || len(lines) != 2 {
			t.Fatalf("%s holds %d lines, want internal-api-<pid>.jsonl with 2", name, len(lines))
		}
		r, s := lines[0], lines[1]
		if r.Source != "internal/api" || r.Test != t.Name() || r.Method != "POST" || r.Path != "/api/send?x=1" || r.Status != 413 ||
			r.Header.Get("Content-Type") != "application/json" || string(r.Body) != string(body) {
			t.Errorf("response line = %+v", r)
		}
		if len(r.Request) != 4096 || r.ReqSize != len(big) {
			t.Errorf("request kept %d bytes of %d (size %d), want the first 4096 and the size", len(r.Request), len(big), r.ReqSize)
		}
		if s.Schema != "ApiTokenWithToken" || string(s.Value) != `{"id":1,"token":"tk_live_x"}` || s.Test != t.Name() {
			t.Errorf("schema line = %+v", s)
		}
	}
}

func TestTranscriptUnsetRecordsNothing(t *testing.T) {
	t.Setenv(testutil.TranscriptEnv, "")
	dir := t.TempDir()
	t.Chdir(dir)
	testutil.NewTranscript("cmd/tokend").Response(t, "GET", "/healthz", nil, 200, nil, []byte(`{"status":"ok"}`))
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("without %s, the transcript wrote %v", testutil.TranscriptEnv, entries)
	}
}
