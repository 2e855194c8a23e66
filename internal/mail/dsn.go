package mail

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// Bounce is what a bounce message reports about the recipients it names.
type Bounce struct {
	// DSN says the message is a delivery status notification (RFC 3464:
	// multipart/report; report-type=delivery-status with a
	// message/delivery-status part); otherwise it is a plain bounce whose
	// text was read for a status.
	DSN        bool
	Recipients []BounceRecipient
}

// BounceRecipient is the report on one recipient. Action and Status are never
// empty, and every string is one line of valid UTF-8 of at most 1000 bytes.
type BounceRecipient struct {
	Recipient  string // the Final-Recipient's address (else Original-Recipient's), without its "rfc822;" type; "" when a plain bounce names none
	Action     string // failed, delayed, delivered, relayed or expanded, lower-case
	Status     string // the enhanced status code, e.g. "5.1.1" (RFC 3463)
	Code       int    // the SMTP reply code found in Diagnostic-Code (550), 0 when none
	Diagnostic string // the Diagnostic-Code's text without its type ("550 5.1.1 <a@b>: no such user"), unfolded to one line, at most 1000 bytes
	RemoteMTA  string // Remote-MTA without its type, "" when absent
}

// ErrNotBounce is returned for a message that is neither a DSN nor
// recognisably a bounce (an auto-reply, spam, a person writing).
var ErrNotBounce = errors.New("not a bounce")

const (
	maxParts      = 64        // parts read, the message itself and multiparts included
	maxText       = 256 << 10 // bytes of text read, and of a delivery-status part
	maxRecipients = 100
	maxField      = 1000 // bytes of a BounceRecipient string
)

// ParseBounce reads raw (an RFC 5322 message as received over SMTP, CRLF or
// LF line endings).
//
// A message with a message/delivery-status (or, RFC 6533,
// message/global-delivery-status) part anywhere in its multipart tree is a
// DSN: it reports one recipient for each per-recipient group of that part, at
// most 100. A missing or malformed Status is taken from the enhanced code in
// Diagnostic-Code, else from the class of its reply code or of the Action,
// else it is 5.0.0; a Status of only a class (5.0.0) is made precise by the
// Diagnostic-Code's enhanced code of that class; a missing Action is that of
// the Status's class.
//
// Any other message is a plain bounce when its From's local part is
// mailer-daemon or postmaster, or its Subject reads like a bounce
// ("Undeliverable", "failure notice", ...). Its text (text/plain parts, else
// text/html, never attachments nor attached messages or headers) is read up
// to the copy of the original message that some MTAs append to it, for the
// first line with an enhanced status code of class 4 or 5 or an SMTP reply
// code of those classes. That line is the Diagnostic of the one recipient
// reported, which is the first address written up to it ("" when none); its
// Action is failed for class 5 and delayed for class 4, and without any code
// it is failed with the Status 5.0.0.
//
// Every error is ErrNotBounce (errors.Is), wrapping the reason when the
// message could not be read at all. Only the first 64 parts and 256 KiB of
// text are read.
func ParseBounce(raw []byte) (*Bounce, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !lenient(err) {
		return nil, fmt.Errorf("%w: %w", ErrNotBounce, err)
	}
	var p parts
	p.walk(e)
	if p.status != nil {
		b := &Bounce{DSN: true}
		for _, g := range fieldGroups(*p.status, maxRecipients+1) {
			if len(b.Recipients) < maxRecipients && perRecipient(g) {
				b.Recipients = append(b.Recipients, dsnRecipient(g))
			}
		}
		if len(b.Recipients) == 0 {
			return nil, ErrNotBounce
		}
		return b, nil
	}
	h := gomail.Header{Header: e.Header}
	subject, _ := h.Subject() // an unknown charset leaves the raw subject
	if !fromDaemon(h.Get("From")) && !bounceSubject.MatchString(subject) {
		return nil, ErrNotBounce
	}
	text := p.plain.String()
	if strings.TrimSpace(text) == "" {
		text = htmlText(p.html.String())
	}
	return &Bounce{Recipients: []BounceRecipient{plainRecipient(text)}}, nil
}

// lenient says err leaves an entity that can still be read.
func lenient(err error) bool {
	return message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)
}

// parts is what ParseBounce takes from a message's parts.
type parts struct {
	n           int     // parts seen
	status      *string // the first delivery-status part's body, nil when none
	plain, html strings.Builder
}

