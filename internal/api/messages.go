package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
)

// sandboxMessageJSON is a captured email in the shape of Mailtrap's sandbox
// messages. Both inbox_id (the older API and its SDKs) and sandbox_id (the
// newer) are given.
type sandboxMessageJSON struct {
	ID                   int64     `json:"id"`
	InboxID              int64     `json:"inbox_id"`
	SandboxID            int64     `json:"sandbox_id"`
	Subject              string    `json:"subject"`
	SentAt               time.Time `json:"sent_at"`
	FromEmail            string    `json:"from_email"`
	FromName             string    `json:"from_name"`
	ToEmail              string    `json:"to_email"`
	ToName               string    `json:"to_name"`
	EmailSize            int       `json:"email_size"`
	IsRead               bool      `json:"is_read"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
	HTMLBodySize         int       `json:"html_body_size"`
	TextBodySize         int       `json:"text_body_size"`
	HumanSize            string    `json:"human_size"`
	HTMLPath             string    `json:"html_path"`
	TxtPath              string    `json:"txt_path"`
	RawPath              string    `json:"raw_path"`
	DownloadPath         string    `json:"download_path"`
	HTMLSourcePath       string    `json:"html_source_path"`
	BlacklistsReportInfo bool      `json:"blacklists_report_info"`
	SMTPInformation      smtpInfo  `json:"smtp_information"`
}

type smtpInfo struct {
	OK   bool `json:"ok"`
	Data struct {
		MailFromAddr string `json:"mail_from_addr"`
	} `json:"data"`
}

// messagesBase is the path prefix of the sandbox's messages as the request
// named them: /api/accounts/{a}/inboxes/{i} or /api/sandboxes/{i}.
func messagesBase(r *http.Request) string {
	if a := r.PathValue("account_id"); a != "" {
		return "/api/accounts/" + a + "/inboxes/" + r.PathValue("inbox_id") + "/messages"
	}
	return "/api/sandboxes/" + r.PathValue("inbox_id") + "/messages"
}

func toSandboxMessage(r *http.Request, e *tokend.StoredEmail) sandboxMessageJSON {
	base := messagesBase(r) + "/" + strconv.FormatInt(e.ID, 10)
	out := sandboxMessageJSON{
		ID: e.ID, InboxID: e.SandboxID, SandboxID: e.SandboxID, Subject: e.Subject, SentAt: e.CreatedAt,
		FromEmail: e.From.Email, FromName: e.From.Name, ToEmail: e.To.Email, ToName: e.To.Name,
		EmailSize: e.Size, IsRead: e.IsRead, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
		HTMLBodySize: e.HTMLSize, TextBodySize: e.TextSize, HumanSize: humanSize(e.Size),
		HTMLPath: base + "/body.html", TxtPath: base + "/body.txt", RawPath: base + "/body.raw",
		DownloadPath: base + "/body.eml", HTMLSourcePath: base + "/body.htmlsource",
	}
	out.SMTPInformation.OK = true
	out.SMTPInformation.Data.MailFromAddr = e.MailFrom
	return out
}

func humanSize(n int) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d Bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

// queryInt reads an optional positive integer query parameter.
func queryInt(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, ok := parseID(v)
	if !ok {
		return 0, tokend.Invalid(name, "must be a positive integer")
	}
	return n, nil
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	sb, err := pathID(r, "inbox_id")
	if err != nil {
		return err
	}
	page, err := queryInt(r, "page")
	if err != nil {
		return err
	}
	lastID, err := queryInt(r, "last_id")
	if err != nil {
		return err
	}
	list, err := s.mailer.SandboxMessages(r.Context(), caller, sb, int(min(page, 1<<20)), lastID, r.URL.Query().Get("search"))
	if err != nil {
		return err
	}
	out := make([]sandboxMessageJSON, len(list))
	for i := range list {
		out[i] = toSandboxMessage(r, &list[i])
	}
	encode(w, http.StatusOK, out)
	return nil
}

// messagePath reads the sandbox and message ids of a message route.
func messagePath(r *http.Request) (sandbox, id int64, err error) {
	if sandbox, err = pathID(r, "inbox_id"); err == nil {
		id, err = pathID(r, "id")
	}
	return sandbox, id, err
}

// message loads the captured email the path names.
func (s *Server) message(r *http.Request, caller *tokend.Token) (*tokend.StoredEmail, error) {
	sb, id, err := messagePath(r)
	if err != nil {
		return nil, err
	}
	return s.mailer.SandboxMessage(r.Context(), caller, sb, id)
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	e, err := s.message(r, caller)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toSandboxMessage(r, e))
	return nil
}

// readFlag accepts is_read as a boolean or as "true"/"false", as Mailtrap's
// document types it as a string while its SDKs send a boolean.
type readFlag struct {
	Set   bool
	Value bool
}

func (f *readFlag) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "true":
		*f = readFlag{true, true}
	case "false":
		*f = readFlag{true, false}
	default:
		return tokend.Invalid("is_read", "must be true or false")
	}
	return nil
}

func (s *Server) updateMessage(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	sb, id, err := messagePath(r)
	if err != nil {
		return err
	}
	var req struct {
		Message *struct {
			IsRead readFlag `json:"is_read"`
		} `json:"message"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Message == nil || !req.Message.IsRead.Set {
		return tokend.Invalid("is_read", `is required: {"message": {"is_read": true}}`)
	}
	e, err := s.mailer.MarkSandboxMessage(r.Context(), caller, sb, id, req.Message.IsRead.Value)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toSandboxMessage(r, e))
	return nil
}

