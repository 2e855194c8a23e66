package smtpd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/testutil"
)

const bounceDomain = "bounces.tokend.test"

// env is a tokend serving SMTP submission (STARTTLS and implicit TLS) and
// the bounce MX on loopback, relaying to a test relay, with an account, a
// verified sending domain and tokens.
type env struct {
	t                     *testing.T
	a                     *app.App
	relay                 *testutil.SMTPServer
	smtp, smtps, mx       string
	account               int64
	admin                 *tokend.IssuedToken
	domain                int64 // example.com, verified
	live, test, viewer    string
	otherDomain, unverif  string // a domain of another account; an unverified one of this account
	otherAccountLiveToken string
}

func newEnv(t *testing.T, configure func(*app.Config)) *env {
	t.Helper()
	relay := testutil.StartSMTP(t, testutil.SMTPOptions{})
	a := testutil.App(t, func(c *app.Config) {
		c.SMTPAddr, c.SMTPSAddr, c.MXAddr, c.BounceDomain = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", bounceDomain
		c.SMTPRelay = "smtp://" + relay.Addr
		if configure != nil {
			configure(c)
		}
	}, app.Options{})
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := app.Listeners{HTTP: httpLn}
	if err := a.ListenSMTP(&ls); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	e := &env{t: t, a: a, relay: relay, smtp: ls.SMTP.Addr().String(), smtps: ls.SMTPS.Addr().String(), mx: ls.MX.Addr().String()}
	svc := a.Service
	acct, admin, err := svc.CreateAccount(ctx, "Acme", tokend.PlanEnterprise, "tests")
	if err != nil {
		t.Fatal(err)
	}
	e.account, e.admin = acct.ID, admin
	d := e.verifiedDomain(&admin.Token, "example.com")
	e.domain = d.ID
	e.live = d.Token.Value
	e.test = e.token(&admin.Token, tokend.Test, tokend.Permission{ResourceType: tokend.ResourceDomain, ResourceID: d.ID, Level: tokend.Admin})
	e.viewer = e.token(&admin.Token, tokend.Live, tokend.Permission{ResourceType: tokend.ResourceDomain, ResourceID: d.ID, Level: tokend.Viewer})
	if _, err := svc.CreateDomain(ctx, &admin.Token, "unverified.example.com"); err != nil {
		t.Fatal(err)
	}
	e.unverif = "unverified.example.com"
	other, otherAdmin, err := svc.CreateAccount(ctx, "Other", tokend.PlanEnterprise, "tests")
	if err != nil {
		t.Fatal(err)
	}
	_ = other
	e.verifiedDomain(&otherAdmin.Token, "other.example.net")
	e.otherDomain = "other.example.net"
	return e
}

func (e *env) verifiedDomain(caller *tokend.Token, name string) *tokend.DomainView {
	e.t.Helper()
	d, err := e.a.Service.CreateDomain(context.Background(), caller, name)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.a.Domains.Trust(context.Background(), d.ID, true, "tests"); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) token(caller *tokend.Token, environment tokend.Environment, perms ...tokend.Permission) string {
	e.t.Helper()
	tok, err := e.a.Service.CreateToken(context.Background(), caller, tokend.TokenInput{Name: fmt.Sprintf("t%d", time.Now().UnixNano()), Permissions: perms, Environment: environment})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Value
}

var insecure = &tls.Config{InsecureSkipVerify: true} // the listeners' self-signed certificate

// dial connects with STARTTLS and, when token is not empty, authenticates.
func (e *env) dial(token string) *smtp.Client {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.smtp, insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if token != "" {
		if err := c.Auth(sasl.NewPlainClient("", "api", token)); err != nil {
			e.t.Fatalf("AUTH: %v", err)
		}
	}
	return c
}

// send runs one transaction and returns the reply to DATA (or the first
// refusal).
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return "", nil
}

// wantReply checks that err is an SMTP reply with code and enhanced status.
func wantReply(t *testing.T, err error, code int, enhanced string) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want reply %d %s", err, code, enhanced)
	}
	got := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	if se.Code != code || got != enhanced {
		t.Fatalf("reply %d %s %q, want %d %s", se.Code, got, se.Message, code, enhanced)
	}
	return se
}

