package api

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/mailtest"
)

// FuzzEmailBody runs a send body through what the send route does before the
// store: decode, toEmail, Validate, Compose. Nothing panics; a refused body is
// an invalid *tokend.Error naming a field (or the body cap); an accepted one
// has no multipart or message attachment type, and renders to a message that
// parses back with its subject, bodies and attachments (as many as were
// given, each with its content), whose header holds no line a client wrote
// (no injected Bcc), which names no Bcc recipient, and which is fit for the
// wire (mailtest.WireProblems): CRLF pairs only, no line a relay could take
// for the end of the data, every attachment in base64.
func FuzzEmailBody(f *testing.F) {
	for _, seed := range []string{
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org","name":"B"}],"subject":"Hi","text":"t"}`,
		`{"from":{"email":"a@example.com","name":"Ann \"A\""},"cc":[{"email":"c@example.org"}],"bcc":[{"email":"hidden@example.org"}],"subject":"Grüße","html":"<p>x</p>","text":"x"}`,
		`{"from":"a@example.com","to":[{"email":"b@example.org"}],"subject":"S","text":"t","headers":{"X-A":"1"},"reply_to":{"email":"r@example.com"}}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","attachments":[{"filename":"a.txt","content":"aGk=","disposition":"inline","content_id":"x"}]}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S\r\nBcc: evil@example.net","text":"t"}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","headers":{"X-A":"1\r\nBcc: evil@example.net"}}`,
		`{"from":{"email":"a@example.com","name":"x\nBcc: evil@example.net"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t"}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","attachments":[{"filename":"x\r\nBcc: evil@example.net","content":"aGk="}]}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","custom_variables":{"k":"v"},"category":"c"}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"a\rb\nc\r.\r\nd\n.\n","html":"\r.\r\n<p>\n.\r</p>"}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","attachments":[{"filename":"x","type":"multipart/mixed; boundary=XB","content":"Yw0uDQotLVhCDQoNCng="}]}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","attachments":[{"filename":"x.eml","content":"Yw0uDQp4"},{"filename":"y.txt","type":"text/plain; charset=iso-8859-1","content":"Yw0uDQp4"}]}`,
		`{"from":{"email":"a@example.com"},"to":[{"email":"b@example.org"}],"subject":"S","text":"t","headers":{"ARC-Seal":"i=1","Received":"x"}}`,
		`{}`, `[]`, `null`, `{"to":"x"}`, `{"attachments":[{"content":7}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/api/send", bytes.NewReader(body))
		var in emailJSON
		err := decodeLimit(httptest.NewRecorder(), r, &in, maxSendBody)
		var e *tokend.Email
		if err == nil {
			e, err = in.toEmail()
		}
		if err == nil {
			err = e.Validate()
		}
		if err != nil {
			var te *tokend.Error
			var tooBig *http.MaxBytesError
			if !errors.As(err, &tooBig) && (!errors.As(err, &te) || te.Code != tokend.EINVALID || len(te.Fields) == 0) {
				t.Fatalf("%s: error %#v is not an invalid *tokend.Error naming a field", body, err)
			}
			return
		}
		for i, a := range e.Attachments {
			if mt, _, _ := mime.ParseMediaType(a.Type); strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
				t.Fatalf("%s: attachment %d accepted with the type %q", body, i, a.Type)
			}
		}
		raw, err := mail.Composer{}.Compose(e, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "<id@example.com>")
		if err != nil {
			t.Fatalf("%s: accepted but not composed: %v", body, err)
		}
		if problems := mailtest.WireProblems(raw); len(problems) > 0 {
			t.Fatalf("%s: the message is not fit for the wire: %v\n%q", body, problems, raw)
		}
		head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(head), "\r\n") {
			if name, _, _ := strings.Cut(line, ":"); strings.EqualFold(strings.TrimSpace(name), "bcc") {
				t.Fatalf("%s: the message has a Bcc header:\n%s", body, head)
			}
		}
		for _, b := range e.Bcc {
			if b.Email != "" && bytes.Contains(raw, []byte(b.Email)) && !containsVisible(e, b.Email) {
				t.Fatalf("%s: the Bcc recipient %s is in the message", body, b.Email)
			}
		}
		p, err := mail.Parse(raw)
		if err != nil {
			t.Fatalf("%s: composed message does not parse: %v\n%s", body, err, raw)
		}
		if s, _ := p.Header.Subject(); s != e.Subject {
			t.Fatalf("%s: subject %q came back as %q", body, e.Subject, s)
		}
		if e.HTML != "" && !p.HasHTML || e.Text != "" && !p.HasText {
			t.Fatalf("%s: a body went missing", body)
		}
		if len(p.Attachments) != len(e.Attachments) {
			t.Fatalf("%s: %d attachments came back as %d", body, len(e.Attachments), len(p.Attachments))
		}
		for i, a := range p.Attachments {
			if !bytes.Equal(a.Content, e.Attachments[i].Content) {
				t.Fatalf("%s: attachment %d came back as %q", body, i, a.Content)
			}
		}
	})
}

// containsVisible reports whether addr is also a From, To, Cc or Reply-To
// address, or appears in the content, where it may rightly show.
func containsVisible(e *tokend.Email, addr string) bool {
	all := append(append([]tokend.Address{e.From}, e.To...), e.Cc...)
	if e.ReplyTo != nil {
		all = append(all, *e.ReplyTo)
	}
	for _, a := range all {
		if strings.Contains(a.Email, addr) || strings.Contains(a.Name, addr) {
			return true
		}
	}
	for _, s := range []string{e.Subject, e.Text, e.HTML, e.Category} {
		if strings.Contains(s, addr) {
			return true
		}
	}
	for k, v := range e.Headers {
		if strings.Contains(k+v, addr) {
			return true
		}
	}
	for _, a := range e.Attachments {
		if strings.Contains(a.Filename+string(a.Content)+a.ContentID, addr) {
			return true
		}
	}
	return false
}
