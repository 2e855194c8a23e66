package mail_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/testutil"
)

var date = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestComposeThenParse(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nfake image bytes")
	tests := []struct {
		name        string
		email       tokend.Email
		wantText    string
		wantHTML    string
		attachments []string // filename/disposition/type
	}{
		{"text only", tokend.Email{Text: "Hello\nsecond line"}, "Hello\r\nsecond line", "", nil},
		{"html only", tokend.Email{HTML: "<p>Hello</p>"}, "", "<p>Hello</p>", nil},
		{"text and html", tokend.Email{Text: "plain", HTML: "<b>rich</b>"}, "plain", "<b>rich</b>", nil},
		{"attachment", tokend.Email{Text: "see file", Attachments: []tokend.Attachment{
			{Filename: "report.csv", Content: []byte("a,b\n1,2\n"), Type: "text/csv", Disposition: "attachment"}}},
			"see file", "", []string{"report.csv/attachment/text/csv"}},
		{"inline image with html", tokend.Email{Text: "t", HTML: `<img src="cid:logo">`, Attachments: []tokend.Attachment{
			{Filename: "logo.png", Content: png, Type: "image/png", Disposition: "inline", ContentID: "logo"},
			{Filename: "terms.pdf", Content: []byte("%PDF-1.4"), Type: "application/pdf", Disposition: "attachment"}}},
			"t", `<img src="cid:logo">`, []string{"logo.png/inline/image/png", "terms.pdf/attachment/application/pdf"}},
		{"inline text attachments are not bodies", tokend.Email{HTML: "<p>hi</p>", Attachments: []tokend.Attachment{
			{Filename: "notes.txt", Content: []byte("my notes"), Type: "text/plain", Disposition: "inline"},
			{Filename: "part.html", Content: []byte("<i>x</i>"), Type: "text/html", Disposition: "inline", ContentID: "p1"}}},
			"", "<p>hi</p>", []string{"notes.txt/inline/text/plain", "part.html/inline/text/html"}},
		{"non-ASCII everywhere", tokend.Email{Subject: "Grüße – 日本", Text: "naïve café", Attachments: []tokend.Attachment{
			{Filename: "résumé.txt", Content: []byte("x"), Type: "text/plain; charset=utf-8", Disposition: "attachment"}}},
			"naïve café", "", []string{"résumé.txt/attachment/text/plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.email
			e.From = tokend.Address{Email: "sender@example.com", Name: "Sender Ñame"}
			e.To = []tokend.Address{{Email: "to@example.org", Name: "To"}}
			e.Cc = []tokend.Address{{Email: "cc@example.org"}}
			e.Bcc = []tokend.Address{{Email: "hidden@example.org"}}
			e.Headers = map[string]string{"X-Campaign": "winter", "X-SDK-Origin": "Grüße aus Köln"}
			if e.Subject == "" {
				e.Subject = "Subject line"
			}
			raw, err := mail.Composer{}.Compose(&e, date, "<id-1@example.com>")
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("hidden@example.org")) {
				t.Errorf("a Bcc recipient is written in the message:\n%s", raw)
			}
			p, err := mail.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tt.wantText || p.HasText != (tt.wantText != "") {
				t.Errorf("text = %q (%v), want %q", p.Text, p.HasText, tt.wantText)
			}
			if p.HTML != tt.wantHTML || p.HasHTML != (tt.wantHTML != "") {
				t.Errorf("html = %q (%v), want %q", p.HTML, p.HasHTML, tt.wantHTML)
			}
			var got []string
			for _, a := range p.Attachments {
				got = append(got, a.Filename+"/"+a.Disposition+"/"+a.ContentType)
			}
			if strings.Join(got, ",") != strings.Join(tt.attachments, ",") {
				t.Errorf("attachments = %v, want %v", got, tt.attachments)
			}
			for i, a := range p.Attachments {
				if !bytes.Equal(a.Content, e.Attachments[i].Content) || a.ID != int64(i+1) {
					t.Errorf("attachment %d = %q (id %d), want %q", i, a.Content, a.ID, e.Attachments[i].Content)
				}
			}
			if s, _ := p.Header.Subject(); s != e.Subject {
				t.Errorf("subject = %q, want %q", s, e.Subject)
			}
			from, _ := p.Header.AddressList("From")
			if len(from) != 1 || from[0].Address != "sender@example.com" || from[0].Name != "Sender Ñame" {
				t.Errorf("from = %v", from)
			}
			if id, _ := p.Header.MessageID(); id != "id-1@example.com" {
				t.Errorf("message id = %q", id)
			}
			if got := p.Header.Get("X-Campaign"); got != "winter" {
				t.Errorf("X-Campaign = %q", got)
			}
			if got, _ := p.Header.Text("X-Sdk-Origin"); got != "Grüße aus Köln" || !bytes.Contains(raw, []byte("\r\nX-SDK-Origin: ")) {
				t.Errorf("X-SDK-Origin = %q, or its name lost the caller's spelling", got)
			}
			if d, _ := p.Header.Date(); !d.Equal(date) {
				t.Errorf("date = %v", d)
			}
		})
	}
}

