package mail

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// Parsed is what a stored message shows: its bodies, attachments and header.
type Parsed struct {
	Text, HTML  string
	HasText     bool
	HasHTML     bool
	Attachments []ParsedAttachment
	Header      gomail.Header
}

// ParsedAttachment is one attachment of a parsed message, numbered from 1 in
// the order it appears.
type ParsedAttachment struct {
	ID               int64
	Filename         string
	Disposition      string // attachment or inline
	ContentType      string
	ContentID        string
	TransferEncoding string
	Content          []byte
}

// Parse reads a message as Compose writes it (and most others): the first
// text/plain and text/html parts that are neither attachments nor named or
// referenced inline parts are its bodies.
func Parse(raw []byte) (*Parsed, error) {
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("parse message: %w", err)
	}
	defer r.Close()
	out := &Parsed{Header: r.Header}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			for i := range out.Attachments {
				out.Attachments[i].ID = int64(i + 1)
			}
			return out, nil
		} else if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return nil, fmt.Errorf("parse message: %w", err)
		}
		content, err := io.ReadAll(p.Body)
		if err != nil {
			return nil, fmt.Errorf("parse message: %w", err)
		}
		switch h := p.Header.(type) {
		case *gomail.InlineHeader:
			mt, _, _ := h.ContentType()
			// A named or referenced inline part is an attachment, whatever its type.
			_, dparams, _ := h.ContentDisposition()
			body := h.Get("Content-Id") == "" && dparams["filename"] == ""
			switch {
			case mt == "text/plain" && !out.HasText && body:
				out.Text, out.HasText = string(content), true
			case mt == "text/html" && !out.HasHTML && body:
				out.HTML, out.HasHTML = string(content), true
			default:
				out.Attachments = append(out.Attachments, attachment(&h.Header, "inline", content))
			}
		case *gomail.AttachmentHeader:
			out.Attachments = append(out.Attachments, attachment(&h.Header, "attachment", content))
		}
	}
}

func attachment(h *message.Header, disposition string, content []byte) ParsedAttachment {
	mt, params, _ := h.ContentType()
	_, dparams, _ := h.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	enc := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	return ParsedAttachment{Filename: name, Disposition: disposition, ContentType: mt,
		ContentID: strings.Trim(h.Get("Content-Id"), "<>"), TransferEncoding: enc, Content: content}
}