// A message submitted over SMTP goes on as submitted, MIME structure and
// attachment untouched, with what submission must change: Bcc gone, a
// Message-ID and Date added, bare line ends made CRLF; DKIM-signed by the
// domain and sent from its own return path, once per envelope recipient.
func TestSubmissionRelaysTheMessageAsSubmitted(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.live)
	body := "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\nbare LF here\r\n--b1\r\nContent-Type: application/pdf\r\n" +
		"Content-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
	msg := "From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nBcc: secret@example.org\r\nSubject: =?utf-8?q?H=C3=A9llo?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" + body
	if _, err := send(c, "ann@example.com", []string{"bob@example.org", "secret@example.org"}, msg); err != nil {
		t.Fatal(err)
	}
	mails := e.relay.WaitMails(t, 2, 10*time.Second)
	for _, m := range mails {
		data := string(m.Data)
		if strings.Contains(strings.ToLower(data), "\nbcc:") || strings.Contains(data, "secret@example.org") {
			t.Errorf("the Bcc field went on:\n%s", data)
		}
		for _, want := range []string{"DKIM-Signature:", "d=example.com", "\r\nMessage-ID: <", "\r\nDate: ", "Hello,\r\nbare LF here\r\n", "JVBERi0xLjQK\r\n--b1--\r\n",
			"Subject: =?utf-8?q?H=C3=A9llo?="} {
			if !strings.Contains(data, want) {
				t.Errorf("relayed message lacks %q:\n%s", want, data)
			}
		}
		if strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\r") {
			t.Errorf("bare CR or LF relayed:\n%q", data)
		}
		id, ok := tokend.ReturnPathMessage(m.From, bounceDomain)
		if !ok {
			t.Errorf("MAIL FROM %q, want bounces+<message id>@%s", m.From, bounceDomain)
		}
		if !strings.Contains(data, "Message-ID: <"+id+"@example.com>") {
			t.Errorf("copy for %v does not carry its own message id %s", m.To, id)
		}
	}
	// The logs show both messages, with the decoded subject.
	page, err := e.a.Logs.List(context.Background(), &e.admin.Token, tokend.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 || page.Messages[0].Email.Subject != "Héllo" || page.Messages[0].Email.From.Name != "Ann" {
		t.Fatalf("email logs = %+v", page.Messages)
	}
}

// A message that has its own Message-ID keeps it on every copy.
func TestSubmissionKeepsTheSendersMessageID(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.live)
	msg := "From: ann@example.com\r\nTo: bob@example.org\r\nMessage-ID: <own@example.com>\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n\r\nhi\r\n"
	if _, err := send(c, "ann@example.com", []string{"bob@example.org", "carl@example.org"}, msg); err != nil {
		t.Fatal(err)
	}
	for _, m := range e.relay.WaitMails(t, 2, 10*time.Second) {
		if n := strings.Count(strings.ToLower(string(m.Data)), "\nmessage-id:"); n != 1 || !strings.Contains(string(m.Data), "Message-ID: <own@example.com>") {
			t.Errorf("copy for %v has %d Message-IDs:\n%s", m.To, n, m.Data)
		}
		if n := strings.Count(string(m.Data), "\r\nDate: "); n != 1 {
			t.Errorf("copy has %d Date fields", n)
		}
	}
}