func newDelivery(t *testing.T) (*tokend.Delivery, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	e := tokend.Email{From: tokend.Address{Email: "a@example.com"}, To: []tokend.Address{{Email: "b@example.org"}},
		Subject: "Signed", Text: "body line\n", HTML: "<p>body</p>"}
	raw, err := mail.Composer{}.Compose(&e, date, "")
	if err != nil {
		t.Fatal(err)
	}
	return &tokend.Delivery{MessageID: "9a1b-42", Domain: "example.com", MailFrom: "a@example.com", Recipient: "b@example.org",
		Raw: raw, Selector: "sel1", Signer: key}, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
}

func verify(t *testing.T, msg []byte, record string) error {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if name != "sel1._domainkey.example.com" {
			return nil, errors.New("no such record " + name)
		}
		return []string{record}, nil
	}})
	if err != nil {
		return err
	}
	if len(vs) != 1 {
		t.Fatalf("%d signatures, want 1", len(vs))
	}
	if vs[0].Domain != "example.com" {
		t.Errorf("signed by %q", vs[0].Domain)
	}
	return vs[0].Err
}

func TestSignedMessageVerifies(t *testing.T) {
	del, record := newDelivery(t)
	msg, err := mail.Sign(del)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, msg, record); err != nil {
		t.Fatalf("signature does not verify: %v\n%s", err, msg)
	}
	if !bytes.Contains(msg, []byte("Message-ID: <9a1b-42@example.com>\r\n")) {
		t.Errorf("no stable Message-ID:\n%s", msg)
	}
	// The check can fail: a changed body no longer verifies.
	tampered := bytes.Replace(msg, []byte("body line"), []byte("body lime"), 1)
	if err := verify(t, tampered, record); err == nil {
		t.Error("a tampered message still verifies")
	}
}

