// Package mail turns tokend's emails into Internet messages and delivers
// them: MIME building and parsing (go-message), DKIM signing (go-msgauth),
// and an SMTP relay client (go-smtp) with the outbox dispatcher around it.
package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/tokend/tokend"
)

// Composer renders tokend emails as MIME messages; it implements tokend.Composer.
type Composer struct{}

var _ tokend.Composer = Composer{}

// Compose renders e: a text and/or HTML body (multipart/alternative when both),
// inline attachments with the HTML (multipart/related), other attachments
// beside the body (multipart/mixed). Bcc recipients are never written.
func (Composer) Compose(e *tokend.Email, date time.Time, messageID string) ([]byte, error) {
	// go-message puts each field it is given above the ones before, so the
	// fields go in last to first.
	var h gomail.Header
	names := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		if !equalFold(k, "Content-Transfer-Encoding") { // chosen per part by tokend
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range slices.Backward(names) {
		f, err := customField(k, e.Headers[k])
		if err != nil {
			return nil, fmt.Errorf("compose: header %s: %w", k, err)
		}
		h.AddRaw(f)
	}
	if messageID != "" {
		h.Set("Message-ID", messageID)
	}
	h.SetSubject(e.Subject)
	if len(e.Cc) > 0 {
		h.SetAddressList("Cc", addrs(e.Cc))
	}
	if len(e.To) > 0 {
		h.SetAddressList("To", addrs(e.To))
	}
	if e.ReplyTo != nil {
		h.SetAddressList("Reply-To", []*gomail.Address{addr(*e.ReplyTo)})
	}
	h.SetAddressList("From", []*gomail.Address{addr(e.From)})
	h.SetDate(date)

	var inline, attached []tokend.Attachment
	for _, a := range e.Attachments {
		if a.Disposition == "inline" {
			inline = append(inline, a)
		} else {
			attached = append(attached, a)
		}
	}
	var buf bytes.Buffer
	buf.Grow(len(e.Text) + len(e.HTML) + 2048)
	root := body(e, inline)
	if len(attached) > 0 {
		parts := []part{root}
		for _, a := range attached {
			parts = append(parts, attachmentPart(a))
		}
		root = part{mediaType: "multipart/mixed", children: parts}
	}
	h.Set("MIME-Version", "1.0")
	if err := root.write(&buf, h.Header); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	// Every part is encoded, so this never happens; it is checked, not
	// assumed, as a bare CR or LF is how a message ends the SMTP data early
	// on relays that read one as a line break.
	if i := bareLineBreak(buf.Bytes()); i >= 0 {
		return nil, fmt.Errorf("compose: a bare CR or LF at byte %d", i)
	}
	return buf.Bytes(), nil
}

// customField renders a caller's header field as go-message would (encoded
// and folded) but with the name spelled as the caller spelled it.
func customField(name, value string) ([]byte, error) {
	var tmp message.Header
	tmp.SetText(name, value)
	f := tmp.Fields()
	f.Next()
	raw, err := f.Raw()
	if err != nil {
		return nil, err
	}
	return append([]byte(name), raw[len(f.Key()):]...), nil
}

// part is one entity of the tree Compose writes. Compose writes the tree
// itself, every leaf in quoted-printable (the bodies) or base64 (the
// attachments), rather than through go-message's writer, which writes a part
// typed multipart/* unencoded and refuses charsets other than UTF-8.
type part struct {
	contentType string                  // of a leaf, with its parameters
	header      func(h *message.Header) // extra fields of a leaf
	content     []byte
	encoding    string // of a leaf: quoted-printable or base64
	mediaType   string // of a multipart entity
	children    []part
}

func body(e *tokend.Email, inline []tokend.Attachment) part {
	var alt []part
	if e.Text != "" {
		alt = append(alt, textPart("text/plain", e.Text))
	}
	if e.HTML != "" {
		alt = append(alt, textPart("text/html", e.HTML))
	}
	b := alt[0]
	if len(alt) > 1 {
		b = part{mediaType: "multipart/alternative", children: alt}
	}
	if len(inline) == 0 {
		return b
	}
	related := []part{b}
	for _, a := range inline {
		related = append(related, attachmentPart(a))
	}
	return part{mediaType: "multipart/related", children: related}
}

func textPart(mediaType, text string) part {
	return part{contentType: mediaType + "; charset=utf-8", content: crlf(text), encoding: "quoted-printable"}
}

// crlf returns s with each line break (CRLF, a bare CR, a bare LF) as CRLF.
func crlf(s string) []byte {
	out := make([]byte, 0, len(s)+len(s)/32)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// attachmentPart writes an attachment in base64 with its type as Validate
// left it; a type Validate would refuse (it did not see this one) is written
// as application/octet-stream, never as a multipart or message entity.
func attachmentPart(a tokend.Attachment) part {
	name := mime.QEncoding.Encode("utf-8", a.Filename) // as go-message writes the filename
	mt, params, err := mime.ParseMediaType(a.Type)
	major, _, _ := strings.Cut(mt, "/")
	if err != nil || !strings.Contains(mt, "/") || major == "multipart" || major == "message" {
		mt, params = "application/octet-stream", map[string]string{}
	}
	params["name"] = name
	ct := mime.FormatMediaType(mt, params)
	if ct == "" {
		ct = mime.FormatMediaType("application/octet-stream", map[string]string{"name": name})
	}
	return part{
		contentType: ct, content: a.Content, encoding: "base64",
		header: func(h *message.Header) {
			h.SetContentDisposition(a.Disposition, map[string]string{"filename": a.Filename})
			if a.ContentID != "" {
				h.Set("Content-ID", "<"+a.ContentID+">")
			}
		},
	}
}

// write writes p with the fields of top (the message's own) above its own.
func (p part) write(w io.Writer, top message.Header) error {
	h := top.Copy()
	boundary := p.fields(&h)
	if err := textproto.WriteHeader(w, h.Header); err != nil {
		return err
	}
	return p.writeBody(w, boundary)
}

// fields sets p's own fields in h; for a multipart entity, it returns the
// boundary it chose.
func (p part) fields(h *message.Header) string {
	if p.children == nil {
		h.Set("Content-Type", p.contentType)
		h.Set("Content-Transfer-Encoding", p.encoding)
		if p.header != nil {
			p.header(h)
		}
		return ""
	}
	// "=_" never occurs in quoted-printable or base64 text, so no content
	// can hold the boundary.
	boundary := "=_" + rand.Text()
	h.SetContentType(p.mediaType, map[string]string{"boundary": boundary})
	return boundary
}

// writeBody writes p's body: its content encoded, or its children between
// boundaries.
func (p part) writeBody(w io.Writer, boundary string) error {
	if p.children == nil {
		switch p.encoding {
		case "base64":
			return writeBase64(w, p.content)
		case "quoted-printable":
			qp := quotedprintable.NewWriter(w)
			if _, err := qp.Write(p.content); err != nil {
				return err
			}
			return qp.Close()
		}
		return fmt.Errorf("unknown transfer encoding %q", p.encoding)
	}
	mw := textproto.NewMultipartWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	for _, c := range p.children {
		var h message.Header
		b := c.fields(&h)
		cw, err := mw.CreatePart(h.Header)
		if err != nil {
			return err
		}
		if err := c.writeBody(cw, b); err != nil {
			return err
		}
	}
	return mw.Close()
}

// writeBase64 writes b in base64, in lines of 76 characters.
func writeBase64(w io.Writer, b []byte) error {
	const perLine = 57 // bytes a 76-character line holds
	buf := make([]byte, 0, 64*(76+2))
	for len(b) > 0 {
		buf = buf[:0]
		for i := 0; i < 64 && len(b) > 0; i++ {
			n := min(perLine, len(b))
			buf = base64.StdEncoding.AppendEncode(buf, b[:n])
			if b = b[n:]; len(b) > 0 {
				buf = append(buf, '\r', '\n')
			}
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// bareLineBreak returns the index of the first CR or LF in b outside a
// CRLF pair, or -1.
func bareLineBreak(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 == len(b) || b[i+1] != '\n' {
				return i
			}
			i++
		case '\n':
			return i
		}
	}
	return -1
}

func addr(a tokend.Address) *gomail.Address { return &gomail.Address{Name: a.Name, Address: a.Email} }

func addrs(list []tokend.Address) []*gomail.Address {
	out := make([]*gomail.Address, len(list))
	for i, a := range list {
		out[i] = addr(a)
	}
	return out
}

func equalFold(a, b string) bool { return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b)) }
