package tokend

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/mail"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Address is a mailbox: an address and an optional display name.
type Address struct {
	Email string
	Name  string
}

// Domain returns the domain part of the address, lower-cased.
func (a Address) Domain() string {
	at := strings.LastIndexByte(a.Email, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(a.Email[at+1:])
}

// Attachment is a file sent with an email. An inline attachment with a
// ContentID can be referenced from the HTML body as cid:ContentID.
type Attachment struct {
	Filename    string
	Content     []byte
	Type        string // MIME type; derived from the filename when empty
	Disposition string // "attachment" (default) or "inline"
	ContentID   string
}

// Email is a message a caller asks to send, as the sending APIs describe it.
type Email struct {
	From            Address
	To, Cc, Bcc     []Address
	ReplyTo         *Address
	Subject         string
	Text, HTML      string
	Category        string
	CustomVariables map[string]string
	Headers         map[string]string
	Attachments     []Attachment
}

// Recipients returns every recipient in the order message ids are given:
// To, then Cc, then Bcc.
func (e *Email) Recipients() []Address {
	out := make([]Address, 0, len(e.To)+len(e.Cc)+len(e.Bcc))
	out = append(out, e.To...)
	out = append(out, e.Cc...)
	return append(out, e.Bcc...)
}

// Limits of one email.
const (
	MaxRecipientsPerField = 1000
	MaxBatchSize          = 500
	// MaxEmailSize bounds an email as delivered (MIME, attachments encoded).
	MaxEmailSize = 10 << 20
	// MaxRequestSize and MaxRequestRecipients bound what one request (a
	// batch) may queue in all: its emails as rendered, and their recipients.
	MaxRequestSize        = 50 << 20
	MaxRequestRecipients  = 10_000
	maxSubjectLength      = 998
	maxCategoryLength     = 255
	maxCustomVariableSize = 1000
	maxHeaders            = 100
	maxHeaderValue        = 998
	maxAddressLength      = 254
)

// reservedHeaders are the header fields tokend writes itself; a caller's
// "headers" may not set them.
var reservedHeaders = map[string]bool{
	"from": true, "sender": true, "to": true, "cc": true, "bcc": true, "reply-to": true, "subject": true,
	"date": true, "message-id": true, "mime-version": true, "content-type": true, "content-disposition": true,
	"content-id": true, "dkim-signature": true,
}

// trustedHeaders are the header fields that mail servers add on the way
// (trace fields, authentication results, signatures) and receivers believe
// when they find them; a caller's "headers" may not set them either. So are
// the fields that start with trustedPrefixes (ARC sets, resent fields).
var trustedHeaders = map[string]bool{
	"received": true, "return-path": true, "delivered-to": true, "x-original-to": true, "received-spf": true,
	"authentication-results": true, "domainkey-signature": true,
}

var trustedPrefixes = []string{"arc-", "resent-"}

// reservedHeader says why a caller may not set the header field name, or "".
func reservedHeader(name string) string {
	name = strings.ToLower(name)
	switch {
	case reservedHeaders[name]:
		return "is a reserved header that tokend sets itself"
	case trustedHeaders[name] || slices.ContainsFunc(trustedPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }):
		return "is a reserved header that mail servers add and receivers trust"
	case strings.HasPrefix(name, "x-tokend-"):
		return "is a reserved header (X-Tokend-* fields are tokend's own)"
	}
	return ""
}

// ParseCustomVariables reads custom variables as Mailtrap's SDKs send them,
// a JSON object of strings, numbers and booleans, and keeps each value as
// the text it was written as. JSON null is no variables. field names the
// input in the EINVALID error of anything else.
func ParseCustomVariables(field string, b []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, Invalid(field, "must be an object of strings, numbers or booleans")
	}
	if raw == nil {
		return nil, nil
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		switch {
		case json.Unmarshal(v, &s) == nil:
		case len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') || string(v) == "true" || string(v) == "false":
			s = string(v)
		default:
			return nil, Invalid(field, fmt.Sprintf("%q must be a string, a number or a boolean", k))
		}
		out[k] = s
	}
	return out, nil
}

