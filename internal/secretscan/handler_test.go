package secretscan_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tokend/tokend/internal/secretscan"
)

// reporter is a Reporter that records what it is told. Tokens starting
// with "tokend_" are its own; the token "fail" fails, and "bad-label" gets
// a label GitHub does not know.
type reporter struct {
	mu      sync.Mutex
	matches []secretscan.Match
}

func (r *reporter) Report(ctx context.Context, m secretscan.Match) (secretscan.Label, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.matches = append(r.matches, m)
	switch {
	case m.Token == "fail":
		return "", errors.New("the store is down")
	case m.Token == "bad-label":
		return "maybe", nil
	case strings.HasPrefix(m.Token, "tokend_"):
		return secretscan.TruePositive, nil
	}
	return secretscan.FalsePositive, nil
}

func (r *reporter) tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []string
	for _, m := range r.matches {
		ts = append(ts, m.Token)
	}
	return ts
}

// The tokens of the reports hold "SECRET", which must not be logged.
const report = `[
 {"token":"tokend_SECRET1","type":"tokend_api_token","url":"https://github.com/o/r/blob/abc/config.yml","source":"content"},
 {"token":"other_SECRET2","type":"tokend_api_token","url":"https://github.com/o/r/commit/abc","source":"commit"},
 {"token":"tokend_SECRET3<&>","type":"tokend_legacy_token","url":"https://gist.github.com/u/1","source":"gist"}
]`

