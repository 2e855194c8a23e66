package gateway_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest is an HTTP/1.1 request written byte for byte: target and
// header lines ("Name: value") exactly as given, where Go's client would
// clean the path or canonicalise the names.
func rawRequest(method, target string, header ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: gateway.test\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// raw sends req on a new connection to the gateway and reads the answer:
// its status and headers, its body as JSON and, when the upstream answered,
// what the upstream saw.
func (f *fixture) raw(req string) (int, http.Header, map[string]any, seen) {
	f.t.Helper()
	conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		f.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		f.t.Fatalf("%s: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	defer res.Body.Close()
	var msg json.RawMessage
	json.NewDecoder(res.Body).Decode(&msg)
	var s seen
	var body map[string]any
	json.Unmarshal(msg, &s)
	json.Unmarshal(msg, &body)
	return res.StatusCode, res.Header, body, s
}

// decodeSeen reads what the upstream saw from the answer to a request.
func decodeSeen(t *testing.T, res *http.Response, s *seen) {
	t.Helper()
	if err := json.NewDecoder(res.Body).Decode(s); err != nil {
		t.Fatalf("the upstream's answer: %v", err)
	}
}
