package smtpd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/smtpd"
	"github.com/tokend/tokend/internal/testutil"
)

// benchClients is how many clients send at once, over HTTP and over SMTP.
const benchClients = 16

// BenchmarkSubmission measures accepted messages per second through SMTP
// submission (STARTTLS, AUTH PLAIN once per connection, MAIL, RCPT and DATA
// pipelined) beside the HTTP send route, on one app and one SQLite file:
// 16 clients each, persistent connections, one recipient a message, the same
// message (a subject and about 1 KB of text), live sends from the domain's
// admin token, queued in the accepting transaction while the workers deliver
// to a local relay in the same database, as BenchmarkSend in internal/api
// does. Before each measured loop the relay has received everything accepted
// until then, so neither side starts with the other's deliveries queued; after
// it, every accepted message must reach the relay.
//
//	go test -run '^$' -bench Submission -benchtime 3000x -count 3 ./internal/smtpd
func BenchmarkSubmission(b *testing.B) {
	e := newBenchEnv(b)
	b.Run("http", e.benchHTTP)
	b.Run("smtp", e.benchSMTP)
}

const (
	benchFrom    = "app@example.com"
	benchTo      = "r@example.org"
	benchSubject = "Benchmark"
)

// benchText is about 1 KB of text: 14 lines of 72 characters.
var benchText = strings.Repeat(strings.Repeat("x", 71)+".\n", 14)

type benchEnv struct {
	a        *app.App
	relay    *testutil.SMTPServer
	httpURL  string
	smtpAddr string
	token    string // the domain's admin token, live
	accepted int    // messages accepted so far, all sub-benchmarks
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	relay := testutil.StartSMTP(b, testutil.SMTPOptions{})
	// As BenchmarkSend: 16 sends in flight over HTTP, 2048-bit DKIM keys;
	// the store is testutil's, a SQLite file in a temporary directory
	// unless TOKEND_TEST_STORE says otherwise.
	a := testutil.App(b, func(c *app.Config) {
		c.SendsInFlight, c.AccountSendsInFlight = benchClients, benchClients
		c.SMTPAddr = "127.0.0.1:0"
		c.SMTPRelay = "smtp://" + relay.Addr
	}, app.Options{DKIMKeyBits: 2048})
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ls := app.Listeners{HTTP: httpLn}
	if err := a.ListenSMTP(&ls); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ls) }() // HTTP, SMTP and the deliveries
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	svc := a.Service
	_, admin, err := svc.CreateAccount(ctx, "Bench", tokend.PlanEnterprise, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.SetPlan(ctx, admin.AccountID, tokend.PlanEnterprise, 1<<30, 1<<30, "bench"); err != nil {
		b.Fatal(err)
	}
	d, err := svc.CreateDomain(ctx, &admin.Token, "example.com")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Domains.Trust(ctx, d.ID, true, "bench"); err != nil {
		b.Fatal(err)
	}
	return &benchEnv{a: a, relay: relay, httpURL: "http://" + httpLn.Addr().String(), smtpAddr: ls.SMTP.Addr().String(), token: d.Token.Value}
}

