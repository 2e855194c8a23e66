package smtpd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tokend/tokend"
)

// dsn is a delivery status notification as Postfix writes one, for the
// message sent to rcpt.
func dsn(returnPath, rcpt, status, diagnostic string) string {
	return "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\nTo: " + returnPath + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n" +
		"Final-Recipient: rfc822; " + rcpt + "\r\nOriginal-Recipient: rfc822;" + rcpt + "\r\nAction: failed\r\nStatus: " + status + "\r\n" +
		"Remote-MTA: dns; mailbox.example.org\r\nDiagnostic-Code: smtp; " + diagnostic + "\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: ann@example.com\r\nSubject: hi\r\n--B--\r\n"
}

// sendToMX hands msg to the MX for the return paths rcpts, from the null
// sender as bounces come.
func (e *env) sendToMX(t *testing.T, rcpts []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(e.mx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx.example.org"); err != nil {
		t.Fatal(err)
	}
	_, err = send(c, "", rcpts, msg)
	return err
}

// A DSN that comes back to a message's return path after the relay took
// the message is a bounce: the message fails, the event is recorded, and
// the recipient is suppressed, as a relay's 550 would have done.
func TestMXTurnsADSNIntoABounceAndASuppression(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.live)
	if _, err := send(c, "ann@example.com", []string{"gone@example.org"}, "From: ann@example.com\r\nSubject: hi\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	m := e.relay.WaitMails(t, 1, 10*time.Second)[0]
	id, _ := tokend.ReturnPathMessage(m.From, bounceDomain)
	ctx := context.Background()
	waitState(t, e, id, tokend.MessageDelivered)

	if err := e.sendToMX(t, []string{m.From}, dsn(m.From, "gone@example.org", "5.1.1", "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown")); err != nil {
		t.Fatalf("the MX refused a DSN: %v", err)
	}
	log, err := e.a.Logs.Message(ctx, &e.admin.Token, id)
	if err != nil {
		t.Fatal(err)
	}
	if log.State != tokend.MessageFailed {
		t.Errorf("state %s, want failed", log.State)
	}
	last := log.Events[len(log.Events)-1]
	if last.Type != tokend.EmailBounce || last.Details.Status != "5.1.1" || last.Details.Code != 550 || last.Details.BounceCategory != "bad_mailbox" ||
		!strings.Contains(last.Details.Response, "User unknown") {
		t.Errorf("last event %+v, want a bounce 550 5.1.1 bad_mailbox", last)
	}
	list, err := e.a.Suppress.List(ctx, &e.admin.Token, "gone@example.org")
	if err != nil || len(list) != 1 || list[0].Type != tokend.SuppressionHardBounce || list[0].Source == nil || list[0].Source.MessageID != id {
		t.Fatalf("suppressions = %+v, %v; want the hard bounce of %s", list, err, id)
	}
	// The same DSN again counts once.
	if err := e.sendToMX(t, []string{m.From}, dsn(m.From, "gone@example.org", "5.1.1", "550 5.1.1 no such user")); err != nil {
		t.Fatal(err)
	}
	if log2, _ := e.a.Logs.Message(ctx, &e.admin.Token, id); len(log2.Events) != len(log.Events) {
		t.Errorf("a repeated DSN added events: %d, then %d", len(log.Events), len(log2.Events))
	}
	// A plain (non-DSN) bounce counts too.
	c = e.dial(e.live)
	if _, err := send(c, "ann@example.com", []string{"old@example.org"}, "From: ann@example.com\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	m2 := e.relay.WaitMails(t, 2, 10*time.Second)[1]
	id2, _ := tokend.ReturnPathMessage(m2.From, bounceDomain)
	waitState(t, e, id2, tokend.MessageDelivered)
	plain := "From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program at mx.example.org.\r\n" +
		"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n<old@example.org>:\r\n" +
		"Remote host said: 550 5.2.1 The email account that you tried to reach is disabled.\r\n"
	if err := e.sendToMX(t, []string{m2.From}, plain); err != nil {
		t.Fatalf("the MX refused a plain bounce: %v", err)
	}
	waitState(t, e, id2, tokend.MessageFailed)
	if list, _ := e.a.Suppress.List(ctx, &e.admin.Token, "old@example.org"); len(list) != 1 {
		t.Errorf("a plain hard bounce suppressed %d, want 1", len(list))
	}
}

// The MX takes nothing but bounces for its own return paths: no relaying,
// no unknown return path, no message that is not a bounce, no AUTH.
func TestMXRefusesEverythingElse(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(e.live)
	if _, err := send(c, "ann@example.com", []string{"bob@example.org"}, "From: ann@example.com\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	m := e.relay.WaitMails(t, 1, 10*time.Second)[0]
	id, _ := tokend.ReturnPathMessage(m.From, bounceDomain)
	msg := dsn("x", "bob@example.org", "5.1.1", "550 5.1.1 no")
	wantReply(t, e.sendToMX(t, []string{"someone@example.org"}, msg), 550, "5.7.1")
	wantReply(t, e.sendToMX(t, []string{"bounces+00000000-0000-0000-0000-000000000000@" + bounceDomain}, msg), 550, "5.1.1")
	wantReply(t, e.sendToMX(t, []string{"postmaster@" + bounceDomain}, msg), 550, "5.1.1")
	outOfOffice := "From: bob@example.org\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
	wantReply(t, e.sendToMX(t, []string{m.From}, outOfOffice), 550, "5.6.0")
	mx, err := smtp.Dial(e.mx)
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	if err := mx.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := mx.Extension("AUTH"); ok {
		t.Error("the MX offers AUTH")
	}
	log, err := e.a.Logs.Message(context.Background(), &e.admin.Token, id)
	if err != nil || log.State == tokend.MessageFailed {
		t.Fatalf("refused mail changed the message: %+v, %v", log, err)
	}
}

func waitState(t *testing.T, e *env, id string, want tokend.MessageState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, err := e.a.Logs.Message(context.Background(), &e.admin.Token, id)
		if err == nil && log.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: %+v, %v; want state %s", id, log, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
