package api

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// emailLogJSON is a message (one recipient of a send) in the shape of
// Mailtrap's email logs, with tokend's own delivery state beside Mailtrap's
// status. Fields tokend does not record (client_ip, template_id, opens and
// clicks) are given as Mailtrap gives them when empty.
type emailLogJSON struct {
	MessageID         string            `json:"message_id"`
	Status            string            `json:"status"`
	Subject           string            `json:"subject"`
	RFCMessageID      string            `json:"rfc_message_id"`
	InReplyTo         *string           `json:"in_reply_to"`
	References        []string          `json:"references"`
	ThreadID          *string           `json:"thread_id"`
	From              string            `json:"from"`
	To                string            `json:"to"`
	SentAt            time.Time         `json:"sent_at"`
	ClientIP          *string           `json:"client_ip"`
	Category          *string           `json:"category"`
	CustomVariables   map[string]string `json:"custom_variables"`
	SendingStream     string            `json:"sending_stream"`
	SendingDomainID   *int64            `json:"sending_domain_id"`
	DomainID          *int64            `json:"domain_id"`
	TemplateID        *int64            `json:"template_id"`
	TemplateVariables map[string]string `json:"template_variables"`
	OpensCount        int               `json:"opens_count"`
	ClicksCount       int               `json:"clicks_count"`
	// tokend's own.
	DeliveryStatus string           `json:"delivery_status"`
	Attempts       int              `json:"attempts"`
	LastError      *string          `json:"last_error"`
	UpdatedAt      time.Time        `json:"updated_at"`
	SendingDomain  *string          `json:"sending_domain"`
	APITokenID     int64            `json:"api_token_id"`
	Captured       bool             `json:"captured"`
	SandboxID      *int64           `json:"sandbox_id"`
	SandboxMsgID   *int64           `json:"sandbox_message_id"`
	Events         []emailEventJSON `json:"events"`
}

type emailEventJSON struct {
	EventType string         `json:"event_type"`
	CreatedAt time.Time      `json:"created_at"`
	Details   map[string]any `json:"details"`
}

type emailLogListJSON struct {
	Messages       []emailLogJSON `json:"messages"`
	TotalCount     int            `json:"total_count"`
	NextPageCursor *string        `json:"next_page_cursor"`
}

func toEmailLog(l *tokend.MessageLog) emailLogJSON {
	out := emailLogJSON{
		MessageID: l.ID, Status: tokend.LogStatus(l.State), Subject: l.Email.Subject, References: []string{},
		From: l.Email.From.Email, To: l.Recipient, SentAt: l.CreatedAt, Category: optionalString(l.Email.Category),
		CustomVariables: l.Email.CustomVariables, SendingStream: "transactional", TemplateVariables: map[string]string{},
		DeliveryStatus: string(l.State), Attempts: l.Attempts, LastError: optionalString(l.LastError), UpdatedAt: l.UpdatedAt,
		SendingDomain: optionalString(l.Domain), APITokenID: l.Email.TokenID, Captured: l.Captured(),
		Events: make([]emailEventJSON, 0, len(l.Events)),
	}
	if out.CustomVariables == nil {
		out.CustomVariables = map[string]string{}
	}
	if l.Email.DomainID != 0 {
		out.SendingDomainID, out.DomainID = &l.Email.DomainID, &l.Email.DomainID
		out.RFCMessageID = l.RFCMessageID()
	}
	if l.Email.SandboxID != 0 {
		out.SandboxID, out.SandboxMsgID = &l.Email.SandboxID, &l.Email.ID
		out.RFCMessageID = l.RFCMessageID()
	}
	for _, e := range l.Events {
		out.Events = append(out.Events, emailEventJSON{EventType: string(e.Type), CreatedAt: e.At, Details: eventDetails(e)})
	}
	return out
}