func TestRelay(t *testing.T) {
	serverTLS, clientTLS, _ := testutil.TestTLS(t)
	tests := []struct {
		name     string
		opts     testutil.SMTPOptions
		scheme   string
		userinfo string
		wantTLS  bool
	}{
		{"plain", testutil.SMTPOptions{}, "smtp", "", false},
		{"starttls offered", testutil.SMTPOptions{TLS: serverTLS}, "smtp", "", true},
		{"implicit tls", testutil.SMTPOptions{TLS: serverTLS, Implicit: true}, "smtps", "", true},
		{"starttls and auth", testutil.SMTPOptions{TLS: serverTLS, User: "tokend", Password: "s3cret pass"}, "smtp", "tokend:s3cret%20pass@", true},
		{"auth on loopback without tls", testutil.SMTPOptions{User: "u", Password: "p"}, "smtp", "u:p@", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testutil.StartSMTP(t, tt.opts)
			r, err := mail.ParseRelay(tt.scheme+"://"+tt.userinfo+srv.Addr, mail.RelayOptions{TLS: clientTLS})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if strings.Contains(r.String(), "s3cret") {
				t.Errorf("String() shows the password: %s", r)
			}
			for i := range 3 { // the second and third reuse the connection
				if err := r.Send(context.Background(), "a@example.com", "b@example.org", []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			mails := srv.WaitMails(t, 3, 5*time.Second)
			for _, m := range mails {
				if m.From != "a@example.com" || len(m.To) != 1 || m.To[0] != "b@example.org" || m.TLS != tt.wantTLS {
					t.Errorf("relay got %+v, want a@example.com → b@example.org, TLS %v", m, tt.wantTLS)
				}
				if tt.opts.User != "" && m.User != tt.opts.User {
					t.Errorf("relay saw user %q", m.User)
				}
			}
		})
	}
}

func TestRelayRefusals(t *testing.T) {
	srv := testutil.StartSMTP(t, testutil.SMTPOptions{})
	r, err := mail.ParseRelay("smtp://"+srv.Addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	send := func() error {
		return r.Send(context.Background(), "a@example.com", "b@example.org", []byte("Subject: x\r\n\r\nhi\r\n"))
	}
	var perm *mail.PermanentError
	srv.Refuse(451, "try later")
	if err := send(); err == nil || errors.As(err, &perm) || !strings.Contains(err.Error(), "451") {
		t.Errorf("451: error %v, want a temporary error naming the code", err)
	}
	srv.Refuse(550, "no such user")
	var reply *tokend.RelayReply
	if err := send(); !errors.As(err, &perm) || !errors.As(err, &reply) || reply.Code != 550 || reply.Message != "no such user" ||
		!strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("550: error %v, want a permanent error with the reply", err)
	}
	srv.Refuse(0, "")
	if err := send(); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	// The relay restarts: the kept connection is dead, and a send goes
	// through on a fresh one without an error.
	srv.Stop()
	srv.Start(t)
	if err := send(); err != nil {
		t.Fatalf("after a relay restart: %v", err)
	}
	srv.Stop()
	if err := send(); err == nil || errors.As(err, &perm) {
		t.Errorf("relay down: error %v, want a temporary error", err)
	}
	if n := len(srv.Mails()); n != 2 {
		t.Errorf("relay accepted %d messages, want 2", n)
	}
}

func TestParseRelay(t *testing.T) {
	tests := []struct {
		url, want, err string
	}{
		{"smtp://relay.example:2525", "smtp://relay.example:2525", ""},
		{"smtp://relay.example", "smtp://relay.example:587", ""},
		{"smtps://user:hunter2@relay.example", "smtps://user:xxxxx@relay.example:465", ""},
		{"http://relay.example", "", "smtp:// or smtps://"},
		{"smtp://", "", "want smtp"},
		{"smtp://user:hunter2@relay.example/path", "", "want smtp"},
		{"smtp://user:hunter2@relay.example:bad port", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r, err := mail.ParseRelay(tt.url, mail.RelayOptions{})
			if err != nil {
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
				if tt.want != "" || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want %q / %q", err, tt.want, tt.err)
				}
				return
			}
			if r.String() != tt.want {
				t.Errorf("String() = %q, want %q", r.String(), tt.want)
			}
		})
	}
}

// A relay that takes the connection and never answers (an overloaded server,
// a firewall dropping packets) holds a delivery no longer than its context.
func TestRelayGivesUpOnASilentRelay(t *testing.T) {
	addr := testutil.Silent(t, "127.0.0.1:0")
	r, err := mail.ParseRelay("smtp://"+addr, mail.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = r.Send(ctx, "a@example.com", "b@example.org", []byte("Subject: x\r\n\r\nhi\r\n"))
	var perm *mail.PermanentError
	if err == nil || errors.As(err, &perm) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a temporary deadline error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Send took %v against a silent relay with a 500 ms context", took)
	}
}