// walk reads e and the parts under it, depth first, stopping at maxParts
// parts and maxText bytes of text. A part that can't be read ends the walk
// of its multipart; what was read so far is kept.
func (p *parts) walk(e *message.Entity) {
	if p.n++; p.n > maxParts {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for p.n < maxParts {
			part, err := mr.NextPart()
			if err != nil && !lenient(err) {
				return
			}
			p.walk(part)
		}
		return
	}
	disp, _, _ := e.Header.ContentDisposition()
	switch mt := mediaType(e.Header); {
	case mt == "message/delivery-status" || mt == "message/global-delivery-status":
		if p.status == nil {
			b, _ := io.ReadAll(io.LimitReader(e.Body, maxText))
			s := string(b)
			p.status = &s
		}
	case (mt == "text/plain" || mt == "text/html") && !strings.EqualFold(disp, "attachment"):
		dst := &p.plain
		if mt == "text/html" {
			dst = &p.html
		}
		io.Copy(dst, io.LimitReader(e.Body, int64(maxText-p.plain.Len()-p.html.Len())))
		dst.WriteByte('\n')
	}
	// Anything else, message/rfc822 and text/rfc822-headers included, is
	// skipped: an attached original message must not be read for a status.
}

// mediaType is h's lower-case media type: text/plain when it has none, ""
// when it can't be read.
func mediaType(h message.Header) string {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain"
	}
	t, _, err := mime.ParseMediaType(v)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return ""
	}
	return t
}

// fieldGroups splits the body of a delivery-status part into its groups of
// fields (RFC 3464 section 2.1), at most limit of them. Lines that are empty or
// hold only white space separate groups, folded fields are unfolded, names are
// lower-case, the first of a repeated field counts and lines that are no field
// are skipped.
func fieldGroups(body string, limit int) []map[string]string {
	var (
		groups []map[string]string
		g      map[string]string
		name   string // the field being read, "" when none
		value  strings.Builder
	)
	flush := func() {
		if _, dup := g[name]; name != "" && !dup {
			g[name] = strings.TrimSpace(value.String())
		}
		name = ""
		value.Reset()
	}
	for line := range strings.Lines(body) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.TrimSpace(line) == "":
			flush()
			g = nil
		case line[0] == ' ' || line[0] == '\t':
			if name != "" {
				value.WriteByte(' ')
				value.WriteString(strings.TrimSpace(line))
			}
		default:
			flush()
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if g == nil {
				if len(groups) == limit {
					return groups
				}
				g = map[string]string{}
				groups = append(groups, g)
			}
			name = strings.ToLower(strings.TrimSpace(k))
			value.WriteString(v)
		}
	}
	flush()
	return groups
}

// perRecipient says g is a per-recipient group rather than the per-message one.
func perRecipient(g map[string]string) bool {
	for _, k := range []string{"final-recipient", "original-recipient", "action", "status"} {
		if _, ok := g[k]; ok {
			return true
		}
	}
	return false
}

// dsnRecipient reads a per-recipient group of a DSN.
func dsnRecipient(g map[string]string) BounceRecipient {
	r := BounceRecipient{Recipient: address(g["final-recipient"]), RemoteMTA: field(untyped(g["remote-mta"]))}
	if r.Recipient == "" {
		r.Recipient = address(g["original-recipient"])
	}
	diag := clean(untyped(g["diagnostic-code"]))
	r.Code = replyCode(diag, "245")
	// A status that says only its class (Exim writes 5.0.0 whatever
	// happened) gives way to the diagnostic's code of that class.
	r.Status = firstToken(g["status"])
	if !statusCode.MatchString(r.Status) {
		r.Status = enhancedCode(diag, "245")
	} else if strings.HasSuffix(r.Status, ".0.0") {
		if c := enhancedCode(diag, r.Status[:1]); c != "" {
			r.Status = c
		}
	}
	action := strings.ToLower(firstToken(g["action"]))
	switch action {
	case "failed", "delayed", "delivered", "relayed", "expanded":
	default:
		action = ""
	}
	r.Status, r.Action = settle(r.Status, action, r.Code)
	r.Diagnostic = truncate(diag, maxField)
	return r
}

// settle completes a report's status and action from each other: a missing
// status is the class of the reply code, else of the action, else 5.0.0 (a
// failure of unknown cause); a missing action is that of the status's class.
func settle(status, action string, code int) (string, string) {
	if status == "" {
		switch {
		case code != 0:
			status = strconv.Itoa(code/100) + ".0.0"
		case action == "delayed":
			status = "4.0.0"
		case action == "delivered" || action == "relayed" || action == "expanded":
			status = "2.0.0"
		default:
			status = "5.0.0"
		}
	}
	if action == "" {
		switch status[0] {
		case '2':
			action = "delivered"
		case '4':
			action = "delayed"
		default:
			action = "failed"
		}
	}
	return status, action
}