// eventDetails are an event's details under Mailtrap's names, with those
// tokend does not know (the sending IP, the recipient's MX) as null.
func eventDetails(e tokend.EmailEvent) map[string]any {
	d := e.Details
	out := map[string]any{}
	if d.Attempt > 0 {
		out["attempt"] = d.Attempt
	}
	switch e.Type {
	case tokend.EmailDelivery:
		out["sending_ip"], out["recipient_mx"], out["email_service_provider"] = nil, nil, nil
	case tokend.EmailSoftBounce, tokend.EmailBounce:
		out["sending_ip"], out["recipient_mx"], out["email_service_provider"] = nil, nil, nil
		out["email_service_provider_status"] = optionalString(d.Status)
		out["email_service_provider_response"] = optionalString(d.Response)
		out["bounce_category"] = optionalString(d.BounceCategory)
		if d.Code != 0 {
			out["smtp_code"] = d.Code
		}
	case tokend.EmailReject:
		out["reject_reason"] = optionalString(d.RejectReason)
	}
	return out
}

func (s *Server) emailLog(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	l, err := s.opts.Logs.Message(r.Context(), caller, r.PathValue("message_id"))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toEmailLog(l))
	return nil
}

func (s *Server) listEmailLogs(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	q, err := parseLogQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.opts.Logs.List(r.Context(), caller, q)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toEmailLogList(page.Messages, page.Total, page.Next))
	return nil
}

func toEmailLogList(logs []tokend.MessageLog, total int, next *tokend.LogCursor) emailLogListJSON {
	out := emailLogListJSON{Messages: make([]emailLogJSON, len(logs)), TotalCount: total}
	for i := range logs {
		out.Messages[i] = toEmailLog(&logs[i])
	}
	if next != nil {
		cursor := next.String()
		out.NextPageCursor = &cursor
	}
	return out
}

// The API's shapes of email logs and suppressions, for the CLI's --json:
// one encoding for both ways in.

// EmailLogJSON is one message's log as GET .../email_logs/{id} answers it.
func EmailLogJSON(l *tokend.MessageLog) any { return toEmailLog(l) }

// EmailLogListJSON is a listing as GET .../email_logs answers it.
func EmailLogListJSON(logs []tokend.MessageLog, total int, next *tokend.LogCursor) any {
	return toEmailLogList(logs, total, next)
}

// SuppressionJSON is a suppression as the suppressions API answers it.
func SuppressionJSON(sp *tokend.Suppression) any { return toSuppression(sp) }

