package tokend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Submission is an email handed over whole, as SMTP carries it: its
// envelope and the message as the client wrote it. The same sending rules
// hold for it as for an email asked for through the API (see
// Mailer.Submit).
type Submission struct {
	MailFrom   string   // the envelope sender (MAIL FROM)
	Recipients []string // the envelope recipients (RCPT TO), Bcc included
	Raw        []byte   // the message (RFC 5322), as received
	// TextSize and HTMLSize are the sizes of its text and HTML bodies, as
	// the adapter that read the message found them; listings show them.
	TextSize, HTMLSize int
}

// Header fields of a submission that tokend reads and removes before the
// message goes on: the idempotency key, and the category and custom
// variables as Mailtrap's SMTP service takes them.
const (
	HeaderIdempotencyKey  = "Idempotency-Key"
	HeaderCategory        = "X-MT-Category"
	HeaderCustomVariables = "X-MT-Custom-Variables"
)

// ReasonSenderMismatch is the reason of the EFORBIDDEN error of an email
// whose envelope sender is not on its From address's domain.
const ReasonSenderMismatch = "sender_mismatch"

// ErrNullSender refuses a submission with an empty envelope sender, which
// only bounces may use.
var ErrNullSender = &Error{Code: EFORBIDDEN, Reason: ReasonSenderMismatch,
	Message: "The envelope sender must be an address on a sending domain of this account, not empty"}

// CheckSender says early whether caller may send with mailFrom as the
// envelope sender: an address on a sending domain of its account on which
// it is admin and, for a live key, a verified one. Submit checks it again,
// in the transaction that stores the email; this lets an SMTP server refuse
// at MAIL FROM, before the message is sent.
func (m *Mailer) CheckSender(ctx context.Context, caller *Token, mailFrom string) error {
	switch {
	case mailFrom == "":
		return ErrNullSender
	case !validAddrSpec(mailFrom):
		return Invalid("MAIL FROM", "is not a valid email address")
	case caller.Environment == Live && !m.opts.Deliver:
		return errNoRelay
	}
	return m.store.Read(ctx, func(tx Tx) error {
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		d, err := c.adminDomain(caller, Address{Email: mailFrom}.Domain())
		if err != nil || caller.Environment != Live {
			return err
		}
		if ok, err := domainSendable(ctx, tx, d.ID); err != nil {
			return err
		} else if !ok {
			return domainNotVerified(d)
		}
		return nil
	})
}

// Submit accepts a message submitted whole (over SMTP) from caller, under
// the rules Send applies: the From header's domain is a sending domain on
// which the caller is admin (and verified, for a live key), the envelope
// sender is on the same domain, live keys queue the message for delivery
// to each envelope recipient and test keys capture it, the recipients are
// spent from the message allowance, suppressed recipients are not sent to,
// and events and webhooks follow. An Idempotency-Key header field makes it
// idempotent as the API's header does, unless opts give a key.
//
// The message goes on as submitted, but for these changes: line endings
// are CRLF (a bare CR or LF becomes one, so that nothing after it can be
// read as the end of the data), the Bcc, Return-Path, Idempotency-Key,
// X-MT-Category and X-MT-Custom-Variables fields are removed, and a Date is
// added when it has none. A message without a Message-ID is given one
// per recipient, as the API's emails are.
func (m *Mailer) Submit(ctx context.Context, caller *Token, s *Submission, opts ...SendOption) (*Sent, Allowance, error) {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	live := caller.Environment == Live
	now := m.svc.now()
	p, idem, err := prepareSubmission(s, live, now)
	if err != nil {
		return nil, Allowance{}, err
	}
	if o.idem == nil && idem != nil {
		if err := ParseIdempotencyKey(idem.Key); err != nil {
			return nil, Allowance{}, err
		}
		o.idem = idem
	}
	if o.idem != nil {
		if prior, err := m.replay(ctx, caller, o.idem); err != nil {
			return nil, Allowance{}, err
		} else if prior != nil {
			return prior[0].Sent, Allowance{}, prior[0].Err
		}
	}
	res, a, err := m.commit(ctx, caller, 0, live, []prepared{p}, len(p.ids), &o, now, nil)
	if err != nil {
		return nil, a, err
	}
	return res[0].Sent, a, res[0].Err
}

// submissionFingerprint is what an idempotent submission's retry must match:
// its envelope and the message as the client sent it, with CRLF line
// endings and without the Idempotency-Key field. What tokend adds (a Date,
// a Message-ID) is not in it, so a retry that lacks them matches.
func submissionFingerprint(env *envelope, fields []headerField, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte("smtp\x00" + env.mailFrom + "\x00"))
	for _, r := range env.rcpts {
		h.Write([]byte(r.Email + "\x00"))
	}
	for _, f := range fields {
		if !strings.EqualFold(f.name(), "idempotency-key") {
			h.Write(f)
		}
	}
	h.Write([]byte("\r\n"))
	h.Write(body)
	return h.Sum(nil)
}