// waitRelayed waits until the relay has received every message accepted so
// far, and fails the benchmark if it does not within two minutes.
func (e *benchEnv) waitRelayed(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := len(e.relay.Mails())
		if n >= e.accepted {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the relay got %d messages of the %d accepted", n, e.accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run has benchClients goroutines share b.N messages, each sending with
// its own client; it stops at the first failure, which fails b.
func (e *benchEnv) run(b *testing.B, send func(client int) error) {
	var next, ok atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < benchClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() && next.Add(1) <= int64(b.N) {
				if err := send(i); err != nil {
					if !failed.Swap(true) {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	e.accepted += int(ok.Load())
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	if n := ok.Load(); n != int64(b.N) {
		b.Fatalf("%d messages accepted of %d", n, b.N)
	}
	b.ReportMetric(float64(len(e.relay.Mails())-(e.accepted-b.N)), "delivered")
	e.waitRelayed(b)
}

func (e *benchEnv) benchHTTP(b *testing.B) {
	body, err := json.Marshal(map[string]any{"from": map[string]any{"email": benchFrom},
		"to": []any{map[string]any{"email": benchTo}}, "subject": benchSubject, "text": benchText})
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	e.waitRelayed(b)
	b.ResetTimer()
	e.run(b, func(int) error {
		req, err := http.NewRequest("POST", e.httpURL+"/api/send", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Api-Token", e.token)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /api/send: %d %s", res.StatusCode, out)
		}
		return nil
	})
}

func (e *benchEnv) benchSMTP(b *testing.B) {
	msg := []byte("From: App <" + benchFrom + ">\r\nTo: <" + benchTo + ">\r\nSubject: " + benchSubject +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(benchText, "\n", "\r\n"))
	clients := make([]*submitClient, benchClients)
	for i := range clients {
		c, err := dialSubmit(e.smtpAddr, e.token)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	defer func() {
		for _, c := range clients {
			c.quit()
		}
	}()
	e.waitRelayed(b)
	b.ResetTimer()
	e.run(b, func(i int) error {
		c := clients[i]
		if c.sent == smtpd.DefaultMessagesPerSession { // the server ends the session at the next MAIL
			c.quit()
			var err error
			if c, err = dialSubmit(e.smtpAddr, e.token); err != nil {
				return err
			}
			clients[i] = c
		}
		return c.send(benchFrom, benchTo, msg)
	})
}

// submitClient is a submission client that pipelines each message's MAIL,
// RCPT and DATA in one write (go-smtp's client waits for each reply).
type submitClient struct {
	conn net.Conn
	tp   *textproto.Conn
	sent int
}

// dialSubmit connects, starts TLS (the server's certificate is self-signed)
// and authenticates with AUTH PLAIN.
func dialSubmit(addr, token string) (*submitClient, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &submitClient{conn: nc, tp: textproto.NewConn(nc)}
	fail := func(step string, err error) (*submitClient, error) {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if _, _, err := c.tp.ReadResponse(220); err != nil {
		return fail("greeting", err)
	}
	if _, err := c.cmd(250, "EHLO bench.test"); err != nil {
		return fail("EHLO", err)
	}
	if _, err := c.cmd(220, "STARTTLS"); err != nil {
		return fail("STARTTLS", err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return fail("TLS", err)
	}
	c.conn, c.tp = tc, textproto.NewConn(tc)
	ext, err := c.cmd(250, "EHLO bench.test")
	if err != nil {
		return fail("EHLO", err)
	}
	if !strings.Contains(ext, "\nPIPELINING") {
		return fail("EHLO", fmt.Errorf("PIPELINING not offered: %q", ext))
	}
	if _, err := c.cmd(235, "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+smtpd.Username+"\x00"+token))); err != nil {
		return fail("AUTH", err)
	}
	return c, nil
}

func (c *submitClient) cmd(code int, format string, args ...any) (string, error) {
	if err := c.tp.PrintfLine(format, args...); err != nil {
		return "", err
	}
	_, msg, err := c.tp.ReadResponse(code)
	return msg, err
}

// send sends msg (CRLF line ends, no line starting with a dot): MAIL, RCPT
// and DATA in one write, their three replies, then the data and the final
// reply, which must be 250.
func (c *submitClient) send(from, to string, msg []byte) error {
	w := c.tp.W
	fmt.Fprintf(w, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", from, to)
	if err := w.Flush(); err != nil {
		return err
	}
	for _, step := range []struct {
		name string
		code int
	}{{"MAIL", 250}, {"RCPT", 250}, {"DATA", 354}} {
		if _, _, err := c.tp.ReadResponse(step.code); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	w.Write(msg)
	w.WriteString(".\r\n")
	if err := w.Flush(); err != nil {
		return err
	}
	if _, _, err := c.tp.ReadResponse(250); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	c.sent++
	return nil
}

func (c *submitClient) quit() {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	c.cmd(221, "QUIT")
	c.conn.Close()
}
