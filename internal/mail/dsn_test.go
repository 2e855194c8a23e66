package mail_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tokend/tokend/internal/mail"
)

// Inline samples, for what the files in testdata/bounces don't show.
const (
	// A DSN forwarded inside a multipart/mixed, its delivery-status part in
	// base64 with lower-case names, tab-folded fields, a Status that is no
	// status code and no Action.
	nestedDSN = `From: Postmaster <postmaster@gateway.example.net>
Subject: Fwd: Returned mail
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

See the report below.

--outer
Content-Type: multipart/report; report-type=delivery-status; boundary=inner

--inner
Content-Type: text/plain

Delivery failed.

--inner
Content-Type: message/delivery-status
Content-Transfer-Encoding: base64

` + "cmVwb3J0aW5nLW10YTogZG5zOyBnYXRld2F5LmV4YW1wbGUubmV0CgpmaW5hbC1yZWNpcGllbnQ6\n" +
		"IHJmYzgyMjsKCTxzcGFtbXlAZXhhbXBsZS5vcmc+CnN0YXR1czogNS4xCmRpYWdub3N0aWMtY29k\n" +
		"ZTogc210cDsgNTU0IDUuNy4xIDxzcGFtbXlAZXhhbXBsZS5vcmc+OgoJUmVsYXkgYWNjZXNzIGRl\n" +
		"bmllZAo=\n" + `
--inner--

--outer--
`
	// Groups with the bare minimum: a 4xx reply code and nothing else; an
	// Original-Recipient only; a Status with a comment.
	sparseDSN = `From: MAILER-DAEMON@relay.example.net
Content-Type: multipart/report; report-type=delivery-status; boundary=b

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.net

Final-Recipient: rfc822; later@example.org
Diagnostic-Code: smtp; 451 Temporary local problem - please try later

Original-Recipient: rfc822; <orig@example.org>
Action: FAILED

Final-Recipient: rfc822; commented@example.org
Status: 5.7.26 (unauthenticated mail is prohibited)
Diagnostic-Code: X-Postfix; host said: 550-5.7.26 This mail is
	unauthenticated 550 5.7.26 https://support.google.com/mail/answer/81126

--b--
`
	// A delivery-status part with only its per-message group.
	noRecipientDSN = `From: MAILER-DAEMON@relay.example.net
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary=b

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.net
Arrival-Date: Tue, 1 Dec 2026 10:00:03 +0000

--b--
`
	// Exim's plain bounce (without DSN support) copies the original message
	// under its own text, which says no code.
	eximPlain = `From: Mail Delivery System <Mailer-Daemon@old.example.net>
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  lost@example.org
    all relevant MX records point to non-existent hosts

------ This is a copy of the message, including all the headers. ------

From: Example Shop <news@shop.example.com>
To: lost@example.org

421 4.7.0 try again later
`
	// A plain bounce in HTML only.
	htmlPlain = `From: "Mail Delivery System" <mailer-daemon@mail.example.net>
Subject: Delivery failure
Content-Type: text/html; charset=utf-8

<html><head><style>td { width: 450px; }</style></head><body>
<p>Your message to <b>&lt;ann@example.org&gt;</b> could not be delivered.</p>
<p>The server said:<br><code>550&nbsp;5.4.1 Recipient address rejected: Access denied</code></p>
</body></html>
`
)