// prepareSubmission checks a submission and makes its message what goes on
// (see Submit). When the message has an Idempotency-Key field, it returns
// the key (not yet validated) with the submission's fingerprint.
func prepareSubmission(s *Submission, live bool, now time.Time) (prepared, *Idempotency, error) {
	if len(s.Raw) > MaxEmailSize {
		return prepared{}, nil, Errorf(ETOOLARGE, "The message is %d bytes; the maximum is %d bytes (10 MiB)", len(s.Raw), MaxEmailSize)
	}
	var fe FieldErrors
	switch {
	case s.MailFrom == "":
		return prepared{}, nil, ErrNullSender
	case !validAddrSpec(s.MailFrom):
		fe.Add("MAIL FROM", "is not a valid email address")
	}
	switch n := len(s.Recipients); {
	case n == 0:
		fe.Add("RCPT TO", "is required: name at least one recipient")
	case n > MaxRecipientsPerField:
		fe.Add("RCPT TO", fmt.Sprintf("has too many recipients (maximum is %d a message)", MaxRecipientsPerField))
	}
	rcpts := make([]Address, len(s.Recipients))
	for i, r := range s.Recipients {
		if !validAddrSpec(r) {
			fe.Add("RCPT TO", fmt.Sprintf("%q is not a valid email address", r))
		}
		rcpts[i] = Address{Email: r}
	}
	header, body := splitMessage(normalizeNewlines(s.Raw))
	fields := headerFields(header)
	env := envelope{mailFrom: s.MailFrom, rcpts: rcpts, textSize: s.TextSize, htmlSize: s.HTMLSize}
	var key string
	var hasDate, hasMessageID bool
	var froms int
	var sender string
	seen := map[string]int{}
	kept := make([]byte, 0, len(header)+64)
	for _, f := range fields {
		name, value := f.name(), f.value()
		lower := strings.ToLower(name)
		if !submittedFieldName(name) {
			fe.Add("header", fmt.Sprintf("line %q is not a header field (name: value)", truncate(strings.TrimRight(string(f), "\r\n"), 40)))
			continue
		}
		if seen[lower]++; seen[lower] == 2 && onceFields[lower] {
			fe.Add(name, "must appear once")
		}
		if why := submissionRefusesField(lower); why != "" {
			fe.Add(name, why)
			continue
		}
		switch lower {
		case "bcc", "return-path":
			continue
		case "idempotency-key":
			key = value
			continue
		case "x-mt-category":
			if env.category = decodeHeader(value); len(env.category) > maxCategoryLength {
				fe.Add(HeaderCategory, fmt.Sprintf("is too long (maximum is %d characters)", maxCategoryLength))
			}
			continue
		case "x-mt-custom-variables":
			if len(value) > maxCustomVariableSize {
				fe.Add(HeaderCustomVariables, fmt.Sprintf("is too large (maximum is %d bytes)", maxCustomVariableSize))
			} else if vars, err := ParseCustomVariables(HeaderCustomVariables, []byte(value)); err != nil {
				fe.Add(HeaderCustomVariables, "must be a JSON object of strings, numbers or booleans")
			} else {
				env.customVariables = vars
			}
			continue
		case "from":
			froms++
			list, err := mail.ParseAddressList(value)
			if err != nil || len(list) != 1 {
				fe.Add("From", "must be exactly one mailbox")
				break
			}
			env.from = Address{Email: list[0].Address, Name: list[0].Name}
		case "subject":
			if env.subject = decodeHeader(value); utf8.RuneCountInString(env.subject) > maxSubjectLength {
				fe.Add("Subject", fmt.Sprintf("is too long (maximum is %d characters)", maxSubjectLength))
			}
		case "sender":
			sender = value
		case "date":
			hasDate = true
		case "message-id":
			hasMessageID = true
			if env.messageID = value; !validMsgID(value) {
				fe.Add("Message-ID", "must be one message id, <id@domain>, or left out for tokend to add")
			}
		}
		kept = append(kept, f...)
	}
	switch {
	case froms == 0:
		fe.Add("From", "is required: the message has no From header field")
	case froms > 1:
		fe.Add("From", "must appear once")
	}
	if sender != "" && froms == 1 && env.from.Email != "" {
		// Sender names who sent the message for the author: it must be on
		// the author's domain, which the token may send from.
		if a, err := mail.ParseAddress(sender); err != nil {
			fe.Add("Sender", "must be exactly one mailbox")
		} else if !strings.EqualFold(Address{Email: a.Address}.Domain(), env.from.Domain()) {
			fe.Add("Sender", "must be on the From address's domain, "+env.from.Domain())
		}
	}
	if fe != nil {
		return prepared{}, nil, &Error{Code: EINVALID, Message: "Validation failed", Fields: fe}
	}
	ids := newMessageIDs(len(rcpts))
	var added []byte
	if !hasMessageID && !live { // captured mail keeps the first recipient's; live copies get their own as they go
		added = append(added, "Message-ID: "+RFCMessageID(ids[0], env.from.Domain())+"\r\n"...)
	}
	if !hasDate {
		added = append(added, "Date: "+now.UTC().Format(time.RFC1123Z)+"\r\n"...)
	}
	raw := make([]byte, 0, len(added)+len(kept)+2+len(body))
	raw = append(append(append(append(raw, added...), kept...), "\r\n"...), body...)
	var idem *Idempotency
	if key != "" {
		idem = &Idempotency{Key: key, Fingerprint: submissionFingerprint(&env, fields, body)}
	}
	return prepared{env: env, ids: ids, raw: raw}, idem, nil
}

