package webhook_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokend/tokend/internal/webhook"
)

const secret = "do-not-leak-this-secret"

func TestDeliverSigned(t *testing.T) {
	srv, got := receiver(t)
	body := []byte(`{"events":[{"event":"bounce","email":"ann@example.com"}]}`)
	at := time.Unix(1700000000, 0)
	res, err := webhook.Deliver(t.Context(), webhook.Policy{AllowHTTP: true}.Client(5*time.Second), srv.URL+"/hooks?k=v", secret, "msg_1", at, "application/json", body)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if res.Status != http.StatusNoContent || res.Body != "" || res.Duration <= 0 {
		t.Errorf("Result = %+v, want 204, no body, a duration", res)
	}
	r := <-got
	if !bytes.Equal(r.body, body) {
		t.Errorf("endpoint received body %q, want %q", r.body, body)
	}
	for k, v := range webhook.Sign(secret, "msg_1", at, "application/json", body) {
		if g := r.header.Values(k); len(g) != 1 || g[0] != v[0] {
			t.Errorf("endpoint received %s: %q, want %q", k, g, v)
		}
	}
	if g := r.header.Get("Content-Length"); g != fmt.Sprint(len(body)) {
		t.Errorf("endpoint received Content-Length %q, want %d", g, len(body))
	}
}