// Whatever line breaks a caller's text, HTML or files hold, the message has
// CRLF pairs only, no line a relay could take for the end of the data, and
// every attachment in base64, whatever its type; text bodies keep their line
// breaks, as CRLF.
func TestComposeWritesOnlyCRLF(t *testing.T) {
	const breaks = "a\rb\nc\r.\r\nd\n.\ne\r\n.\r\nf\r\rg\n\nh.\r"
	const normalized = "a\r\nb\r\nc\r\n.\r\nd\r\n.\r\ne\r\n.\r\nf\r\n\r\ng\r\n\r\nh.\r\n"
	file := []byte("c\r.\r\n--XB\r\nContent-Type: text/html\r\n\r\n<b>injected</b>\n.\n\r\n.\r\n")
	tests := []struct {
		name      string
		email     tokend.Email
		wantTypes []string // the attachments' Content-Type as written
		wantText  string
		wantHTML  string
	}{
		{"text", tokend.Email{Text: breaks}, nil, normalized, ""},
		{"html", tokend.Email{HTML: "<p>" + breaks + "</p>"}, nil, "", "<p>" + normalized + "</p>"},
		{"text and html", tokend.Email{Text: breaks, HTML: breaks}, nil, normalized, normalized},
		{"long lines", tokend.Email{Text: strings.Repeat("x", 200) + "\r." + strings.Repeat("y", 200) + "\n."}, nil,
			strings.Repeat("x", 200) + "\r\n." + strings.Repeat("y", 200) + "\r\n.", ""},
		{"text attachment", tokend.Email{Text: "t", Attachments: []tokend.Attachment{
			{Filename: "a.txt", Content: file, Type: "text/plain", Disposition: "attachment"}}},
			[]string{"text/plain; name=a.txt"}, "t", ""},
		{"attachment types with parameters", tokend.Email{Text: "t", Attachments: []tokend.Attachment{
			{Filename: "a.txt", Content: file, Type: "text/plain; charset=iso-8859-1", Disposition: "attachment"},
			{Filename: "b.txt", Content: file, Type: "text/plain; format=flowed; charset=utf-8", Disposition: "attachment"},
			{Filename: "c.bin", Content: file, Type: `application/x-thing; note="a;b c"`, Disposition: "attachment"}}},
			[]string{"text/plain; charset=iso-8859-1; name=a.txt", "text/plain; charset=utf-8; format=flowed; name=b.txt",
				`application/x-thing; name=c.bin; note="a;b c"`}, "t", ""},
		{"inline html part", tokend.Email{HTML: "<img src=cid:x>", Attachments: []tokend.Attachment{
			{Filename: "x.html", Content: file, Type: "text/html", Disposition: "inline", ContentID: "x"}}},
			[]string{"text/html; name=x.html"}, "", "<img src=cid:x>"},
		// Validate refuses what follows; Compose never writes it raw either.
		{"multipart attachment", tokend.Email{Text: "t", Attachments: []tokend.Attachment{
			{Filename: "m", Content: file, Type: "multipart/mixed; boundary=XB", Disposition: "attachment"},
			{Filename: "r.eml", Content: file, Type: "message/rfc822", Disposition: "inline"}}},
			[]string{"application/octet-stream; name=m", "application/octet-stream; name=r.eml"}, "t", ""},
		{"line breaks in the subject", tokend.Email{Subject: "s\r.\r\nBcc: x@example.net\n.\n", Text: "t"}, nil, "t", ""},
		{"line breaks in a header", tokend.Email{Text: "t", Headers: map[string]string{"X-A": "1\r.\r\n", "X-B": "\r.\n"}}, nil, "t", ""},
		{"line breaks in names", tokend.Email{Text: "t", ReplyTo: &tokend.Address{Email: "r@example.com", Name: "r\r.\r\nBcc: x@example.net"},
			Attachments: []tokend.Attachment{{Filename: "f\r.\r\n", Content: file, Type: "text/plain", Disposition: "attachment"}}},
			[]string{"text/plain; name=\"=?utf-8?q?f=0D.=0D=0A?=\""}, "t", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.email
			e.From = tokend.Address{Email: "sender@example.com"}
			e.To = []tokend.Address{{Email: "to@example.org"}}
			if e.Subject == "" {
				e.Subject = "Subject"
			}
			raw, err := mail.Composer{}.Compose(&e, date, "<id-1@example.com>")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range mailtest.WireProblems(raw) {
				t.Errorf("%s in\n%q", p, raw)
			}
			p, err := mail.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if p.Text != tt.wantText || p.HTML != tt.wantHTML {
				t.Errorf("text %q html %q, want %q and %q", p.Text, p.HTML, tt.wantText, tt.wantHTML)
			}
			if len(p.Attachments) != len(tt.wantTypes) {
				t.Fatalf("%d attachments, want %d:\n%s", len(p.Attachments), len(tt.wantTypes), raw)
			}
			for i, a := range p.Attachments {
				if !bytes.Equal(a.Content, file) || a.TransferEncoding != "base64" {
					t.Errorf("attachment %d: %q in %q, want %q in base64", i, a.Content, a.TransferEncoding, file)
				}
				if want := "\r\nContent-Type: " + tt.wantTypes[i] + "\r\n"; !bytes.Contains(unfold(raw), []byte(want)) {
					t.Errorf("no %q in\n%s", want, raw)
				}
			}
		})
	}
}