// onceFields are the fields a message has at most once (RFC 5322 section
// 3.6, and Mailtrap's and tokend's own).
var onceFields = map[string]bool{
	"date": true, "from": true, "sender": true, "reply-to": true, "to": true, "cc": true, "bcc": true,
	"message-id": true, "in-reply-to": true, "references": true, "subject": true,
	"x-mt-category": true, "x-mt-custom-variables": true, "idempotency-key": true,
}

// submissionRefusesField says why a submitted message may not carry the
// field (lower-cased name), or "": the fields the send API refuses as those
// mail servers add and receivers trust, tokend's own, and signatures, which
// tokend adds itself (a DKIM-Signature of another domain passed on would
// let a message borrow that domain's reputation). Trace fields (Received)
// that a mail server in front of tokend adds are kept, as a relay keeps
// them; Return-Path and Bcc are removed instead.
func submissionRefusesField(name string) string {
	switch name {
	case "received", "return-path", "bcc":
		return ""
	case "dkim-signature":
		return "is added by tokend, which signs the message for its domain: remove the message's own"
	}
	if reservedHeaders[name] {
		return ""
	}
	return reservedHeader(name)
}

// submittedFieldName says whether name is a header field name: printable
// ASCII but the colon.
func submittedFieldName(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return name != ""
}

// validMsgID says whether v is one msg-id, <left@right>.
func validMsgID(v string) bool {
	inner, ok := strings.CutPrefix(v, "<")
	if inner, ok = strings.CutSuffix(inner, ">"); !ok {
		return false
	}
	left, right, ok := strings.Cut(inner, "@")
	return ok && left != "" && right != "" && !strings.ContainsAny(inner, "<> \t\r\n")
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// normalizeNewlines returns raw with every line ending CRLF: a bare LF or CR
// becomes CRLF. raw itself is returned when it needs no change.
func normalizeNewlines(raw []byte) []byte {
	bad := false
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') || c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			bad = true
			break
		}
	}
	if !bad {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(raw)/32)
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '\r' && i+1 < len(raw) && raw[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// splitMessage splits a CRLF message into its header (each field with its
// CRLF) and its body, the blank line between them dropped. A message with
// no blank line is all header.
func splitMessage(raw []byte) (header, body []byte) {
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return nil, raw[2:]
	}
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[:i+2], raw[i+4:]
	}
	if len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\r\n")) {
		raw = append(raw[:len(raw):len(raw)], '\r', '\n')
	}
	return raw, nil
}

// headerField is one header field as written: its first line and folded
// continuation lines, each with its CRLF.
type headerField []byte

func (f headerField) name() string {
	if i := bytes.IndexByte(f, ':'); i >= 0 {
		return strings.TrimSpace(string(f[:i]))
	}
	return ""
}

// value is the field's value unfolded, without surrounding space.
func (f headerField) value() string {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return ""
	}
	v := strings.ReplaceAll(string(f[i+1:]), "\r\n", "")
	return strings.TrimSpace(v)
}

// headerFields splits a header into its fields. A line that starts with
// space or a tab continues the field before it; a leading one (or a line
// that is not a field at all) is kept as a field of its own, so that nothing
// is lost.
func headerFields(header []byte) []headerField {
	var out []headerField
	for len(header) > 0 {
		end := bytes.Index(header, []byte("\r\n"))
		line := header[:end+2]
		header = header[end+2:]
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			last := out[len(out)-1]
			out[len(out)-1] = append(last[:len(last):len(last)], line...)
			continue
		}
		out = append(out, headerField(line))
	}
	return out
}

// decodeHeader decodes RFC 2047 encoded words, keeping the text as it is
// when they cannot be decoded.
func decodeHeader(v string) string {
	d, err := (&mime.WordDecoder{}).DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}
