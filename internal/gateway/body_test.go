package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/gateway"
)

// bodyUpstream reads each request's body and reports how much it got and
// the error that ended it (nil at the body's end).
type bodyResult struct {
	n   int64
	err error
}

func bodyUpstream(results chan<- bodyResult, hold time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		results <- bodyResult{n, err}
		if err != nil {
			return
		}
		if hold > 0 { // an upstream slow to answer, after the body is in
			time.Sleep(hold)
		}
		fmt.Fprintf(w, `{"Path":%q}`, r.URL.Path)
	})
}

// slowBodyFixture is a gateway that wants a body within grace, plus a
// second per rate bytes.
func slowBodyFixture(t *testing.T, results chan bodyResult, hold, grace time.Duration, rate int) *fixture {
	return newFixtureSetup(t, nil, "", setup{upstream: bodyUpstream(results, hold), options: func(o *gateway.Options) {
		o.BodyGrace, o.BodyMinRate = grace, rate
	}})
}

// A body that trickles in slower than the gateway's minimum rate is cut
// off with 408 request_timeout, and its upstream request ends with it, so
// slow clients cannot hold the upstream's connections.
func TestGatewayTimesOutSlowBodies(t *testing.T) {
	for _, c := range []struct {
		name, header, start string
	}{
		{"with a length", "Content-Length: 100000", strings.Repeat("x", 100)},
		{"chunked", "Transfer-Encoding: chunked", "64\r\n" + strings.Repeat("x", 100) + "\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			results := make(chan bodyResult, 1)
			f := slowBodyFixture(t, results, 0, 300*time.Millisecond, 1000)
			conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			// The headers and a first bit of the body, then nothing more.
			fmt.Fprint(conn, rawRequest("POST", "/upload", c.header, "Api-Token: "+f.tokend.Token(t, "user").Value)+c.start)
			start := time.Now()
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"request_timeout"`) {
				t.Fatalf("%d %s, want 408 request_timeout", res.StatusCode, body)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answered after %v", took)
			}
			select {
			case r := <-results:
				if r.err == nil || r.n != 100 {
					t.Errorf("the upstream read %d bytes and %v, want the 100 sent and an error", r.n, r.err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream request is still open")
			}
		})
	}
}

// Over HTTP/2 the bound is the stream's: the slow stream is answered 408.
func TestGatewayTimesOutSlowBodiesOverHTTP2(t *testing.T) {
	results := make(chan bodyResult, 1)
	f := newFixtureSetup(t, nil, "", setup{http2: true, upstream: bodyUpstream(results, 0), options: func(o *gateway.Options) {
		o.BodyGrace, o.BodyMinRate = 300*time.Millisecond, 1000
	}})
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(strings.Repeat("x", 100))) // then nothing more
	req, _ := http.NewRequest("POST", f.gw.URL+"/upload", pr)
	req.ContentLength = 100000
	req.Header.Set("Api-Token", f.tokend.Token(t, "user").Value)
	c := f.gw.Client()
	c.Timeout = 10 * time.Second
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"request_timeout"`) {
		t.Fatalf("HTTP/%d %d %s, want 408 request_timeout over HTTP/2", res.ProtoMajor, res.StatusCode, body)
	}
	select {
	case r := <-results:
		if r.err == nil || r.n != 100 {
			t.Errorf("the upstream read %d bytes and %v, want the 100 sent and an error", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request is still open")
	}
}

// A body that keeps to the rate passes however long it takes in all, and
// once it is in, the upstream may take its time to answer.
func TestGatewayPassesBodiesThatKeepToTheRate(t *testing.T) {
	t.Run("a steady body longer than the grace", func(t *testing.T) {
		results := make(chan bodyResult, 1)
		f := slowBodyFixture(t, results, 0, 200*time.Millisecond, 2000)
		conn, err := net.Dial("tcp", f.gw.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(conn, rawRequest("POST", "/upload", "Content-Length: 4000", "Api-Token: "+f.tokend.Token(t, "user").Value))
		tick := time.NewTicker(50 * time.Millisecond) // 200 bytes a tick: 4000 bytes/s, in 1 s
		defer tick.Stop()
		for i := 0; i < 20; i++ {
			<-tick.C
			if _, err := conn.Write([]byte(strings.Repeat("x", 200))); err != nil {
				t.Fatalf("after %d bytes: %v", i*200, err)
			}
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%v %v", res, err)
		}
		if r := <-results; r.err != nil || r.n != 4000 {
			t.Fatalf("the upstream read %d bytes and %v", r.n, r.err)
		}
	})
	t.Run("an upstream slow to answer", func(t *testing.T) {
		results := make(chan bodyResult, 1)
		f := slowBodyFixture(t, results, 600*time.Millisecond, 200*time.Millisecond, 1000)
		req, _ := http.NewRequest("POST", f.gw.URL+"/upload", strings.NewReader("small"))
		req.Header.Set("Api-Token", f.tokend.Token(t, "user").Value)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), "/upload") {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
	})
}
