package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tokend/tokend"
)

// Bounds of sending request bodies: one email of up to tokend.MaxEmailSize
// with its attachments in base64, and a batch of up to 50 MiB in all. How
// many are read at once is bounded too (see SendLimits).
const (
	maxSendBody  = 16 << 20
	maxBatchBody = 50 << 20
)

// addressJSON is a mailbox as the sending APIs write it.
type addressJSON struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// addressInput also takes a plain address string, as MailSage's "from" may be.
type addressInput struct{ addressJSON }

func (a *addressInput) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &a.Email)
	}
	return json.Unmarshal(b, &a.addressJSON)
}

type attachmentJSON struct {
	Content     string `json:"content"`
	Filename    string `json:"filename"`
	Type        string `json:"type"`
	Disposition string `json:"disposition"`
	ContentID   string `json:"content_id"`
}

// emailJSON is the body of Mailtrap's send and of each batch item.
type emailJSON struct {
	From            *addressInput     `json:"from"`
	To              []addressJSON     `json:"to"`
	Cc              []addressJSON     `json:"cc"`
	Bcc             []addressJSON     `json:"bcc"`
	ReplyTo         *addressInput     `json:"reply_to"`
	Subject         string            `json:"subject"`
	Text            string            `json:"text"`
	HTML            string            `json:"html"`
	Category        string            `json:"category"`
	CustomVariables customVariables   `json:"custom_variables"`
	Headers         map[string]string `json:"headers"`
	Attachments     []attachmentJSON  `json:"attachments"`
	TemplateUUID    string            `json:"template_uuid"`
}

// customVariables takes string, number and boolean values, as Mailtrap's SDKs
// send them, and keeps each as the text it was written as.
type customVariables map[string]string

func (c *customVariables) UnmarshalJSON(b []byte) error {
	vars, err := tokend.ParseCustomVariables("custom_variables", b)
	*c = vars
	return err
}

// batchJSON keeps each request raw, so that one request that cannot be read
// fails alone, as one that does not validate does.
type batchJSON struct {
	Base     *emailJSON        `json:"base"`
	Requests []json.RawMessage `json:"requests"`
}

// toEmail turns a decoded body into a domain email; what cannot be turned
// (bad base64, templates) is an EINVALID error naming the field.
func (in *emailJSON) toEmail() (*tokend.Email, error) {
	var fe tokend.FieldErrors
	if in.TemplateUUID != "" {
		fe.Add("template_uuid", "is not supported: tokend sends the subject, text and html given")
	}
	e := &tokend.Email{
		To: addresses(in.To), Cc: addresses(in.Cc), Bcc: addresses(in.Bcc),
		Subject: in.Subject, Text: in.Text, HTML: in.HTML, Category: in.Category,
		CustomVariables: in.CustomVariables, Headers: in.Headers,
	}
	if in.From != nil {
		e.From = tokend.Address{Email: in.From.Email, Name: in.From.Name}
	}
	if in.ReplyTo != nil {
		e.ReplyTo = &tokend.Address{Email: in.ReplyTo.Email, Name: in.ReplyTo.Name}
	}
	if in.Attachments != nil {
		e.Attachments = make([]tokend.Attachment, len(in.Attachments))
	}
	for i, a := range in.Attachments {
		content, err := decodeBase64(a.Content)
		if err != nil {
			fe.Add(fmt.Sprintf("attachments[%d].content", i), "must be base64")
		}
		e.Attachments[i] = tokend.Attachment{Filename: a.Filename, Content: content, Type: a.Type, Disposition: a.Disposition, ContentID: a.ContentID}
	}
	return e, fe.Err()
}

func addresses(in []addressJSON) []tokend.Address {
	if in == nil {
		return nil
	}
	out := make([]tokend.Address, len(in))
	for i, a := range in {
		out[i] = tokend.Address{Email: a.Email, Name: a.Name}
	}
	return out
}

var base64Space = regexp.MustCompile(`[\r\n\t ]+`)