// Validate checks e against the sending rules and returns an EINVALID error
// naming every field at fault, or nil. It normalizes what it accepts
// (surrounding space, default attachment type and disposition).
func (e *Email) Validate() error {
	var fe FieldErrors
	if e.From.Email == "" {
		fe.Add("from", "is required")
	} else {
		validateAddress(&fe, "from", &e.From)
	}
	if e.ReplyTo != nil {
		validateAddress(&fe, "reply_to", e.ReplyTo)
	}
	if len(e.To)+len(e.Cc)+len(e.Bcc) == 0 {
		fe.Add("to", "or 'cc' or 'bcc' address is required")
	}
	for _, f := range []struct {
		name string
		list []Address
	}{{"to", e.To}, {"cc", e.Cc}, {"bcc", e.Bcc}} {
		if len(f.list) > MaxRecipientsPerField {
			fe.Add(f.name, fmt.Sprintf("has too many addresses (maximum is %d)", MaxRecipientsPerField))
			continue
		}
		for i := range f.list {
			validateAddress(&fe, fmt.Sprintf("%s[%d]", f.name, i), &f.list[i])
		}
	}
	e.Subject = strings.TrimSpace(e.Subject)
	switch {
	case e.Subject == "":
		fe.Add("subject", "is required")
	case utf8.RuneCountInString(e.Subject) > maxSubjectLength:
		fe.Add("subject", fmt.Sprintf("is too long (maximum is %d characters)", maxSubjectLength))
	case hasControl(e.Subject):
		fe.Add("subject", "must not contain control characters")
	}
	if e.Text == "" && e.HTML == "" {
		fe.Add("text", "or 'html' is required: an email needs a text or an HTML body")
	}
	for field, body := range map[string]string{"text": e.Text, "html": e.HTML} {
		if !utf8.ValidString(body) {
			fe.Add(field, "must be valid UTF-8")
		}
	}
	switch {
	case utf8.RuneCountInString(e.Category) > maxCategoryLength:
		fe.Add("category", fmt.Sprintf("is too long (maximum is %d characters)", maxCategoryLength))
	case hasControl(e.Category):
		fe.Add("category", "must not contain control characters")
	}
	if len(e.CustomVariables) > 0 {
		b, _ := json.Marshal(e.CustomVariables) // a map of strings always encodes
		if len(b) > maxCustomVariableSize {
			fe.Add("custom_variables", fmt.Sprintf("is too large (maximum is %d bytes as JSON)", maxCustomVariableSize))
		}
	}
	validateHeaders(&fe, e.Headers)
	for i := range e.Attachments {
		validateAttachment(&fe, fmt.Sprintf("attachments[%d]", i), &e.Attachments[i])
	}
	return fe.Err()
}

// validateAddress checks one mailbox: a bare addr-spec (no display name or
// angle brackets), and a name without control characters.
func validateAddress(fe *FieldErrors, field string, a *Address) {
	a.Email, a.Name = strings.TrimSpace(a.Email), strings.TrimSpace(a.Name)
	switch {
	case a.Email == "":
		fe.Add(field+".email", "is required")
	case len(a.Email) > maxAddressLength || !validAddrSpec(a.Email):
		fe.Add(field+".email", "address is invalid")
	}
	switch {
	case utf8.RuneCountInString(a.Name) > maxNameLength:
		fe.Add(field+".name", fmt.Sprintf("is too long (maximum is %d characters)", maxNameLength))
	case hasControl(a.Name):
		fe.Add(field+".name", "must not contain control characters")
	}
}

// ValidAddress reports whether s is an address tokend sends to: a plain
// ASCII addr-spec (no display name, no brackets) with a domain of at least
// two labels.
func ValidAddress(s string) bool { return validAddrSpec(s) }

// validAddrSpec reports whether s is a plain addr-spec with a domain of at
// least two labels.
func validAddrSpec(s string) bool {
	// ASCII only: tokend's relay sessions do not use SMTPUTF8.
	if hasControl(s) || strings.ContainsAny(s, " <>\"") || strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 }) {
		return false
	}
	parsed, err := mail.ParseAddress(s)
	if err != nil || parsed.Address != s || parsed.Name != "" {
		return false
	}
	domain := Address{Email: s}.Domain()
	return domain != "" && strings.Contains(domain, ".") && !strings.HasPrefix(domain, "[") &&
		!strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

