package smtpd_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
)

// raw is a hand-driven SMTP session, for what go's clients hide: replies
// to data that never ends, and what comes after a session's last reply.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &raw{t: t, c: c, r: bufio.NewReader(c)}
	s.expect("220")
	return s
}

// reply reads one reply (all its lines) and returns its last line.
func (s *raw) reply() string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading a reply: %v (read %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (s *raw) expect(prefix string) string {
	s.t.Helper()
	l := s.reply()
	if !strings.HasPrefix(l, prefix) {
		s.t.Fatalf("reply %q, want %s", l, prefix)
	}
	return l
}

func (s *raw) send(line string) {
	s.t.Helper()
	s.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(s.c, line+"\r\n"); err != nil {
		s.t.Fatal(err)
	}
}

func (s *raw) cmd(line, prefix string) string {
	s.t.Helper()
	s.send(line)
	return s.expect(prefix)
}

// starttls upgrades the session and says EHLO again.
func (s *raw) starttls() {
	s.t.Helper()
	s.cmd("STARTTLS", "220")
	tc := tls.Client(s.c, insecure)
	if err := tc.Handshake(); err != nil {
		s.t.Fatal(err)
	}
	s.c, s.r = tc, bufio.NewReader(tc)
	s.cmd("EHLO client.test", "250")
}

// eof checks that the server says nothing more and closes the connection.
func (s *raw) eof() {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(s.r)
	if len(rest) > 0 {
		s.t.Errorf("after the session's last reply, the server wrote %q", rest)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.t.Error("the server did not close the connection after the session's last reply")
	}
}

// submission opens an authenticated session with a transaction up to DATA's 354.
func (e *env) submissionToData(t *testing.T) *raw {
	t.Helper()
	s := dialRaw(t, e.smtp)
	s.cmd("EHLO client.test", "250")
	s.starttls()
	s.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00api\x00"+e.live)), "235")
	s.cmd("MAIL FROM:<ann@example.com>", "250")
	s.cmd("RCPT TO:<bob@example.org>", "250")
	s.cmd("DATA", "354")
	return s
}

// One count of connections per client address covers both submission
// listeners: an address cannot hold the limit on each. The MX, where
// other MTAs connect, counts its own.
func TestConnectionsPerAddressAcrossSubmissionListeners(t *testing.T) {
	e := newEnv(t, func(c *app.Config) { c.SMTPMaxConnsPerIP = 2 })
	a := dialRaw(t, e.smtp)
	a.cmd("EHLO client.test", "250")
	tc, err := tls.Dial("tcp", e.smtps, insecure)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	b := &raw{t: t, c: tc, r: bufio.NewReader(tc)}
	b.expect("220")
	b.cmd("EHLO client.test", "250")

	// A third, on either listener, is refused.
	third, err := net.Dial("tcp", e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting, _ := bufio.NewReader(third).ReadString('\n')
	if !strings.HasPrefix(greeting, "421 4.7.0") {
		t.Errorf("a third connection (to --smtp-addr, with one on each listener) is greeted %q, want 421 4.7.0", greeting)
	}
	// Over implicit TLS, the refusal comes after the handshake, where a
	// TLS client reads it.
	ttc, err := tls.Dial("tcp", e.smtps, insecure)
	if err != nil {
		t.Fatalf("over the limit, the TLS handshake fails: %v", err)
	}
	defer ttc.Close()
	ttc.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting, err = bufio.NewReader(ttc).ReadString('\n')
	if !strings.HasPrefix(greeting, "421 4.7.0 Too many connections from your address") {
		t.Errorf("a third connection over implicit TLS reads %q (%v), want 421 4.7.0", greeting, err)
	}
	// The MX still greets the address.
	mx := dialRaw(t, e.mx)
	mx.cmd("EHLO mx.example.org", "250")

	// Once one closes, the address may connect again.
	a.cmd("QUIT", "221")
	a.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", e.smtps)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		tc, err := tls.Dial("tcp", e.smtps, insecure)
		if err != nil {
			t.Fatal(err)
		}
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		greeting, _ = bufio.NewReader(tc).ReadString('\n')
		tc.Close()
		if strings.HasPrefix(greeting, "220") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a connection closed, a new one is greeted %q", greeting)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var socketAddress = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+|\[[0-9a-f:]+\]:\d+`)

// Data that stops coming past --smtp-idle ends the session with 421 4.4.2,
// and the reply names no socket or internal error.
func TestStalledDataTimesOutCleanly(t *testing.T) {
	e := newEnv(t, func(c *app.Config) { c.SMTPIdle = time.Second })
	s := e.submissionToData(t)
	s.send("From: ann@example.com\r\nSubject: stalled\r\n\r\nthe first line, and then nothing")
	l := s.expect("421 4.4.2")
	if socketAddress.MatchString(l) || strings.Contains(l, "i/o timeout") || strings.Contains(l, "transaction failed") {
		t.Errorf("the reply to stalled data tells internals: %q", l)
	}
	s.eof()
}

// A line of data longer than the limit is refused with 500 5.5.2 saying
// the limit; a line of the limit passes.
func TestLongLineIsRefusedCleanly(t *testing.T) {
	e := newEnv(t, nil)
	s := e.submissionToData(t)
	s.send("From: ann@example.com\r\nSubject: just fits\r\n\r\n" + strings.Repeat("x", 1998) + "\r\n.")
	s.expect("250 2.0.0")
	s.cmd("MAIL FROM:<ann@example.com>", "250")
	s.cmd("RCPT TO:<bob@example.org>", "250")
	s.cmd("DATA", "354")
	s.send("From: ann@example.com\r\nSubject: too long\r\n\r\n" + strings.Repeat("x", 1999) + "\r\n.")
	l := s.expect("500 5.5.2")
	if !strings.Contains(l, "Line too long (max 2000 bytes") || strings.Contains(l, "smtp:") {
		t.Errorf("reply %q, want one that says the limit", l)
	}
	s.eof()
	e.relay.WaitMails(t, 1, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := len(e.relay.Mails()); n != 1 {
		t.Errorf("%d messages relayed, want the one that fit", n)
	}
}

// Past the session's command bytes, the reply says so, before TLS and
// after, and nothing follows it.
func TestCommandLimitReply(t *testing.T) {
	e := newEnv(t, nil)
	for _, tlsUp := range []bool{false, true} {
		s := dialRaw(t, e.smtp)
		s.cmd("EHLO client.test", "250")
		if tlsUp {
			s.starttls()
		}
		noop := "NOOP " + strings.Repeat("n", 1000)
		var last string
		for i := 0; i < 2000; i++ {
			s.send(noop)
			last = s.reply()
			if !strings.HasPrefix(last, "250") {
				break
			}
		}
		if !strings.HasPrefix(last, "421 4.7.0") || !strings.Contains(last, "limit of commands") {
			t.Errorf("TLS %v: past the command limit the reply is %q, want 421 4.7.0 saying the limit", tlsUp, last)
		}
		s.eof()
	}
}

// The MX has no AUTH, before STARTTLS as after: the same 502 5.5.1.
func TestMXRefusesAuthTheSameWithAndWithoutTLS(t *testing.T) {
	e := newEnv(t, nil)
	s := dialRaw(t, e.mx)
	s.cmd("EHLO mx.example.org", "250")
	auth := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00api\x00"+e.live))
	s.cmd(auth, "502 5.5.1")
	s.starttls()
	s.cmd(auth, "502 5.5.1")
}

var retryInSeconds = regexp.MustCompile(`retry in \d+ s\b`)

// Refusals of the limits say in seconds when to retry, and name neither a
// header nor a field.
func TestLimitRefusalsSayWhenToRetry(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.a.Service.SetPlan(context.Background(), e.account, tokend.PlanEnterprise, 4, 5, "tests"); err != nil {
		t.Fatal(err)
	}
	msg := "From: ann@example.com\r\nSubject: hi\r\n\r\nhi\r\n"
	c := e.dial(e.live)
	// Six recipients can never pass an allowance of five.
	_, err := send(c, "ann@example.com", []string{"a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org", "f@example.org"}, msg)
	se := wantReply(t, err, 550, "5.5.3")
	if strings.Contains(se.Message, "base") || !strings.Contains(se.Message, "6 recipients") {
		t.Errorf("over the whole allowance: %q", se.Message)
	}
	c.Reset()
	// Three, then three more, than the allowance covers now.
	if _, err := send(c, "ann@example.com", []string{"a@example.org", "b@example.org", "c@example.org"}, msg); err != nil {
		t.Fatal(err)
	}
	_, err = send(c, "ann@example.com", []string{"a@example.org", "b@example.org", "c@example.org"}, msg)
	se = wantReply(t, err, 452, "4.5.3")
	if strings.Contains(se.Message, "Retry-After") || !retryInSeconds.MatchString(se.Message) {
		t.Errorf("past the allowance: %q, want it to say retry in N s", se.Message)
	}
	c.Reset()
	// Past the plan's four requests a minute (three spent above).
	if err := c.Mail("ann@example.com", nil); err != nil {
		t.Fatal(err)
	}
	c.Reset()
	se = wantReply(t, c.Mail("ann@example.com", nil), 451, "4.7.0")
	if !retryInSeconds.MatchString(se.Message) {
		t.Errorf("past the rate limit: %q, want it to say retry in N s", se.Message)
	}
}

// A session the server ends (here after three failed AUTHs) gets one last
// reply, not that and an idle timeout after it.
func TestEndedSessionGetsOneLastReply(t *testing.T) {
	e := newEnv(t, nil)
	s := dialRaw(t, e.smtp)
	s.cmd("EHLO client.test", "250")
	s.starttls()
	bad := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00api\x00tk_live_"+strings.Repeat("c", 36)))
	s.cmd(bad, "535")
	s.cmd(bad, "535")
	s.cmd(bad, "421 4.7.0")
	s.eof()
}
