package httpx_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/httpx"
)

func TestRequestIDs(t *testing.T) {
	ids := httpx.NewRequestIDs()
	fresh := map[string]bool{}
	for _, c := range []struct {
		name   string
		header http.Header
		keep   bool // the client's own is used
	}{
		{"none", nil, false},
		{"the client's", http.Header{"X-Request-Id": {"req-42"}}, true},
		{"the longest taken", http.Header{"X-Request-Id": {strings.Repeat("a", 128)}}, true},
		{"too long", http.Header{"X-Request-Id": {strings.Repeat("a", 129)}}, false},
		{"empty", http.Header{"X-Request-Id": {""}}, false},
		{"a space", http.Header{"X-Request-Id": {"a b"}}, false},
		{"a control character", http.Header{"X-Request-Id": {"a\x01"}}, false},
		{"not ASCII", http.Header{"X-Request-Id": {"é"}}, false},
		{"two", http.Header{"X-Request-Id": {"a", "b"}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := ids.From(c.header)
			if c.keep {
				if id != c.header.Get("X-Request-Id") {
					t.Fatalf("%q, want the client's", id)
				}
				return
			}
			if !httpx.ValidRequestID(id) || fresh[id] {
				t.Fatalf("%q: not a new valid ID", id)
			}
			fresh[id] = true
		})
	}
}

func TestMethodLabel(t *testing.T) {
	for m, want := range map[string]string{"GET": "GET", "CONNECT": "CONNECT", "get": "other", "PROPFIND": "other", strings.Repeat("X", 1000): "other"} {
		if got := httpx.MethodLabel(m); got != want {
			t.Errorf("%.20q: %q, want %q", m, got, want)
		}
	}
}