var (
	// statusCode is a well-formed Status (RFC 3463).
	statusCode = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)
	enhanced   = regexp.MustCompile(`[245]\.\d{1,3}\.\d{1,3}`)
	reply      = regexp.MustCompile(`[245][0-5]\d`)
	// valueType is the type that starts a typed DSN field ("rfc822;").
	valueType = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z0-9-]*\s*;`)
	emailAddr = regexp.MustCompile(`[\w.!#$%&'*+/=?^{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+`)

	bounceSubject = regexp.MustCompile(`(?i)undeliverable|undelivered|delivery status notification|delivery failure|failure notice|returned mail|mail delivery failed|delivery has failed|could not be delivered`)
	// originalCopy starts the copy of the original message that qmail, Exim,
	// Sendmail and Exchange write under a plain bounce's own text.
	originalCopy = regexp.MustCompile(`(?i)^\s*(?:-{2,}.*(?:copy of the message|original message|original headers|headers of the message|message header)|original message headers:)`)

	htmlHidden = regexp.MustCompile(`(?is)<(?:head|style|script)\b.*?</(?:head|style|script)\s*>|<!--.*?-->`)
	htmlBreak  = regexp.MustCompile(`(?i)<(?:br|/?(?:p|div|tr|li|h[1-6]|table|pre|blockquote))\b[^>]*>`)
	htmlTag    = regexp.MustCompile(`<[^>]*>`)
)

// untyped is a typed DSN value ("rfc822; a@b", "smtp; 550 ...", "dns; mx")
// without its type, trimmed.
func untyped(v string) string {
	if m := valueType.FindStringIndex(v); m != nil {
		v = v[m[1]:]
	}
	return strings.TrimSpace(v)
}

// address is a typed address without its type nor angle brackets.
func address(v string) string {
	return field(strings.Trim(untyped(v), "<> \t"))
}

// firstToken is v's first word, up to white space or a comment.
func firstToken(v string) string {
	f := strings.FieldsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == '(' })
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// enhancedCode is the first enhanced status code in s whose class is one of
// classes and that stands alone (not part of a version or an IP address), ""
// when none.
func enhancedCode(s, classes string) string {
	for _, m := range enhanced.FindAllStringIndex(s, -1) {
		i, j := m[0], m[1]
		if strings.IndexByte(classes, s[i]) >= 0 && standsAfter(s, i) &&
			(j == len(s) || !wordByte(s[j]) && (s[j] != '.' || j+1 == len(s) || !isDigit(s[j+1]))) {
			return s[i:j]
		}
	}
	return ""
}

// replyCode is the first SMTP reply code in s whose class is one of classes,
// standing alone and followed by a space, a hyphen or the end, 0 when none.
func replyCode(s, classes string) int {
	for _, m := range reply.FindAllStringIndex(s, -1) {
		i, j := m[0], m[1]
		if strings.IndexByte(classes, s[i]) >= 0 && standsAfter(s, i) && (j == len(s) || s[j] == ' ' || s[j] == '-') {
			n, _ := strconv.Atoi(s[i:j])
			return n
		}
	}
	return 0
}

// standsAfter says s[i] does not continue a word or a number.
func standsAfter(s string, i int) bool {
	return i == 0 || !wordByte(s[i-1]) && s[i-1] != '.'
}

func wordByte(c byte) bool {
	return isDigit(c) || c == '_' || 'a' <= c|0x20 && c|0x20 <= 'z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// fromDaemon says the From field's local part is mailer-daemon or postmaster.
func fromDaemon(from string) bool {
	if a, err := gomail.ParseAddress(from); err == nil {
		from = a.Address
	} else if i := strings.LastIndexByte(from, '<'); i >= 0 {
		from, _, _ = strings.Cut(from[i+1:], ">")
	}
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		from = from[:i]
	}
	from = strings.TrimSpace(from)
	return strings.EqualFold(from, "mailer-daemon") || strings.EqualFold(from, "postmaster")
}

// plainRecipient reads the text of a plain bounce.
func plainRecipient(text string) BounceRecipient {
	var r BounceRecipient
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if originalCopy.MatchString(line) {
			break
		}
		if r.Recipient == "" {
			r.Recipient = field(strings.TrimLeft(emailAddr.FindString(line), "."))
		}
		status, code := enhancedCode(line, "45"), replyCode(line, "45")
		if status != "" || code != 0 {
			r.Status, r.Code, r.Diagnostic = status, code, field(line)
			break
		}
	}
	r.Status, r.Action = settle(r.Status, "", r.Code)
	return r
}

// htmlText is the text of an HTML body, a line for each block.
func htmlText(s string) string {
	s = htmlHidden.ReplaceAllString(s, "")
	s = htmlBreak.ReplaceAllString(s, "\n")
	s = htmlTag.ReplaceAllString(s, "")
	return strings.ReplaceAll(html.UnescapeString(s), "\u00a0", " ")
}

// clean makes s one line of valid UTF-8: control characters become spaces,
// runs of white space one space, and it is trimmed.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.Join(strings.Fields(s), " ")
}

// field is s made a BounceRecipient string: clean and at most maxField bytes.
func field(s string) string { return truncate(clean(s), maxField) }

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimSpace(s[:n])
}