func TestParseBounce(t *testing.T) {
	failed := func(rcpt, status string, code int, diag, mta string) mail.BounceRecipient {
		return mail.BounceRecipient{Recipient: rcpt, Action: "failed", Status: status, Code: code, Diagnostic: diag, RemoteMTA: mta}
	}
	dsn := func(r ...mail.BounceRecipient) *mail.Bounce { return &mail.Bounce{DSN: true, Recipients: r} }
	plain := func(r mail.BounceRecipient) *mail.Bounce { return &mail.Bounce{Recipients: []mail.BounceRecipient{r}} }
	tests := []struct {
		name string
		raw  string // the message, unless read from testdata/bounces/<name>.eml
		file bool
		want *mail.Bounce
	}{
		{name: "postfix", file: true, want: dsn(failed("nobody@example.org", "5.1.1", 550,
			"550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table", "mx.example.org"))},
		// Exim's Status is 5.0.0 whatever happened; the diagnostic says more.
		{name: "exim", file: true, want: dsn(failed("gone@example.org", "5.2.1", 550,
			"550 5.2.1 <gone@example.org>: mailbox disabled", "mx.example.org"))},
		{name: "gmail", file: true, want: dsn(failed("no.such.user@gmail.com", "5.1.1", 550,
			"550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, 550 5.1.1 go to https://support.google.com/mail/?p=NoSuchUser a640c23a62f3a-ab7c1d2e3f4si123456.789 - gsmtp",
			"gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1a, the server for the domain gmail.com.)"))},
		{name: "exchange", file: true, want: dsn(failed("jane.doe@contoso.com", "5.1.10", 550,
			"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", ""))},
		{name: "sendmail-delayed", file: true, want: dsn(mail.BounceRecipient{Recipient: "slow@example.org", Action: "delayed", Status: "4.4.7", RemoteMTA: "mx.example.org"})},
		{name: "two-recipients", file: true, want: dsn(
			mail.BounceRecipient{Recipient: "alice@example.org", Action: "delivered", Status: "2.0.0", Code: 250,
				Diagnostic: "250 2.0.0 Ok: queued as 4R7kLm2n3p", RemoteMTA: "mx.example.org"},
			failed("bob@example.org", "5.2.2", 552, "552 5.2.2 <bob@example.org>: Mailbox full", "mx.example.org"))},
		{name: "global", file: true, want: dsn(failed("josé@exämple.org", "5.1.1", 550,
			"550 5.1.1 <josé@exämple.org>: Recipient address rejected: User unknown", "mx.exämple.org"))},
		{name: "nested, base64, lower-case names, bad status", raw: nestedDSN, want: dsn(failed("spammy@example.org", "5.7.1", 554,
			"554 5.7.1 <spammy@example.org>: Relay access denied", ""))},
		{name: "sparse groups", raw: sparseDSN, want: dsn(
			mail.BounceRecipient{Recipient: "later@example.org", Action: "delayed", Status: "4.0.0", Code: 451,
				Diagnostic: "451 Temporary local problem - please try later"},
			mail.BounceRecipient{Recipient: "orig@example.org", Action: "failed", Status: "5.0.0"},
			failed("commented@example.org", "5.7.26", 550,
				"host said: 550-5.7.26 This mail is unauthenticated 550 5.7.26 https://support.google.com/mail/answer/81126", ""))},
		{name: "qmail", file: true, want: plain(failed("user@example.org", "5.1.1", 550,
			"Remote host said: 550 5.1.1 <user@example.org>: Recipient address rejected: User unknown", ""))},
		{name: "sendmail-550", file: true, want: plain(failed("olduser@example.org", "5.0.0", 550,
			"(reason: 550 Requested action not taken: mailbox unavailable)", ""))},
		{name: "spoofed-original", file: true, want: plain(mail.BounceRecipient{Recipient: "full@example.org", Action: "delayed", Status: "4.2.2", Code: 452,
			Diagnostic: "Reason: 452 4.2.2 Mailbox full. The message will be retried for up to 3 days."})},
		{name: "exim plain, code only in the copy", raw: eximPlain, want: plain(failed("lost@example.org", "5.0.0", 0, "", ""))},
		{name: "html only", raw: htmlPlain, want: plain(failed("ann@example.org", "5.4.1", 550,
			"550 5.4.1 Recipient address rejected: Access denied", ""))},
		{name: "dsn without recipients", raw: noRecipientDSN},
		{name: "out-of-office", file: true},
		{name: "ordinary", file: true},
		{name: "garbage", raw: "\x00\xff\xfe garbage \x1b[0m\n\n550 5.1.1"},
		{name: "no header", raw: "\n550 5.1.1 <x@example.org>: no such user\n"},
		{name: "empty", raw: ""},
	}
	// Every sample is read with LF line endings, as stored, and with CRLF.
	for _, tt := range tests {
		raw := tt.raw
		if tt.file {
			raw = sample(t, tt.name)
		}
		for _, crlf := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/crlf=%t", tt.name, crlf), func(t *testing.T) {
				in := raw
				if crlf {
					in = strings.ReplaceAll(raw, "\n", "\r\n")
				}
				got, err := mail.ParseBounce([]byte(in))
				if tt.want == nil {
					if !errors.Is(err, mail.ErrNotBounce) {
						t.Fatalf("ParseBounce = %+v, %v; want ErrNotBounce", got, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ParseBounce =\n%+v\nwant\n%+v", got, tt.want)
				}
			})
		}
	}
}

func TestParseBounceLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: MAILER-DAEMON@relay.example.net\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.net\n")
	for i := range 150 {
		fmt.Fprintf(&b, "\nFinal-Recipient: rfc822; r%d@example.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 %s\n", i, strings.Repeat("x", 2000))
	}
	b.WriteString("--b--\n")
	got, err := mail.ParseBounce([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Recipients) != 100 || got.Recipients[99].Recipient != "r99@example.org" {
		t.Fatalf("%d recipients, the last %+v; want the first 100", len(got.Recipients), got.Recipients[len(got.Recipients)-1])
	}
	if d := got.Recipients[0].Diagnostic; len(d) != 1000 || !strings.HasPrefix(d, "550 5.1.1 xxx") {
		t.Errorf("diagnostic of %d bytes %.20q..., want the first 1000", len(d), d)
	}

	// A diagnostic cut in the middle of a character keeps the whole ones.
	got, err = mail.ParseBounce([]byte("Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.org\nDiagnostic-Code: smtp; 550 x" + strings.Repeat("é", 600) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Recipients[0].Diagnostic; len(d) != 999 || !utf8.ValidString(d) {
		t.Errorf("diagnostic of %d bytes, valid UTF-8 %t; want 999 bytes of whole characters", len(d), utf8.ValidString(d))
	}

	// Parts past the 64th are not read.
	b.Reset()
	b.WriteString("From: MAILER-DAEMON@relay.example.net\nContent-Type: multipart/mixed; boundary=b\n\n")
	for range 70 {
		b.WriteString("--b\nContent-Type: image/png\n\nx\n")
	}
	b.WriteString("--b\nContent-Type: text/plain\n\n550 5.1.1 late@example.org\n--b--\n")
	got, err = mail.ParseBounce([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if want := (mail.BounceRecipient{Action: "failed", Status: "5.0.0"}); got.DSN || len(got.Recipients) != 1 || got.Recipients[0] != want {
		t.Errorf("got %+v; want one recipient %+v", got, want)
	}
}

func sample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "bounces", name+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var wellFormedStatus = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)

// FuzzParseBounce: nothing panics; an error is ErrNotBounce; a bounce reports
// 1 to 100 recipients (exactly one when it is no DSN), each with an action of
// RFC 3464, a well-formed status, a reply code or 0, and strings of one line
// of valid UTF-8 of at most 1000 bytes.
func FuzzParseBounce(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "bounces", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no samples: %v", err)
	}
	for _, name := range files {
		s := sample(f, strings.TrimSuffix(filepath.Base(name), ".eml"))
		f.Add([]byte(s))
		f.Add([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	}
	for _, s := range []string{nestedDSN, sparseDSN, noRecipientDSN, eximPlain, htmlPlain, "", "\x00\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := mail.ParseBounce(raw)
		if err != nil {
			if !errors.Is(err, mail.ErrNotBounce) || b != nil {
				t.Fatalf("ParseBounce = %+v, %v; want nil, ErrNotBounce", b, err)
			}
			return
		}
		if n := len(b.Recipients); n == 0 || n > 100 || !b.DSN && n != 1 {
			t.Fatalf("%d recipients (DSN %t)", n, b.DSN)
		}
		for _, r := range b.Recipients {
			switch r.Action {
			case "failed", "delayed", "delivered", "relayed", "expanded":
			default:
				t.Fatalf("action %q", r.Action)
			}
			if !wellFormedStatus.MatchString(r.Status) {
				t.Fatalf("status %q", r.Status)
			}
			if r.Code != 0 && (r.Code < 200 || r.Code > 559) {
				t.Fatalf("code %d", r.Code)
			}
			for _, s := range []string{r.Recipient, r.Diagnostic, r.RemoteMTA} {
				if len(s) > 1000 || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
					t.Fatalf("%d bytes, not one line of UTF-8: %q", len(s), s)
				}
			}
		}
	})
}