// decodeBase64 reads standard base64, with or without padding and line breaks.
func decodeBase64(s string) ([]byte, error) {
	s = base64Space.ReplaceAllString(s, "")
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// sentJSON is Mailtrap's answer to an accepted send.
type sentJSON struct {
	Success    bool     `json:"success"`
	MessageIDs []string `json:"message_ids"`
}

type batchItemJSON struct {
	Success    bool     `json:"success"`
	MessageIDs []string `json:"message_ids,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	// Code is tokend's machine-readable reason, where it has one (such as
	// domain_not_verified); Mailtrap's clients ignore it.
	Code string `json:"code,omitempty"`
}

// sandboxID is the {inbox_id} of a sandbox send, 0 on the transactional routes.
func sandboxID(r *http.Request) (int64, error) {
	if r.PathValue("inbox_id") == "" {
		return 0, nil
	}
	return pathID(r, "inbox_id")
}

// send serves POST /api/send and /api/send/{inbox_id}.
func (s *Server) send(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	sb, err := sandboxID(r)
	if err != nil {
		return err
	}
	release, err := s.admitSend(w, r, caller, maxSendBody)
	if err != nil {
		return err
	}
	defer release()
	idem, err := idempotency(r)
	if err != nil {
		return err
	}
	var in emailJSON
	if err := decodeLimit(w, r, &in, maxSendBody); err != nil {
		return err
	}
	e, err := in.toEmail()
	if err != nil {
		return err
	}
	var sent *tokend.Sent
	var allowance tokend.Allowance
	if sb != 0 {
		sent, allowance, err = s.mailer.SendToSandbox(r.Context(), caller, sb, e, idem()...)
	} else {
		sent, allowance, err = s.mailer.Send(r.Context(), caller, e, idem()...)
	}
	s.setAllowance(w, allowance)
	if err != nil {
		return err
	}
	markReplayed(w, sent)
	encode(w, http.StatusOK, sentJSON{Success: true, MessageIDs: sent.MessageIDs})
	return nil
}

// batch serves POST /api/batch and /api/batch/{inbox_id}: 200 whatever each
// item's outcome, which its entry in responses gives.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	sb, err := sandboxID(r)
	if err != nil {
		return err
	}
	release, err := s.admitSend(w, r, caller, maxBatchBody)
	if err != nil {
		return err
	}
	defer release()
	idem, err := idempotency(r)
	if err != nil {
		return err
	}
	var in batchJSON
	if err := decodeLimit(w, r, &in, maxBatchBody); err != nil {
		return err
	}
	var base *tokend.Email
	if in.Base != nil {
		if base, err = in.Base.toEmail(); err != nil {
			return prefixFields(err, "base.")
		}
	}
	items := make([]tokend.BatchItem, len(in.Requests))
	for i, raw := range in.Requests {
		var req emailJSON
		if err := json.Unmarshal(raw, &req); err != nil {
			items[i].Err = decodeError(err)
			continue
		}
		items[i].Email, items[i].Err = req.toEmail()
	}
	results, allowance, err := s.mailer.SendBatch(r.Context(), caller, sb, base, items, idem()...)
	s.setAllowance(w, allowance)
	if err != nil {
		return err
	}
	for _, res := range results {
		markReplayed(w, res.Sent)
	}
	out := make([]batchItemJSON, len(results))
	for i, res := range results {
		err := res.Err
		if err == nil {
			out[i] = batchItemJSON{Success: true, MessageIDs: res.Sent.MessageIDs}
			continue
		}
		if tokend.ErrorCode(err) == tokend.EINTERNAL {
			s.logFailure(r, err)
		}
		out[i] = batchItemJSON{Success: false, Errors: errorList(err), Code: reasonOf(err)}
	}
	encode(w, http.StatusOK, map[string]any{"success": true, "responses": out})
	return nil
}

// The message allowance's headers, in canonical form like the rate-limit
// headers beside them.
const (
	headerMessagesLimit     = "X-Ratelimit-Messages-Limit"
	headerMessagesRemaining = "X-Ratelimit-Messages-Remaining"
	headerMessagesReset     = "X-Ratelimit-Messages-Reset"
)

// setAllowance reports the message allowance a send left on its response,
// and when the allowance refused the send, the Retry-After and the metric.
func (s *Server) setAllowance(w http.ResponseWriter, a tokend.Allowance) {
	if !a.Set {
		return
	}
	h := w.Header()
	h[headerMessagesLimit] = []string{strconv.Itoa(a.Limit)}
	h[headerMessagesRemaining] = []string{strconv.Itoa(a.Remaining)}
	h[headerMessagesReset] = []string{seconds(a.Reset)}
	switch {
	case !a.Allowed:
		h.Set("Retry-After", seconds(a.RetryAfter))
		s.limitedMessages.Inc()
	case a.Quota != nil && a.RetryAfter > 0:
		// The allowance passed; the token's quota of emails refused.
		h.Set("Retry-After", seconds(a.RetryAfter))
	}
}

// prefixFields renames the fields of an EINVALID error.
func prefixFields(err error, prefix string) error {
	var e *tokend.Error
	if !errors.As(err, &e) || len(e.Fields) == 0 {
		return err
	}
	f := tokend.FieldErrors{}
	for k, v := range e.Fields {
		f[prefix+k] = v
	}
	return &tokend.Error{Code: e.Code, Message: e.Message, Reason: e.Reason, Fields: f}
}

// errorList renders an error as the sending API's list of messages: one
// "'field' message" per field error, in field order.
func errorList(err error) []string {
	var e *tokend.Error
	if !errors.As(err, &e) {
		return []string{"Internal server error"}
	}
	if len(e.Fields) == 0 {
		return []string{e.Message}
	}
	fields := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		fields = append(fields, k)
	}
	slices.SortFunc(fields, compareFields)
	var out []string
	for _, f := range fields {
		for _, msg := range e.Fields[f] {
			if f == "base" {
				out = append(out, msg)
			} else {
				out = append(out, "'"+f+"' "+msg)
			}
		}
	}
	return out
}

// fieldOrder puts the errors people look for first where they expect them.
var fieldOrder = []string{"base", "requests", "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html"}

func compareFields(a, b string) int {
	rank := func(f string) int {
		head, _, _ := strings.Cut(f, ".")
		head, _, _ = strings.Cut(head, "[")
		if i := slices.Index(fieldOrder, head); i >= 0 {
			return i
		}
		return len(fieldOrder)
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	return strings.Compare(a, b)
}

// writeSendError is the one place errors of the Mailtrap sending routes
// become responses: {"success": false, "errors": ["..."]}, with tokend's
// "code" beside them where the error has a reason, and always on 401 and
// 429, as in the other wire formats.
func (s *Server) writeSendError(w http.ResponseWriter, r *http.Request, err error) {
	status, msgs := s.sendStatus(r, err)
	body := map[string]any{"success": false, "errors": msgs}
	code := reasonOf(err)
	if code == "" {
		switch status {
		case http.StatusUnauthorized:
			code = "invalid_api_key"
		case http.StatusTooManyRequests:
			code = "rate_limited"
		}
	}
	if code != "" && status < 500 {
		body["code"] = code
	}
	encode(w, status, body)
}

// reasonOf is an error's machine-readable reason, "" for none.
func reasonOf(err error) string {
	var e *tokend.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func (s *Server) sendStatus(r *http.Request, err error) (int, []string) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, []string{tooLargeMessage(tooBig)}
	}
	var e *tokend.Error
	if !errors.As(err, &e) {
		s.logFailure(r, err)
		return http.StatusInternalServerError, []string{"Internal server error"}
	}
	switch e.Code {
	case tokend.EINVALID:
		if e.Reason == tokend.ReasonIdempotencyKeyReused {
			return http.StatusUnprocessableEntity, errorList(err)
		}
		return http.StatusBadRequest, errorList(err)
	case tokend.EUNAUTHORIZED:
		return http.StatusUnauthorized, []string{e.Message}
	case tokend.EFORBIDDEN:
		return http.StatusForbidden, []string{e.Message}
	case tokend.ENOTFOUND:
		return http.StatusNotFound, []string{"Not Found"}
	case tokend.ERATELIMITED:
		return http.StatusTooManyRequests, []string{e.Message}
	case tokend.ETOOLARGE:
		return http.StatusRequestEntityTooLarge, []string{e.Message}
	case tokend.EUNAVAILABLE:
		return http.StatusServiceUnavailable, []string{e.Message}
	}
	s.logFailure(r, err)
	return http.StatusInternalServerError, []string{"Internal server error"}
}

// mailSageJSON is the body of MailSage's POST /api/v1/emails/send.
type mailSageJSON struct {
	Recipient *addressJSON  `json:"recipient"`
	Subject   string        `json:"subject"`
	Body      string        `json:"body"`
	HTML      string        `json:"html"`
	From      *addressInput `json:"from"`
}

// mailSageField names a field of the domain's email as MailSage's body does.
func mailSageField(f string) string {
	switch {
	case f == "text":
		return "body"
	case f == "to" || f == "to[0]":
		return "recipient"
	case strings.HasPrefix(f, "to[0]."):
		return "recipient." + strings.TrimPrefix(f, "to[0].")
	}
	return f
}

// sendMailSage serves MailSage's send: one recipient, "body" as the text
// part, and the sender defaulting to no-reply@ the token's one domain.
func (s *Server) sendMailSage(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	release, err := s.admitSend(w, r, caller, maxSendBody)
	if err != nil {
		return err
	}
	defer release()
	idem, err := idempotency(r)
	if err != nil {
		return err
	}
	var in mailSageJSON
	if err := decodeLimit(w, r, &in, maxSendBody); err != nil {
		return err
	}
	e := &tokend.Email{Subject: in.Subject, Text: in.Body, HTML: in.HTML}
	if in.Recipient != nil {
		e.To = []tokend.Address{{Email: in.Recipient.Email, Name: in.Recipient.Name}}
	}
	if in.From != nil && (in.From.Email != "" || in.From.Name != "") {
		e.From = tokend.Address{Email: in.From.Email, Name: in.From.Name}
	} else {
		from, err := s.mailer.DefaultSender(r.Context(), caller)
		if err != nil {
			return err
		}
		e.From = from
	}
	sent, allowance, err := s.mailer.Send(r.Context(), caller, e, idem()...)
	s.setAllowance(w, allowance)
	if err != nil {
		return err
	}
	markReplayed(w, sent)
	encode(w, http.StatusOK, map[string]any{"success": true, "message_id": sent.MessageIDs[0], "status": "accepted"})
	return nil
}

// writeMailSageError writes MailSage's error shape, {"error", "status",
// "code"}, as its authentication errors are.
func (s *Server) writeMailSageError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := http.StatusInternalServerError, "internal_error", "Internal server error"
	var tooBig *http.MaxBytesError
	var e *tokend.Error
	switch {
	case errors.As(err, &tooBig):
		status, code, msg = http.StatusRequestEntityTooLarge, "payload_too_large", tooLargeMessage(tooBig)
	case !errors.As(err, &e):
		s.logFailure(r, err)
	default:
		switch e.Code {
		case tokend.EINVALID:
			status, code = http.StatusBadRequest, "invalid_request"
			switch e.Reason {
			case "sender_required", tokend.ReasonIdempotencyKeyReused:
				status, code = http.StatusUnprocessableEntity, e.Reason
			}
			renamed := tokend.FieldErrors{}
			for f, msgs := range e.Fields {
				renamed[mailSageField(f)] = msgs
			}
			msg = strings.Join(errorList(&tokend.Error{Code: e.Code, Fields: renamed}), "; ")
		case tokend.EUNAUTHORIZED:
			status, code, msg = http.StatusUnauthorized, e.Reason, e.Message
			if code == "" {
				code = "invalid_api_key"
			}
		case tokend.EFORBIDDEN:
			status, code, msg = http.StatusForbidden, "insufficient_permissions", e.Message
		case tokend.ENOTFOUND:
			status, code, msg = http.StatusNotFound, "not_found", "Not Found"
		case tokend.ERATELIMITED:
			status, code, msg = http.StatusTooManyRequests, e.Reason, e.Message
			if code == "" {
				code = "rate_limited"
			}
		case tokend.ETOOLARGE:
			status, code, msg = http.StatusRequestEntityTooLarge, "payload_too_large", e.Message
		case tokend.EUNAVAILABLE:
			status, code, msg = http.StatusServiceUnavailable, e.Reason, e.Message
			if code == "" {
				code = "delivery_unavailable"
			}
		default:
			s.logFailure(r, err)
		}
	}
	encode(w, status, map[string]any{"error": msg, "status": status, "code": code})
}

// idempotency reads a send's Idempotency-Key header. With one, it hashes the
// route and the body as the handler reads it, and returns the option that
// makes the send idempotent, to call once the body is read; without one,
// nothing. A key that is not 1 to 255 printable characters is EINVALID.
func idempotency(r *http.Request) (func() []tokend.SendOption, error) {
	keys, ok := r.Header["Idempotency-Key"]
	if !ok {
		return func() []tokend.SendOption { return nil }, nil
	}
	if len(keys) != 1 {
		return nil, tokend.Invalid("Idempotency-Key", "must be given once")
	}
	if err := tokend.ParseIdempotencyKey(keys[0]); err != nil {
		return nil, err
	}
	h := sha256.New()
	io.WriteString(h, r.Method+" "+r.URL.Path+"\n")
	r.Body = teeBody{io.TeeReader(r.Body, h), r.Body}
	return func() []tokend.SendOption { return []tokend.SendOption{tokend.WithIdempotency(keys[0], h.Sum(nil))} }, nil
}

type teeBody struct {
	io.Reader
	io.Closer
}

// markReplayed says, as Stripe does, that an answer repeats an earlier
// send's under the same idempotency key.
func markReplayed(w http.ResponseWriter, sent *tokend.Sent) {
	if sent != nil && sent.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
}