func TestDeliver(t *testing.T) {
	var redirected atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "thanks") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/redirected", http.StatusFound)
	})
	mux.HandleFunc("/redirected", func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) })
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client hanging up
		<-r.Context().Done()
	})
	plain, secure := serve(t, mux, false), serve(t, mux, true)
	port := portOf(secure)
	closed := closedPort(t)

	tests := []struct {
		name      string
		policy    webhook.Policy
		timeout   time.Duration // set: the case times out; default 5s
		url       string
		status    int
		err       string // a part of the error, "" for none
		permanent bool
	}{
		{"http to loopback allowed", webhook.Policy{AllowHTTP: true}, 0, plain.URL + "/ok", 200, "", false},
		{"http to localhost allowed", webhook.Policy{AllowHTTP: true}, 0, "http://localhost:" + portOf(plain) + "/ok", 200, "", false},
		{"https to loopback allowed as private", webhook.Policy{AllowPrivate: true}, 0, secure.URL + "/ok", 200, "", false},
		{"https to loopback allowed under AllowHTTP", webhook.Policy{AllowHTTP: true}, 0, secure.URL + "/ok", 200, "", false},
		{"loopback refused", webhook.Policy{}, 0, secure.URL + "/ok", 0, "destination 127.0.0.1 refused", true},
		{"name resolving to loopback refused", webhook.Policy{}, 0, "https://localhost:" + port + "/ok", 0, "refused", true},
		{"http refused", webhook.Policy{}, 0, plain.URL + "/ok", 0, "webhook URL refused: http:// is only allowed", true},
		{"http refused even to private", webhook.Policy{AllowPrivate: true}, 0, plain.URL + "/ok", 0, "webhook URL refused: http://", true},
		{"cloud metadata refused", webhook.Policy{AllowHTTP: true}, 0, "https://169.254.169.254/latest/meta-data/", 0, "destination 169.254.169.254 refused", true},
		{"private address refused", webhook.Policy{}, 0, "https://10.0.0.1/in", 0, "destination 10.0.0.1 refused", true},
		{"TEST-NET-1 refused", webhook.Policy{}, 0, "https://192.0.2.2:" + port + "/in", 0, "destination 192.0.2.2 refused", true},
		{"benchmarking range refused", webhook.Policy{}, 0, "https://198.18.0.1/in", 0, "destination 198.18.0.1 refused", true},
		{"6to4 of a private address refused", webhook.Policy{}, 0, "https://[2002:a00:1::1]/in", 0, "refused", true},
		{"IPv4-mapped private address refused", webhook.Policy{}, 0, "https://[::ffff:10.0.0.1]/in", 0, "refused", true},
		{"unspecified address refused", webhook.Policy{AllowPrivate: true}, 0, "https://0.0.0.0:" + port + "/ok", 0, "destination 0.0.0.0 refused", true},
		{"invalid URL", webhook.Policy{}, 0, "https://exa mple.com/", 0, "webhook URL", true},
		{"not http", webhook.Policy{}, 0, "ftp://example.com/", 0, "webhook URL", true},
		{"500", webhook.Policy{AllowHTTP: true}, 0, plain.URL + "/fail", 500, "endpoint answered 500 Internal Server Error", false},
		{"410 is retryable too", webhook.Policy{AllowHTTP: true}, 0, plain.URL + "/gone", 410, "endpoint answered 410 Gone", false},
		{"redirect not followed", webhook.Policy{AllowHTTP: true}, 0, plain.URL + "/redirect", 302, "endpoint answered 302 Found", false},
		{"connection refused", webhook.Policy{AllowHTTP: true}, 0, "http://" + closed + "/in", 0, "connection refused", false},
		{"timeout", webhook.Policy{AllowHTTP: true}, 100 * time.Millisecond, plain.URL + "/block", 0, "webhook delivery", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			c := tt.policy.Client(timeout)
			webhook.TrustRoots(c, secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)
			res, err := webhook.Deliver(t.Context(), c, tt.url, secret, "msg_1", time.Now(), "application/json", []byte(`{"events":[]}`))
			if res.Status != tt.status {
				t.Errorf("Status = %d, want %d", res.Status, tt.status)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Deliver: %v", err)
			case tt.err == "" && err == nil:
				return
			case err == nil:
				t.Fatalf("Deliver succeeded, want an error with %q", tt.err)
			case !strings.Contains(err.Error(), tt.err):
				t.Errorf("error %q, want it to contain %q", err, tt.err)
			}
			if got := webhook.IsPermanent(err); got != tt.permanent {
				t.Errorf("IsPermanent(%q) = %v, want %v", err, got, tt.permanent)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret", err)
			}
			var ne net.Error
			if timedOut := errors.As(err, &ne) && ne.Timeout(); timedOut != (tt.timeout != 0) {
				t.Errorf("error %q: a timeout %v, want %v", err, timedOut, tt.timeout != 0)
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}

// The endpoint's answer is logged as valid text, cut at 1 KiB.
func TestDeliverResultBody(t *testing.T) {
	tests := []struct {
		name, answer, want string
	}{
		{"short", "accepted", "accepted"},
		{"line breaks and tabs", "a\r\nb\tc\n", "a  b c "},
		{"control characters", "a\x00b\x1b[31mc\x7f\u0085", "a\uFFFDb\uFFFD[31mc\uFFFD\uFFFD"},
		{"invalid UTF-8", "a\xffb\xc3", "a\uFFFDb\uFFFD"},
		{"cut at 1 KiB", strings.Repeat("x", 1024) + "more", strings.Repeat("x", 1024)},
		{"cut splitting a character", "x" + strings.Repeat("é", 600), "x" + strings.Repeat("é", 511)},
		{"bigger than read", strings.Repeat("y", 200<<10), strings.Repeat("y", 1024)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusAccepted)
				fmt.Fprint(w, tt.answer)
			}), false)
			res, err := webhook.Deliver(t.Context(), webhook.Policy{AllowHTTP: true}.Client(5*time.Second), srv.URL, secret, "msg_1", time.Now(), "application/json", nil)
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if res.Status != http.StatusAccepted || res.Body != tt.want {
				t.Errorf("Result = %d %q, want 202 %q", res.Status, res.Body, tt.want)
			}
			if !utf8.ValidString(res.Body) || strings.IndexFunc(res.Body, unicode.IsControl) >= 0 {
				t.Errorf("Body %q is not clean text", res.Body)
			}
		})
	}
}

// portOf returns the port s listens on.
func portOf(s *httptest.Server) string {
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return port
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