// Every rule of the send API has its SMTP refusal, with the enhanced status
// code a client can act on.
func TestSubmissionRefusals(t *testing.T) {
	e := newEnv(t, nil)
	ok := "From: ann@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhi\r\n"
	cases := []struct {
		name     string
		token    string
		from     string
		msg      string
		code     int
		enhanced string
		contains string
	}{
		{"viewer token", e.viewer, "ann@example.com", ok, 550, "5.7.1", "admin access to the sending domain example.com"},
		{"other account's domain", e.live, "ann@" + e.otherDomain, "From: ann@" + e.otherDomain + "\r\n\r\nhi\r\n", 550, "5.7.1", "admin access to the sending domain " + e.otherDomain},
		{"domain that does not exist", e.live, "ann@nowhere.example", "From: ann@nowhere.example\r\n\r\nhi\r\n", 550, "5.7.1", "admin access to the sending domain nowhere.example"},
		{"unverified domain, live key", e.admin.Value, "ann@" + e.unverif, "From: ann@" + e.unverif + "\r\n\r\nhi\r\n", 550, "5.7.1", "is not verified"},
		{"null sender", e.live, "", ok, 550, "5.7.1", "not empty"},
		{"From on another domain than the envelope", e.admin.Value, "ann@example.com", "From: ann@" + e.unverif + "\r\n\r\nhi\r\n", 550, "5.7.1", "must be the same sending domain"},
		{"no From", e.live, "ann@example.com", "Subject: hi\r\n\r\nhi\r\n", 550, "5.6.0", "From is required"},
		{"two From mailboxes", e.live, "ann@example.com", "From: ann@example.com, bob@example.com\r\n\r\nhi\r\n", 550, "5.6.0", "exactly one mailbox"},
		{"custom variables not JSON", e.live, "ann@example.com", "From: ann@example.com\r\nX-MT-Custom-Variables: {nope\r\n\r\nhi\r\n", 550, "5.6.0", "JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(tc.token)
			_, err := send(c, tc.from, []string{"bob@example.org"}, tc.msg)
			se := wantReply(t, err, tc.code, tc.enhanced)
			if !strings.Contains(se.Message, tc.contains) {
				t.Errorf("reply %q does not say %q", se.Message, tc.contains)
			}
		})
	}
	// Whether the domain is another account's or no one's, the answer reads the same.
	c := e.dial(e.live)
	_, err1 := send(c, "ann@"+e.otherDomain, []string{"bob@example.org"}, ok)
	c2 := e.dial(e.live)
	_, err2 := send(c2, "ann@nowhere.example", []string{"bob@example.org"}, ok)
	m1 := strings.ReplaceAll(err1.Error(), e.otherDomain, "X")
	m2 := strings.ReplaceAll(err2.Error(), "nowhere.example", "X")
	if m1 != m2 {
		t.Errorf("another account's domain answers %q, a missing one %q", m1, m2)
	}
	if n := len(e.relay.Mails()); n != 0 {
		t.Errorf("%d refused messages were relayed", n)
	}
}

