package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/gateway"
)

// records is a slog.Handler that passes each record's message and
// attributes (rendered as text) to a channel.
type records chan map[string]string

func (records) Enabled(context.Context, slog.Level) bool { return true }
func (c records) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	c <- m
	return nil
}
func (c records) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c records) WithGroup(string) slog.Handler      { return c }

// next is the next "request" line of the access log.
func (c records) next(t *testing.T) map[string]string {
	t.Helper()
	for {
		select {
		case m := <-c:
			if m["msg"] == "request" {
				return m
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no request logged")
			return nil
		}
	}
}

// Each access-log line names the request (the id the client and the
// upstream see too) and the token that made it, never its value.
func TestGatewayLogsTheRequestIDAndTokenID(t *testing.T) {
	logs := make(records, 100)
	f := newFixtureSetup(t, nil, "GET /public none\n/ token\n", setup{options: func(o *gateway.Options) {
		o.Logger = slog.New(logs)
	}})
	tok := f.tokend.Token(t, "user")
	for _, c := range []struct {
		name, path string
		header     http.Header
		status     int
		tokenID    string
		id         string // the request id wanted; "" for a new one
	}{
		{"authenticated", "/private", http.Header{"Api-Token": {tok.Value}}, 200, fmt.Sprint(tok.ID), ""},
		{"the client's request id", "/private", http.Header{"Api-Token": {tok.Value}, "X-Request-Id": {"req-42"}}, 200, fmt.Sprint(tok.ID), "req-42"},
		{"an unusable request id", "/private", http.Header{"Api-Token": {tok.Value}, "X-Request-Id": {"bad id"}}, 200, fmt.Sprint(tok.ID), ""},
		{"refused", "/private", http.Header{"Api-Token": {tok.Value + "x"}}, 401, "", ""},
		{"public", "/public", nil, 200, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", f.gw.URL+c.path, nil)
			req.Header = c.header.Clone()
			if req.Header == nil {
				req.Header = http.Header{}
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var s seen
			if res.StatusCode == 200 {
				decodeSeen(t, res, &s)
			}
			res.Body.Close()
			line := logs.next(t)
			if res.StatusCode != c.status || line["status"] != fmt.Sprint(c.status) {
				t.Fatalf("status %d, logged %v", res.StatusCode, line)
			}
			id := line["request_id"]
			if id == "" || c.id != "" && id != c.id || c.id == "" && strings.Contains(id, " ") {
				t.Errorf("request_id %q, want %q", id, c.id)
			}
			if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != id {
				t.Errorf("the client got X-Request-Id %q, logged %q", got, id)
			}
			if res.StatusCode == 200 && s.Header.Get("X-Request-Id") != id {
				t.Errorf("the upstream got X-Request-Id %q, logged %q", s.Header.Get("X-Request-Id"), id)
			}
			if line["token_id"] != c.tokenID {
				t.Errorf("token_id %q, want %q", line["token_id"], c.tokenID)
			}
			for k, v := range line {
				if strings.Contains(v, tok.Value) {
					t.Errorf("the token's value is logged in %s", k)
				}
			}
		})
	}
}

// An informational answer the upstream sends first (103 Early Hints) is
// not the status logged: the final one is.
func TestGatewayLogsTheFinalStatus(t *testing.T) {
	logs := make(records, 100)
	f := newFixtureSetup(t, nil, "/ none\n", setup{
		upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}),
		options: func(o *gateway.Options) { o.Logger = slog.New(logs) },
	})
	res, err := http.Get(f.gw.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if line := logs.next(t); res.StatusCode != 201 || line["status"] != "201" {
		t.Fatalf("answered %d, logged %v", res.StatusCode, line)
	}
	if got := res.Header.Values("X-Request-Id"); len(got) != 1 {
		t.Fatalf("X-Request-Id %q", got)
	}
}
