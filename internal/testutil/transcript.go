package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TranscriptEnv names a directory where the tests of the HTTP API
// (internal/api) and of the binary (cmd/tokend) record every API answer they
// see, for the e2e module to hold against the OpenAPI document: the root
// module does not depend on an OpenAPI validator. scripts/test sets it;
// unset, nothing is recorded (and e2e records a transcript itself).
const TranscriptEnv = "TOKEND_API_TRANSCRIPT"

// Exchange is one line of a transcript: an API answer and the request it
// answered or, with Schema set, a value that must match that schema of the
// OpenAPI document's components.
type Exchange struct {
	Source  string          `json:"source"` // the package whose tests saw it, e.g. "internal/api"
	Test    string          `json:"test"`   // the test that saw it
	Method  string          `json:"method,omitempty"`
	Path    string          `json:"path,omitempty"`         // with its query
	Request []byte          `json:"request,omitempty"`      // the first 4 KiB: the check needs only the method and path
	ReqSize int             `json:"request_size,omitempty"` // the request body's size, when Request is cut short
	Status  int             `json:"status,omitempty"`
	Header  http.Header     `json:"header,omitempty"`
	Body    []byte          `json:"body,omitempty"`
	Schema  string          `json:"schema,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// Transcript appends the exchanges one test process sees, as JSON lines, to
// a file of its own (<source>-<pid>.jsonl) in the TranscriptEnv directory,
// so that packages tested in parallel never share a file.
type Transcript struct {
	source string
	once   sync.Once
	mu     sync.Mutex
	f      *os.File
	err    error
}

// NewTranscript returns the transcript of source, the package whose tests
// record into it (a path in the module, e.g. "internal/api").
func NewTranscript(source string) *Transcript { return &Transcript{source: source} }

// maxRequest is how much of a request body a transcript keeps, to say what
// was asked (the oversize bodies of some tests are megabytes).
const maxRequest = 4 << 10

// Response records an API answer: the request's method, path (with its
// query) and body, and the status, header and body answered.
func (tr *Transcript) Response(t testing.TB, method, path string, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	x := Exchange{Method: method, Path: path, Request: reqBody, Status: status, Header: header, Body: body}
	if len(reqBody) > maxRequest {
		x.Request, x.ReqSize = reqBody[:maxRequest], len(reqBody)
	}
	tr.write(t, x)
}

// Schema records v, marshalled to JSON, as a value that the schema name of
// the document's components must accept.
func (tr *Transcript) Schema(t testing.TB, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Errorf("API transcript: %v", err)
		return
	}
	tr.write(t, Exchange{Schema: name, Value: b})
}

// write appends x as one line, failing t when it cannot: a transcript asked
// for is never silently short.
func (tr *Transcript) write(t testing.TB, x Exchange) {
	t.Helper()
	dir := os.Getenv(TranscriptEnv)
	if dir == "" {
		return
	}
	tr.once.Do(func() {
		if tr.err = os.MkdirAll(dir, 0o755); tr.err != nil {
			return
		}
		name := fmt.Sprintf("%s-%d.jsonl", strings.ReplaceAll(tr.source, "/", "-"), os.Getpid())
		tr.f, tr.err = os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	})
	if tr.err != nil {
		t.Errorf("API transcript (%s=%s): %v", TranscriptEnv, dir, tr.err)
		return
	}
	x.Source, x.Test = tr.source, t.Name()
	line, err := json.Marshal(x)
	if err != nil {
		t.Errorf("API transcript: %v", err)
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if _, err := tr.f.Write(append(line, '\n')); err != nil {
		t.Errorf("API transcript: %v", err)
	}
}
