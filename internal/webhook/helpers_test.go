package webhook_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
)

// serve starts h on a free port of 127.0.0.1, over TLS when secure, closed
// with t.
func serve(t *testing.T, h http.Handler, secure bool) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	if secure {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// received is a request as an endpoint saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is an endpoint that answers 204 and passes on what it receives.
func receiver(t *testing.T) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 16)
	s := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: %v", err)
		}
		got <- received{r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}), false)
	return s, got
}

// tool returns the path of a program the tests run. Without it the test
// fails, and never skips: tokend's CI installs what the tests need.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to run this test (install it): %v", name, err)
	}
	return path
}