// unfold joins folded header lines.
func unfold(raw []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n "), []byte(" ")), []byte("\r\n\t"), []byte("\t"))
}

type refusingSender struct{ err error }

func (s refusingSender) Send(ctx context.Context, from, to string, msg []byte) error { return s.err }

// A relay's refusal keeps its whole text for the record (and the sender,
// who may read it through the API), but logs without the recipient's address.
func TestDeliveryErrorsLogWithoutAddresses(t *testing.T) {
	payload, _ := json.Marshal(tokend.Notice{MailFrom: "no-reply@tokend.example", Recipient: "ann@example.org", Raw: []byte("Subject: x\r\n\r\nx\r\n")})
	for _, tt := range []struct {
		name      string
		err       error
		permanent bool
		logged    string
	}{
		{"refused", &mail.PermanentError{Err: errors.New("relay refused the message: 550 5.1.1 <ann@example.org>: Recipient address rejected")}, true,
			"relay refused the message: 550 5.1.1 <address>: Recipient address rejected"},
		{"deferred", errors.New("relay deferred the message: 450 4.2.2 ann@example.org mailbox full"), false,
			"relay deferred the message: 450 4.2.2 <address> mailbox full"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &mail.Dispatcher{Relay: refusingSender{tt.err}}
			err := d.DeliverNotice(context.Background(), tokend.Job{Kind: tokend.NoticeJob, Payload: payload})
			if err == nil || jobs.IsPermanent(err) != tt.permanent || err.Error() != tt.err.Error() {
				t.Fatalf("DeliverNotice = %v (permanent %v); want %q, permanent %v", err, jobs.IsPermanent(err), tt.err, tt.permanent)
			}
			var logs bytes.Buffer
			slog.New(slog.NewJSONHandler(&logs, nil)).Warn("delivery failed", "err", err)
			var line struct{ Err string }
			if json.Unmarshal(logs.Bytes(), &line) != nil || line.Err != tt.logged || strings.Contains(logs.String(), "ann@example.org") {
				t.Errorf("logged %s; want err %q", logs.String(), tt.logged)
			}
		})
	}
}