func validateHeaders(fe *FieldErrors, headers map[string]string) {
	if len(headers) > maxHeaders {
		fe.Add("headers", fmt.Sprintf("has too many fields (maximum is %d)", maxHeaders))
		return
	}
	for name, value := range headers {
		field := "headers." + name
		reserved := reservedHeader(name)
		switch {
		case !validHeaderName(name):
			fe.Add("headers", fmt.Sprintf("%q is not a valid header name", clipName(name)))
		case reserved != "":
			fe.Add(field, reserved)
		case len(value) > maxHeaderValue:
			fe.Add(field, fmt.Sprintf("is too long (maximum is %d bytes)", maxHeaderValue))
		case hasControl(value) || !utf8.ValidString(value):
			fe.Add(field, "must be valid UTF-8 without control characters")
		}
	}
}

// validHeaderName is RFC 5322's field-name: printable ASCII but the colon.
func validHeaderName(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

func clipName(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func validateAttachment(fe *FieldErrors, field string, a *Attachment) {
	a.Filename = strings.TrimSpace(a.Filename)
	switch {
	case a.Filename == "":
		fe.Add(field+".filename", "is required")
	case utf8.RuneCountInString(a.Filename) > maxNameLength:
		fe.Add(field+".filename", fmt.Sprintf("is too long (maximum is %d characters)", maxNameLength))
	case hasControl(a.Filename) || strings.ContainsAny(a.Filename, `/\`):
		fe.Add(field+".filename", "must be a file name without control characters or slashes")
	}
	if len(a.Content) == 0 {
		fe.Add(field+".content", "is required (base64)")
	}
	a.Type = strings.TrimSpace(a.Type)
	if a.Type == "" {
		// A type derived from the name that is refused, or that does not
		// parse, is no type known.
		a.Type = "application/octet-stream"
		if t, problem := attachmentType(mime.TypeByExtension(strings.ToLower(path.Ext(a.Filename)))); problem == "" {
			a.Type = t
		}
	} else if t, problem := attachmentType(a.Type); problem != "" {
		fe.Add(field+".type", problem)
	} else {
		a.Type = t
	}
	switch a.Disposition {
	case "":
		a.Disposition = "attachment"
	case "attachment", "inline":
	default:
		fe.Add(field+".disposition", "must be attachment or inline")
	}
	a.ContentID = strings.Trim(strings.TrimSpace(a.ContentID), "<>")
	if hasControl(a.ContentID) || strings.ContainsAny(a.ContentID, "<> \"") || len(a.ContentID) > maxHeaderValue {
		fe.Add(field+".content_id", "is not a valid content id")
	}
}

// attachmentType checks an attachment's MIME type and returns it as tokend
// writes it (type and parameter names lower-case, values quoted where they
// need it), or why it is refused. Attachments always go in base64, which
// MIME does not allow for multipart and message types (RFC 2046 5.1, 5.2):
// they are refused, and their parts, with them.
func attachmentType(s string) (string, string) {
	const invalid = "is not a valid MIME type"
	if len(s) > maxHeaderValue {
		return "", fmt.Sprintf("is too long (maximum is %d bytes)", maxHeaderValue)
	}
	if hasControl(s) || !utf8.ValidString(s) {
		return "", invalid
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil {
		return "", invalid
	}
	major, minor, _ := strings.Cut(mt, "/")
	if major == "" || minor == "" {
		return "", invalid
	}
	for _, v := range params { // as decoded: RFC 2231 values may encode anything
		if hasControl(v) || !utf8.ValidString(v) {
			return "", invalid
		}
	}
	if major == "multipart" || major == "message" {
		return "", "must not be a multipart or message type"
	}
	t := mime.FormatMediaType(mt, params)
	if t == "" {
		return "", invalid
	}
	return t, ""
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
}

// merge returns base with what item sets laid over it: the batch rule. The
// recipients are always the item's.
func (base *Email) merge(item *Email) *Email {
	out := *base
	out.To, out.Cc, out.Bcc = item.To, item.Cc, item.Bcc
	if item.From.Email != "" || item.From.Name != "" {
		out.From = item.From
	}
	if item.ReplyTo != nil {
		out.ReplyTo = item.ReplyTo
	}
	for _, f := range []struct{ dst, src *string }{
		{&out.Subject, &item.Subject}, {&out.Text, &item.Text}, {&out.HTML, &item.HTML}, {&out.Category, &item.Category},
	} {
		if *f.src != "" {
			*f.dst = *f.src
		}
	}
	if item.CustomVariables != nil {
		out.CustomVariables = item.CustomVariables
	}
	if item.Headers != nil {
		out.Headers = item.Headers
	}
	if item.Attachments != nil {
		out.Attachments = item.Attachments
	}
	// Validation normalizes in place: keep base's slices and maps unshared.
	out.Attachments = append([]Attachment(nil), out.Attachments...)
	if out.ReplyTo != nil {
		r := *out.ReplyTo
		out.ReplyTo = &r
	}
	out.To, out.Cc, out.Bcc = append([]Address(nil), out.To...), append([]Address(nil), out.Cc...), append([]Address(nil), out.Bcc...)
	return &out
}

// Composer renders an email as an Internet message (RFC 5322 with MIME).
type Composer interface {
	// Compose renders e, dated date. A non-empty messageID becomes its
	// Message-ID header; without one, the deliverer adds one per recipient.
	Compose(e *Email, date time.Time, messageID string) ([]byte, error)
}

// MessageState is where the email to one recipient stands.
type MessageState string

// Message states. Queued and deferred wait for delivery (deferred after a
// temporary failure, with its error); delivered and failed are final; a
// captured message went into a sandbox and is never delivered; a suppressed
// one was accepted for a recipient on the suppression list, and not sent.
const (
	MessageQueued     MessageState = "queued"
	MessageDeferred   MessageState = "deferred"
	MessageDelivered  MessageState = "delivered"
	MessageFailed     MessageState = "failed"
	MessageCaptured   MessageState = "captured"
	MessageSuppressed MessageState = "suppressed"
)

// StoredEmail is an accepted email as the store keeps it: a live one waiting
// for (or done with) delivery, or one captured into a sandbox.
type StoredEmail struct {
	ID        int64
	AccountID int64
	TokenID   int64
	DomainID  int64 // the sending domain it was sent from; 0 for a send to a named sandbox
	SandboxID int64 // the sandbox a captured email is in; 0 for live mail
	MailFrom  string
	From      Address
	To        Address // the first recipient, for listings
	Subject   string
	Category  string
	// CustomVariables as given, JSON-encoded.
	CustomVariables map[string]string
	// MessageIDHeader is the Message-ID the sender gave the email (an SMTP
	// submission's own), which every copy carries; "" when tokend gave
	// each copy its own (see MessageLog.RFCMessageID).
	MessageIDHeader string
	Raw             []byte // empty once a live email is delivered to everyone
	Size            int
	TextSize        int
	HTMLSize        int
	IsRead          bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Message is the email to one recipient: what a message id names.
type Message struct {
	ID        string
	EmailID   int64
	AccountID int64
	DomainID  int64 // the sending domain of the email; 0 for a send to a named sandbox
	Recipient string
	State     MessageState
	Attempts  int
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SandboxQuery selects captured emails of one sandbox, newest first: those
// with IDs below BeforeID (0: from the newest), matching Search in the
// subject or first recipient, Offset and Limit after that.
type SandboxQuery struct {
	BeforeID int64
	Search   string
	Offset   int
	Limit    int
}

// SandboxUsage is what a sandbox holds of captured mail: how many emails,
// and their size as captured (the rendered email, attachments encoded).
type SandboxUsage struct {
	Emails int
	Bytes  int64
}

// SandboxQuota bounds what one sandbox keeps: when a capture would take it
// past either bound, its oldest emails are deleted to make room.
type SandboxQuota struct {
	Emails int
	Bytes  int64
}

// SandboxQuota is the quota of each sandbox of an account on plan p: free 100
// emails and 100 MB, pro 1,000 and 1 GB, enterprise 10,000 and 5 GB (MB and
// GB in powers of ten, as disks are sold).
func (p Plan) SandboxQuota() SandboxQuota {
	switch p {
	case PlanPro:
		return SandboxQuota{Emails: 1_000, Bytes: 1_000_000_000}
	case PlanEnterprise:
		return SandboxQuota{Emails: 10_000, Bytes: 5_000_000_000}
	}
	return SandboxQuota{Emails: 100, Bytes: 100_000_000}
}

// EmailTx is the sending part of a transaction.
type EmailTx interface {
	// CreateDomainKey stores a sending domain's DKIM key.
	CreateDomainKey(ctx context.Context, k *DomainKey) error
	// DomainKey returns the DKIM key of a domain, even one since deleted while
	// its mail is still queued; ENOTFOUND if it has none.
	DomainKey(ctx context.Context, domainID int64) (*DomainKey, error)
	// DomainKeys returns the DKIM keys of an account's domains.
	DomainKeys(ctx context.Context, accountID int64) ([]DomainKey, error)
	// DomainsWithoutKey returns every sending domain that has no DKIM key.
	DomainsWithoutKey(ctx context.Context) ([]Resource, error)

	// CreateEmail inserts e and its messages (one per recipient), setting
	// e.ID and each message's EmailID.
	CreateEmail(ctx context.Context, e *StoredEmail, msgs []Message) error
	// Email returns one stored email with its raw content.
	Email(ctx context.Context, id int64) (*StoredEmail, error)
	// EmailInfo returns one stored email without its raw content.
	EmailInfo(ctx context.Context, id int64) (*StoredEmail, error)
	// SandboxEmails lists a sandbox's captured emails without their raw content.
	SandboxEmails(ctx context.Context, sandboxID int64, q SandboxQuery) ([]StoredEmail, error)
	// MarkEmailRead sets a captured email's read flag.
	MarkEmailRead(ctx context.Context, id int64, read bool, at time.Time) error
	// DeleteEmail deletes a stored email and its messages.
	DeleteEmail(ctx context.Context, id int64) error

	// Message returns one message by id.
	Message(ctx context.Context, id string) (*Message, error)
	// UpdateMessage records a delivery attempt's outcome and returns the
	// message as it now is. When the last message of a live email reaches a
	// final state, the email's raw content is dropped: delivered mail is not
	// kept.
	UpdateMessage(ctx context.Context, id string, state MessageState, attempts int, lastError string, at time.Time) (*Message, error)
	// DeleteEmailsBefore deletes up to limit live emails created before
	// cutoff with no message waiting (oldest first, with their messages and
	// events), and DKIM keys of deleted domains no mail waits for, and
	// returns how many emails it deleted.
	DeleteEmailsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)

	// AddEmailEvent appends an event of a message and sets its ID.
	AddEmailEvent(ctx context.Context, e *EmailEvent) error
	// EmailEvents returns the events of the given messages, oldest first
	// for each.
	EmailEvents(ctx context.Context, messageIDs []string) (map[string][]EmailEvent, error)
	// EmailLogs returns one page of an account's messages of live and
	// test-key mail (not named-sandbox sends) as q selects them, newest
	// first (by creation time, then email, then message id), without raw
	// content.
	EmailLogs(ctx context.Context, accountID int64, q LogQuery) ([]MessageLog, error)
	// CountEmailLogs counts the messages q selects, up to max.
	CountEmailLogs(ctx context.Context, accountID int64, q LogQuery, max int) (int, error)

	// SandboxUsage returns what a sandbox holds of captured mail (zero for
	// a sandbox that holds none, or does not exist). The store keeps it up to
	// date in every transaction that adds or deletes captured mail, however
	// the mail goes, so reading it costs the same whatever the sandbox holds.
	SandboxUsage(ctx context.Context, sandboxID int64) (SandboxUsage, error)
	// EvictSandboxEmails deletes a sandbox's oldest captured emails (with
	// their messages), as few as frees at least emails of them and bytes
	// bytes, or all it has, and returns what it deleted.
	EvictSandboxEmails(ctx context.Context, sandboxID int64, emails int, bytes int64) (SandboxUsage, error)
	// DeleteCapturedEmailsBefore deletes up to limit captured emails created
	// before cutoff, oldest first, and returns how many it deleted.
	DeleteCapturedEmailsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)

	// Setting returns a server-wide value (ENOTFOUND if unset); PutSetting sets one.
	Setting(ctx context.Context, name string) ([]byte, error)
	PutSetting(ctx context.Context, name string, value []byte) error

	// CaptureSandbox returns the sandbox that catches an account's test-key
	// sends (0: none yet); SetCaptureSandbox sets it.
	CaptureSandbox(ctx context.Context, accountID int64) (int64, error)
	SetCaptureSandbox(ctx context.Context, accountID, sandboxID int64) error
}
