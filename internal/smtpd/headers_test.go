package smtpd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// A submitted message is held to the send API's header rules: no fields
// that receivers trust (authentication results, ARC sets, resent fields),
// none of tokend's own, no signature of its own (tokend signs), no line
// that is not a field, the fields a message has once given once, a Sender
// on the author's domain, a well-formed Message-ID and a subject of at most
// 998 characters. Each is refused with 550 5.6.0 naming the field, and
// nothing is relayed.
func TestSubmissionHeaderRules(t *testing.T) {
	e := newEnv(t, nil)
	const from = "From: ann@example.com\r\n"
	const rest = "To: bob@example.org\r\nSubject: hi\r\n\r\nhi\r\n"
	cases := []struct {
		name, header, contains string
	}{
		{"authentication results", "Authentication-Results: mx.example.org; dkim=pass header.d=paypal.com\r\n", "Authentication-Results is a reserved header that mail servers add"},
		{"received SPF", "Received-SPF: pass\r\n", "Received-SPF is a reserved header"},
		{"an ARC set", "ARC-Seal: i=1; a=rsa-sha256; d=paypal.com; s=x; cv=none; b=AAAA\r\n", "ARC-Seal is a reserved header"},
		{"resent fields", "Resent-From: ceo@paypal.com\r\n", "Resent-From is a reserved header"},
		{"delivered-to", "Delivered-To: bob@example.org\r\n", "Delivered-To is a reserved header"},
		{"tokend's own fields", "X-Tokend-Account: 1\r\n", "X-Tokend-Account is a reserved header"},
		{"a signature of another domain", "DKIM-Signature: v=1; a=rsa-sha256; d=paypal.com; s=s1; h=from; bh=AAAA; b=AAAA\r\n", "DKIM-Signature is added by tokend"},
		{"an mbox From line", "From ceo@evil.example Mon Dec  7 00:00:00 2026\r\n", "is not a header field"},
		{"two categories", "X-MT-Category: a\r\nX-MT-Category: b\r\n", "X-MT-Category must appear once"},
		{"two Message-IDs", "Message-ID: <a@example.com>\r\nMessage-ID: <b@example.com>\r\n", "Message-ID must appear once"},
		{"an empty Message-ID", "Message-ID: \r\n", "Message-ID must be one message id"},
		{"a Sender of another domain", "Sender: ceo@other.example.net\r\n", "Sender must be on the From address's domain, example.com"},
		{"a subject over 998 characters", "Subject: " + strings.Repeat("word ", 150) + "\r\n " + strings.Repeat("more ", 100) + "\r\n", "Subject is too long (maximum is 998 characters)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := from + tc.header + rest
			if strings.HasPrefix(tc.header, "Subject:") {
				msg = from + tc.header + "To: bob@example.org\r\n\r\nhi\r\n"
			}
			_, err := send(e.dial(e.live), "ann@example.com", []string{"bob@example.org"}, msg)
			se := wantReply(t, err, 550, "5.6.0")
			if !strings.Contains(se.Message, tc.contains) {
				t.Errorf("reply %q does not say %q", se.Message, tc.contains)
			}
		})
	}
	if n := len(e.relay.Mails()); n != 0 {
		t.Errorf("%d refused messages were relayed", n)
	}
}

// What the rules let through goes on: a Received trace field that a mail
// server in front of tokend added, a Sender on the author's domain, and
// custom variables as Mailtrap's SDKs write them (numbers and booleans too,
// kept as text, as the API keeps them).
func TestSubmissionHeadersKept(t *testing.T) {
	e := newEnv(t, nil)
	msg := "Received: from app.internal (app.internal [10.0.0.5]) by relay.internal; Sun, 6 Dec 2026 10:00:00 +0000\r\n" +
		"From: ann@example.com\r\nSender: mailer@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n" +
		"X-MT-Custom-Variables: {\"user_id\": 42, \"ok\": true, \"plan\": \"pro\"}\r\n\r\nhi\r\n"
	if _, err := send(e.dial(e.live), "ann@example.com", []string{"bob@example.org"}, msg); err != nil {
		t.Fatal(err)
	}
	m := e.relay.WaitMails(t, 1, 10*time.Second)[0]
	for _, want := range []string{"Received: from app.internal", "Sender: mailer@example.com"} {
		if !strings.Contains(string(m.Data), want) {
			t.Errorf("relayed message lacks %q:\n%s", want, m.Data)
		}
	}
	page, err := e.a.Logs.List(context.Background(), &e.admin.Token, tokend.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 {
		t.Fatalf("%d messages logged", len(page.Messages))
	}
	got := page.Messages[0].Email.CustomVariables
	if got["user_id"] != "42" || got["ok"] != "true" || got["plan"] != "pro" {
		t.Errorf("custom variables logged as %v", got)
	}
}

// The logs show the Message-ID each copy went out with: the sender's own
// when the message had one, tokend's per copy when it had none.
func TestSubmissionLogsTheMessageIDSent(t *testing.T) {
	e := newEnv(t, nil)
	own := "From: ann@example.com\r\nTo: bob@example.org\r\nMessage-ID: <my-own-id@client.example>\r\nSubject: own\r\n\r\nhi\r\n"
	if _, err := send(e.dial(e.live), "ann@example.com", []string{"bob@example.org", "carl@example.org"}, own); err != nil {
		t.Fatal(err)
	}
	if _, err := send(e.dial(e.live), "ann@example.com", []string{"dan@example.org"}, "From: ann@example.com\r\nSubject: none\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	sent := map[string]string{} // recipient: the Message-ID relayed
	for _, m := range e.relay.WaitMails(t, 3, 10*time.Second) {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if v, ok := strings.CutPrefix(line, "Message-ID: "); ok {
				sent[m.To[0]] = v
			}
		}
	}
	page, err := e.a.Logs.List(context.Background(), &e.admin.Token, tokend.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 3 {
		t.Fatalf("%d messages logged, want 3", len(page.Messages))
	}
	for _, l := range page.Messages {
		if got, want := l.RFCMessageID(), sent[l.Recipient]; got != want || want == "" {
			t.Errorf("log of %s says Message-ID %q; %q was sent", l.Recipient, got, want)
		}
	}
	if sent["bob@example.org"] != "<my-own-id@client.example>" {
		t.Errorf("the sender's Message-ID went out as %q", sent["bob@example.org"])
	}
}