func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	sb, id, err := messagePath(r)
	if err != nil {
		return err
	}
	e, err := s.mailer.DeleteSandboxMessage(r.Context(), caller, sb, id)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toSandboxMessage(r, e))
	return nil
}

// messageBody serves one of a captured email's bodies; a part it does not
// have is 409 Conflict in plain text, as Mailtrap answers.
func (s *Server) messageBody(part string) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
		e, err := s.message(r, caller)
		if err != nil {
			return err
		}
		var body []byte
		var ctype string
		switch part {
		case "raw":
			body, ctype = e.Raw, "text/plain; charset=utf-8"
		case "eml":
			body, ctype = e.Raw, "message/rfc822"
		default:
			p, err := mail.Parse(e.Raw)
			if err != nil {
				return err
			}
			switch {
			case part == "txt" && p.HasText:
				body, ctype = []byte(p.Text), "text/plain; charset=utf-8"
			case part == "txt":
				return conflict(w, "Text body does not exist.")
			case !p.HasHTML:
				return conflict(w, "HTML body does not exist.")
			case part == "htmlsource":
				body, ctype = []byte(p.HTML), "text/plain; charset=utf-8"
			default:
				body, ctype = []byte(p.HTML), "text/html; charset=utf-8"
				// The captured HTML is the sender's: let it render, but never run
				// scripts or load anything under tokend's origin.
				w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'")
			}
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if part == "eml" {
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="message-%d.eml"`, e.ID))
		}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		return nil
	}
}

func conflict(w http.ResponseWriter, msg string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusConflict)
	w.Write([]byte(msg))
	return nil
}

func (s *Server) messageHeaders(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	e, err := s.message(r, caller)
	if err != nil {
		return err
	}
	p, err := mail.Parse(e.Raw)
	if err != nil {
		return err
	}
	headers := map[string]string{}
	for f := p.Header.Fields(); f.Next(); {
		key := strings.ReplaceAll(strings.ToLower(f.Key()), "-", "_")
		if _, seen := headers[key]; !seen {
			v, err := f.Text()
			if err != nil {
				v = f.Value()
			}
			headers[key] = v
		}
	}
	encode(w, http.StatusOK, map[string]any{"headers": headers})
	return nil
}

type attachmentInfoJSON struct {
	ID                  int64     `json:"id"`
	MessageID           int64     `json:"message_id"`
	Filename            string    `json:"filename"`
	AttachmentType      string    `json:"attachment_type"`
	ContentType         string    `json:"content_type"`
	ContentID           *string   `json:"content_id"`
	TransferEncoding    *string   `json:"transfer_encoding"`
	AttachmentSize      int       `json:"attachment_size"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	AttachmentHumanSize string    `json:"attachment_human_size"`
	DownloadPath        string    `json:"download_path"`
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) attachments(r *http.Request, caller *tokend.Token) (*tokend.StoredEmail, []mail.ParsedAttachment, error) {
	e, err := s.message(r, caller)
	if err != nil {
		return nil, nil, err
	}
	p, err := mail.Parse(e.Raw)
	if err != nil {
		return nil, nil, err
	}
	return e, p.Attachments, nil
}

func toAttachmentInfo(r *http.Request, e *tokend.StoredEmail, a *mail.ParsedAttachment) attachmentInfoJSON {
	return attachmentInfoJSON{
		ID: a.ID, MessageID: e.ID, Filename: a.Filename, AttachmentType: a.Disposition, ContentType: a.ContentType,
		ContentID: optionalString(a.ContentID), TransferEncoding: optionalString(a.TransferEncoding),
		AttachmentSize: len(a.Content), CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt,
		AttachmentHumanSize: humanSize(len(a.Content)),
		DownloadPath:        fmt.Sprintf("%s/%d/attachments/%d/download", messagesBase(r), e.ID, a.ID),
	}
}

func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	e, list, err := s.attachments(r, caller)
	if err != nil {
		return err
	}
	kind := r.URL.Query().Get("attachment_type")
	out := []attachmentInfoJSON{}
	for i := range list {
		if kind == "" || list[i].Disposition == kind {
			out = append(out, toAttachmentInfo(r, e, &list[i]))
		}
	}
	encode(w, http.StatusOK, out)
	return nil
}

// attachment finds the attachment {attachment_id} names.
func (s *Server) attachment(r *http.Request, caller *tokend.Token) (*tokend.StoredEmail, *mail.ParsedAttachment, error) {
	aid, err := pathID(r, "attachment_id")
	if err != nil {
		return nil, nil, err
	}
	e, list, err := s.attachments(r, caller)
	if err != nil {
		return nil, nil, err
	}
	if aid > int64(len(list)) {
		return nil, nil, errNotFound
	}
	return e, &list[aid-1], nil
}

func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	e, a, err := s.attachment(r, caller)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toAttachmentInfo(r, e, a))
	return nil
}

// downloadAttachment sends an attachment's bytes as a download, never for
// the browser to render under tokend's origin.
func (s *Server) downloadAttachment(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	_, a, err := s.attachment(r, caller)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+urlPathEscape(a.Filename))
	h.Set("Content-Length", strconv.Itoa(len(a.Content)))
	w.WriteHeader(http.StatusOK)
	w.Write(a.Content)
	return nil
}

func urlPathEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