// AUTH is offered only once TLS is up, PLAIN and LOGIN both; a bad
// password or username gets 535 5.7.8; MAIL before AUTH 530.
func TestSubmissionAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	plain, err := smtp.Dial(e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := plain.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	wantReply(t, plain.Auth(sasl.NewPlainClient("", "api", e.live)), 523, "5.7.10")

	c := e.dial("")
	wantReply(t, c.Mail("ann@example.com", nil), 530, "5.7.0")
	wantReply(t, c.Auth(sasl.NewPlainClient("", "api", "tk_live_"+strings.Repeat("a", 36))), 535, "5.7.8")
	wantReply(t, c.Auth(sasl.NewPlainClient("", "someone", e.live)), 535, "5.7.8")
	if err := c.Auth(sasl.NewLoginClient("api", e.live)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if _, err := send(c, "ann@example.com", []string{"bob@example.org"}, "From: ann@example.com\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}

	// Implicit TLS, from the first byte.
	tc, err := smtp.DialTLS(e.smtps, insecure)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Auth(sasl.NewPlainClient("", "api", e.live)); err != nil {
		t.Fatalf("AUTH over implicit TLS: %v", err)
	}
	e.relay.WaitMails(t, 1, 10*time.Second)
}

// Failed AUTHs spend the address's failed-authentication budget, shared
// with the API: once it is spent, guesses get 454 without being checked.
func TestSubmissionFailedAuthIsThrottled(t *testing.T) {
	e := newEnv(t, func(c *app.Config) { c.AuthFailureLimit = 3 })
	bad := sasl.NewPlainClient("", "api", "tk_live_"+strings.Repeat("b", 36))
	for i := 0; i < 3; i++ {
		c := e.dial("")
		wantReply(t, c.Auth(bad), 535, "5.7.8")
		c.Close()
	}
	c := e.dial("")
	wantReply(t, c.Auth(bad), 454, "4.7.0")
}

// A test key's message is captured into the account's sandbox and never
// relayed.
func TestSubmissionTestKeyIsCaptured(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.test)
	if _, err := send(c, "ann@example.com", []string{"bob@example.org"}, "From: ann@example.com\r\nSubject: captured\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	page, err := e.a.Logs.List(context.Background(), &e.admin.Token, tokend.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || !page.Messages[0].Captured() || page.Messages[0].Email.Subject != "captured" {
		t.Fatalf("logs = %+v, want one captured message", page.Messages)
	}
	time.Sleep(200 * time.Millisecond) // what would have been relayed by now
	if n := len(e.relay.Mails()); n != 0 {
		t.Fatalf("a test key's message was relayed %d times", n)
	}
}

// A suppressed recipient among several is not sent to; the others are.
func TestSubmissionSkipsSuppressedRecipients(t *testing.T) {
	e := newEnv(t, nil)
	if _, _, err := e.a.Suppress.Create(context.Background(), &e.admin.Token, tokend.SuppressionInput{Email: "gone@example.org"}); err != nil {
		t.Fatal(err)
	}
	c := e.dial(e.live)
	if _, err := send(c, "ann@example.com", []string{"a@example.org", "gone@example.org", "b@example.org"}, "From: ann@example.com\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	mails := e.relay.WaitMails(t, 2, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	for _, m := range e.relay.Mails() {
		if m.To[0] == "gone@example.org" {
			t.Fatal("a suppressed recipient was sent to")
		}
	}
	if len(mails) != 2 {
		t.Fatalf("%d relayed, want 2", len(mails))
	}
}

// An Idempotency-Key field makes a retry after a lost answer safe: the
// same message again is answered as the first and relayed once; another
// message under the same key is refused.
func TestSubmissionIdempotencyKey(t *testing.T) {
	e := newEnv(t, nil)
	msg := "From: ann@example.com\r\nIdempotency-Key: order-42\r\nSubject: once\r\n\r\nhi\r\n"
	for i := 0; i < 2; i++ {
		c := e.dial(e.live)
		if _, err := send(c, "ann@example.com", []string{"bob@example.org"}, msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	c := e.dial(e.live)
	_, err := send(c, "ann@example.com", []string{"bob@example.org"}, strings.Replace(msg, "once", "twice", 1))
	wantReply(t, err, 550, "5.6.0")
	m := e.relay.WaitMails(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(e.relay.Mails()); n != 1 {
		t.Fatalf("relayed %d times, want once", n)
	}
	if strings.Contains(string(m[0].Data), "order-42") {
		t.Error("the Idempotency-Key field went on")
	}
}

// Size and recipient limits answer before the message is taken whole.
func TestSubmissionLimits(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("message size", func(t *testing.T) {
		c := e.dial(e.live)
		big := "From: ann@example.com\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", tokend.MaxEmailSize/1000+10)
		_, err := send(c, "ann@example.com", []string{"bob@example.org"}, big)
		wantReply(t, err, 552, "5.3.4")
	})
	t.Run("recipients", func(t *testing.T) {
		c := e.dial(e.live)
		if err := c.Mail("ann@example.com", nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < tokend.MaxRecipientsPerField; i++ {
			if err := c.Rcpt(fmt.Sprintf("r%d@example.org", i), nil); err != nil {
				t.Fatal(err)
			}
		}
		wantReply(t, c.Rcpt("one-too-many@example.org", nil), 452, "4.5.3")
	})
}

// The plan limit counts each message as one request: past it, MAIL is
// refused with 451 4.7.0 and the usage shows it.
func TestSubmissionPlanLimit(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.a.Service.SetPlan(context.Background(), e.account, tokend.PlanEnterprise, 2, 0, "tests"); err != nil {
		t.Fatal(err)
	}
	c := e.dial(e.live)
	for i := 0; i < 2; i++ {
		if _, err := send(c, "ann@example.com", []string{"bob@example.org"}, "From: ann@example.com\r\n\r\nhi\r\n"); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	wantReply(t, c.Mail("ann@example.com", nil), 451, "4.7.0")
	// The usage of the domain token counts the two messages and the refusal.
	tok, err := e.a.Service.Authenticate(context.Background(), e.live)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Service.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	u, err := e.a.Service.Usage(context.Background(), &e.admin.Token, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[tokend.Outcome]int64{}
	for _, c := range u.Counts {
		got[c.Outcome] += c.Count
	}
	if got[tokend.OutcomeSuccess] != 2 || got[tokend.OutcomeRateLimited] != 1 {
		t.Fatalf("usage = %v, want 2 successes and 1 rate-limited", got)
	}
}

// Connections per client address are bounded: one too many is answered
// 421 at once.
func TestSubmissionConnectionsPerAddress(t *testing.T) {
	e := newEnv(t, func(c *app.Config) { c.SMTPMaxConnsPerIP = 2 })
	for i := 0; i < 2; i++ {
		c, err := smtp.Dial(e.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	n, _ := conn.Read(buf)
	if !bytes.HasPrefix(buf[:n], []byte("421 4.7.0")) {
		t.Fatalf("third connection greeted %q, want 421 4.7.0", buf[:n])
	}
}