// parseLogQuery reads Mailtrap's email log query: search_after, and
// filters[sent_after], filters[sent_before] and filters[field][operator]
// with filters[field][value] (or filters[field][value][] for several; both
// may be repeated, as Mailtrap's SDKs repeat them). A parameter that takes
// one value given more than once is refused, rather than one of them used;
// parameters that are not filters and not search_after are ignored.
func parseLogQuery(v url.Values) (tokend.LogQuery, error) {
	q := tokend.LogQuery{SearchAfter: v.Get("search_after")}
	type parts struct {
		op     string
		values []string
	}
	fields := map[string]*parts{}
	var fe tokend.FieldErrors
	if len(v["search_after"]) > 1 {
		fe.Add("search_after", "must be given once")
	}
	for key, vals := range v {
		rest, ok := strings.CutPrefix(key, "filters[")
		if !ok {
			continue
		}
		field, rest, ok := strings.Cut(rest, "]")
		if !ok || field == "" {
			fe.Add("filters", "has a parameter "+clip(key, 60)+" that is not filters[field][operator] or filters[field][value]")
			continue
		}
		switch field {
		case "sent_after", "sent_before":
			if rest != "" {
				fe.Add("filters["+field+"]", "must be one date-time (RFC 3339)")
				continue
			}
			if len(vals) != 1 {
				fe.Add("filters["+field+"]", "must be given once")
				continue
			}
			t, err := time.Parse(time.RFC3339, vals[0])
			if err != nil {
				fe.Add("filters["+field+"]", "must be a date-time such as 2025-01-31T23:59:59Z (RFC 3339)")
				continue
			}
			if field == "sent_after" {
				q.SentAfter = t
			} else {
				q.SentBefore = t
			}
			continue
		}
		p := fields[field]
		if p == nil {
			p = &parts{}
			fields[field] = p
		}
		switch {
		case rest == "[operator]":
			if len(vals) > 1 {
				fe.Add(key, "must be given once")
				continue
			}
			p.op = vals[0]
		case rest == "[value]" || rest == "[value][]" || strings.HasPrefix(rest, "[value][") && strings.HasSuffix(rest, "]"):
			p.values = append(p.values, vals...)
		default:
			fe.Add("filters["+field+"]", "takes [operator] and [value]")
		}
	}
	if err := fe.Err(); err != nil {
		return q, err
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // the first error named is the same every time
	for _, name := range names {
		p := fields[name]
		f, err := tokend.NewLogFilter(name, p.op, p.values)
		if err != nil {
			return q, err
		}
		q.Filters = append(q.Filters, f)
	}
	return q, nil
}

// suppressionJSON is a suppression in the shape of Mailtrap's, whose
// message_* fields describe the message that bounced (null for one added
// through the API, and for what tokend does not record).
type suppressionJSON struct {
	ID                     string    `json:"id"`
	Type                   string    `json:"type"`
	CreatedAt              time.Time `json:"created_at"`
	Email                  string    `json:"email"`
	SendingStream          string    `json:"sending_stream"`
	DomainID               *int64    `json:"domain_id"`
	DomainName             *string   `json:"domain_name"`
	MessageID              *string   `json:"message_id"`
	MessageBounceCategory  *string   `json:"message_bounce_category"`
	MessageCategory        *string   `json:"message_category"`
	MessageClientIP        *string   `json:"message_client_ip"`
	MessageCreatedAt       *string   `json:"message_created_at"`
	MessageESPResponse     *string   `json:"message_esp_response"`
	MessageESPServerType   *string   `json:"message_esp_server_type"`
	MessageOutgoingIP      *string   `json:"message_outgoing_ip"`
	MessageRecipientMXName *string   `json:"message_recipient_mx_name"`
	MessageSenderEmail     *string   `json:"message_sender_email"`
	MessageSubject         *string   `json:"message_subject"`
}

func toSuppression(sp *tokend.Suppression) suppressionJSON {
	out := suppressionJSON{ID: sp.ID, Type: string(sp.Type), CreatedAt: sp.CreatedAt, Email: sp.Email, SendingStream: sp.SendingStream}
	if sp.DomainID != 0 {
		out.DomainID, out.DomainName = &sp.DomainID, &sp.DomainName
	}
	if src := sp.Source; src != nil {
		created := src.CreatedAt.Format(time.RFC3339Nano)
		out.MessageID, out.MessageCreatedAt = &src.MessageID, &created
		out.MessageBounceCategory, out.MessageCategory = optionalString(src.BounceCategory), optionalString(src.Category)
		out.MessageESPResponse, out.MessageSenderEmail = optionalString(src.Response), optionalString(src.SenderEmail)
		out.MessageSubject = optionalString(src.Subject)
	}
	return out
}

func (s *Server) listSuppressions(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	if len(r.URL.Query()["email"]) > 1 {
		return tokend.Invalid("email", "must be given once")
	}
	list, err := s.opts.Suppressions.List(r.Context(), caller, r.URL.Query().Get("email"))
	if err != nil {
		return err
	}
	out := make([]suppressionJSON, len(list))
	for i := range list {
		out[i] = toSuppression(&list[i])
	}
	encode(w, http.StatusOK, out)
	return nil
}

// suppressionRequest is the body of a new suppression, as Mailtrap's API
// takes it (unwrapped), or wrapped in "suppression".
type suppressionRequest struct {
	Email         string              `json:"email"`
	DomainID      *int64              `json:"domain_id"`
	Type          string              `json:"type"`
	SendingStream string              `json:"sending_stream"`
	Suppression   *suppressionRequest `json:"suppression"`
}

func (s *Server) createSuppression(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var in suppressionRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Suppression != nil {
		in = *in.Suppression
	}
	var domain int64
	if in.DomainID != nil {
		domain = *in.DomainID
	}
	sp, created, err := s.opts.Suppressions.Create(r.Context(), caller, tokend.SuppressionInput{
		Email: in.Email, DomainID: domain, Type: tokend.SuppressionType(in.Type), SendingStream: in.SendingStream})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	encode(w, status, map[string]any{"data": toSuppression(sp)})
	return nil
}

func (s *Server) deleteSuppression(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	sp, err := s.opts.Suppressions.Delete(r.Context(), caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toSuppression(sp))
	return nil
}