func TestHandler(t *testing.T) {
	a, b, old := newKey(t), newKey(t), newKey(t)
	keys, err := secretscan.LoadKeys(tempFile(t, keyFile(t, ecEntry(t, "a", a, true), ecEntry(t, "old", old, false))), secretscan.KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const maxBody = 4096
	big := []byte("[" + strings.Repeat(" ", maxBody-2) + "]") // just fits
	tooBig := append([]byte(" "), big...)

	type request struct {
		method  string
		body    []byte
		key     *ecdsa.PrivateKey // signs body; nil: no signature header
		keyID   string            // "": no key id header
		tamper  bool              // change a byte of the body after signing
		chunked bool              // no Content-Length
	}
	for _, c := range []struct {
		name     string
		req      request
		status   int
		feedback []secretscan.Feedback // the answer of a 200
		errorHas string                // in the error of another status
		reported []string              // tokens, in order
		header   http.Header           // in the answer
	}{
		{
			name: "valid", req: request{body: []byte(report), key: a, keyID: "a"},
			status: 200,
			feedback: []secretscan.Feedback{
				{TokenRaw: "tokend_SECRET1", TokenType: "tokend_api_token", Label: secretscan.TruePositive},
				{TokenRaw: "other_SECRET2", TokenType: "tokend_api_token", Label: secretscan.FalsePositive},
				{TokenRaw: "tokend_SECRET3<&>", TokenType: "tokend_legacy_token", Label: secretscan.TruePositive},
			},
			reported: []string{"tokend_SECRET1", "other_SECRET2", "tokend_SECRET3<&>"},
			header:   http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}},
		},
		{
			name: "key that is not current", req: request{body: []byte(`[{"token":"tokend_SECRET1","type":"t"}]`), key: old, keyID: "old"},
			status:   200,
			feedback: []secretscan.Feedback{{TokenRaw: "tokend_SECRET1", TokenType: "t", Label: secretscan.TruePositive}},
			reported: []string{"tokend_SECRET1"},
		},
		{
			name: "chunked body", req: request{body: []byte(`[{"token":"x_SECRET"}]`), key: a, keyID: "a", chunked: true},
			status:   200,
			feedback: []secretscan.Feedback{{TokenRaw: "x_SECRET", Label: secretscan.FalsePositive}},
			reported: []string{"x_SECRET"},
		},
		{
			name: "empty array", req: request{body: []byte(`[]`), key: a, keyID: "a"},
			status: 200, feedback: []secretscan.Feedback{},
		},
		{
			name: "body at the bound", req: request{body: big, key: a, keyID: "a"},
			status: 200, feedback: []secretscan.Feedback{},
		},
		{
			name: "unknown key id", req: request{body: []byte(report), key: a, keyID: "c"},
			status: 401, errorHas: "unknown key identifier",
		},
		{
			name: "signed by another key", req: request{body: []byte(report), key: b, keyID: "a"},
			status: 401, errorHas: "signature does not verify",
		},
		{
			name: "tampered body", req: request{body: []byte(report), key: a, keyID: "a", tamper: true},
			status: 401, errorHas: "signature does not verify",
		},
		{
			name: "no headers", req: request{body: []byte(report)},
			status: 401, errorHas: "missing",
		},
		{
			name: "no signature header", req: request{body: []byte(report), keyID: "a"},
			status: 401, errorHas: "missing",
		},
		{
			name: "no key id header", req: request{body: []byte(report), key: a},
			status: 401, errorHas: "missing",
		},
		{
			name: "GET", req: request{method: "GET", key: a, keyID: "a"},
			status: 405, errorHas: "use POST", header: http.Header{"Allow": {"POST"}},
		},
		{
			name: "PUT", req: request{method: "PUT", body: []byte(report), key: a, keyID: "a"},
			status: 405, header: http.Header{"Allow": {"POST"}},
		},
		{
			name: "body over the bound", req: request{body: tooBig, key: a, keyID: "a"},
			status: 413, errorHas: "larger than 4096 bytes",
		},
		{
			name: "chunked body over the bound", req: request{body: tooBig, key: a, keyID: "a", chunked: true},
			status: 413, errorHas: "larger than 4096 bytes",
		},
		{
			name: "malformed JSON, valid signature", req: request{body: []byte(`[{"token":"tokend_SECRET1"`), key: a, keyID: "a"},
			status: 422, errorHas: "not valid JSON",
		},
		{
			name: "not a report, valid signature", req: request{body: []byte(`[{"token":"tokend_SECRET1","token":"tokend_SECRET1"}]`), key: a, keyID: "a"},
			status: 422, errorHas: `match 0: "token" is given twice`,
		},
		{
			name: "reporter error", req: request{body: []byte(`[{"token":"tokend_SECRET1"},{"token":"fail"},{"token":"tokend_SECRET3"}]`), key: a, keyID: "a"},
			status: 503, errorHas: "retry later", reported: []string{"tokend_SECRET1", "fail"},
			header: http.Header{"Retry-After": {"60"}},
		},
		{
			name: "invalid label", req: request{body: []byte(`[{"token":"bad-label"}]`), key: a, keyID: "a"},
			status: 500, errorHas: "internal error", reported: []string{"bad-label"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			rep := &reporter{}
			h := secretscan.Handler(keys, rep, secretscan.HandlerOptions{
				MaxBody: maxBody,
				Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			method := c.req.method
			if method == "" {
				method = http.MethodPost
			}
			body := append([]byte(nil), c.req.body...)
			req := httptest.NewRequest(method, "/github/secret-scanning", bytes.NewReader(body))
			if c.req.chunked {
				req.ContentLength = -1
			}
			req.Header.Set("Content-Type", "application/json")
			if c.req.keyID != "" {
				req.Header.Set(secretscan.HeaderKeyID, c.req.keyID)
			}
			if c.req.key != nil {
				req.Header.Set(secretscan.HeaderSignature, sign(t, c.req.key, body))
			}
			if c.req.tamper {
				body[len(body)/2] ^= 0x20
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)

			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			for name, want := range c.header {
				if got := w.Header().Values(name); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if c.status == 200 {
				var got []secretscan.Feedback
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got == nil {
					t.Fatalf("answer %s: %v", w.Body, err)
				}
				if !reflect.DeepEqual(got, c.feedback) {
					t.Fatalf("feedback %+v, want %+v", got, c.feedback)
				}
			} else {
				var e map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || len(e) != 1 || !strings.Contains(e["error"], c.errorHas) {
					t.Fatalf("answer %s, want an error with %q (%v)", w.Body, c.errorHas, err)
				}
				if strings.Contains(w.Body.String(), "SECRET") {
					t.Errorf("a token in the error: %s", w.Body)
				}
			}
			if got := rep.tokens(); !reflect.DeepEqual(got, c.reported) {
				t.Errorf("reported %q, want %q", got, c.reported)
			}
			if testing.Verbose() {
				t.Log(logs.String())
			}
			if logs.Len() == 0 {
				t.Error("nothing logged")
			}
			if strings.Contains(logs.String(), "SECRET") {
				t.Errorf("a token in the log:\n%s", logs.String())
			}
		})
	}
}

// TestHandlerServer goes through a real server: the exact bytes of the
// answers, and the default bound on a body that has no Content-Length.
func TestHandlerServer(t *testing.T) {
	a := newKey(t)
	keys, err := secretscan.LoadKeys(tempFile(t, keyFile(t, ecEntry(t, "a", a, true))), secretscan.KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := &reporter{}
	srv := httptest.NewServer(secretscan.Handler(keys, rep, secretscan.HandlerOptions{}))
	defer srv.Close()

	post := func(body io.Reader, sig string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(secretscan.HeaderKeyID, "a")
		req.Header.Set(secretscan.HeaderSignature, sig)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}

	for _, c := range []struct{ name, body, want string }{
		{"empty array", `[]`, "[]\n"},
		{"tokens as they came", `[{"token":"tokend_<&>","type":"t","url":"u","source":"s"}]`,
			`[{"token_raw":"tokend_<&>","token_type":"t","label":"true_positive"}]` + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, got := post(strings.NewReader(c.body), sign(t, a, []byte(c.body)))
			if status != 200 || got != c.want {
				t.Fatalf("%d %q, want 200 %q", status, got, c.want)
			}
		})
	}

	t.Run("over the default bound, no Content-Length", func(t *testing.T) {
		r := &spaces{left: secretscan.DefaultMaxBody + 1024} // a reader of unknown length: sent chunked
		status, got := post(r, sign(t, a, []byte(`[]`)))
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(got, "larger than 1048576 bytes") {
			t.Fatalf("%d %s", status, got)
		}
	})
	if got := rep.tokens(); len(got) != 1 {
		t.Fatalf("reported %q", got)
	}
}

// spaces reads left spaces.
type spaces struct{ left int }

func (s *spaces) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), s.left)]
	for i := range p {
		p[i] = ' '
	}
	s.left -= len(p)
	return len(p), nil
}

func TestHandlerNeedsKeysAndReporter(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	secretscan.Handler(nil, &reporter{}, secretscan.HandlerOptions{})
}
