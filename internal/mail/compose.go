// Package mail turns tokend's emails into Internet messages and delivers
// them: MIME building and parsing (go-message), DKIM signing (go-msgauth),
// and an SMTP relay client (go-smtp) with the outbox dispatcher around it.
package mail

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"slices"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

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
	if err := root.write(&buf, h.Header); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
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

// part is one entity of the tree Compose writes.
type part struct {
	mediaType string
	params    map[string]string
	header    func(h *message.Header) // extra fields of a leaf
	content   []byte
	encoding  string // of a leaf: quoted-printable or base64
	children  []part
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
	return part{mediaType: mediaType, params: map[string]string{"charset": "utf-8"}, content: []byte(text), encoding: "quoted-printable"}
}

func attachmentPart(a tokend.Attachment) part {
	mt, params, err := mime.ParseMediaType(a.Type)
	if err != nil {
		mt, params = "application/octet-stream", map[string]string{}
	}
	params["name"] = a.Filename
	return part{
		mediaType: mt, params: params, content: a.Content, encoding: "base64",
		header: func(h *message.Header) {
			h.SetContentDisposition(a.Disposition, map[string]string{"filename": a.Filename})
			if a.ContentID != "" {
				h.Set("Content-ID", "<"+a.ContentID+">")
			}
		},
	}
}

// write writes p with top-level fields top (the message's own) to w.
func (p part) write(w io.Writer, top message.Header) error {
	h := top
	mw, err := message.CreateWriter(w, p.headerOf(h))
	if err != nil {
		return err
	}
	return p.fill(mw)
}

func (p part) headerOf(h message.Header) message.Header {
	h.SetContentType(p.mediaType, p.params)
	if p.children == nil {
		h.Set("Content-Transfer-Encoding", p.encoding)
		if p.header != nil {
			p.header(&h)
		}
	}
	return h
}

// fill writes p's body into mw, which was created with p's header.
func (p part) fill(mw *message.Writer) error {
	if p.children == nil {
		if _, err := mw.Write(p.content); err != nil {
			return err
		}
		return mw.Close()
	}
	for _, c := range p.children {
		cw, err := mw.CreatePart(c.headerOf(message.Header{}))
		if err != nil {
			return err
		}
		if err := c.fill(cw); err != nil {
			return err
		}
	}
	return mw.Close()
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
