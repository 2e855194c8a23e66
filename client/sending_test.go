package client_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tokend/tokend/client"
)

func hello(from string, to ...string) *client.Email {
	e := &client.Email{From: client.Address{Email: from}, Subject: "Hello", Text: "Hello there"}
	for _, t := range to {
		e.To = append(e.To, client.Address{Email: t})
	}
	return e
}

// A sandbox send is captured, never delivered, and read back through the
// messages methods: list, get, bodies, headers, attachments, read flag,
// delete, and its log.
func TestSandboxSendReadBack(t *testing.T) {
	e := newEnv(t, withoutDelivery()) // no relay: only captured mail can be sent
	ctx := t.Context()
	admin := e.client(e.admin)
	project, err := admin.CreateProject(ctx, "QA")
	ok(t, err)
	sb, err := admin.CreateSandbox(ctx, project.ID, "Staging")
	ok(t, err)

	rich := &client.Email{
		From:    client.Address{Email: "qa@anywhere.example", Name: "QA"},
		To:      []client.Address{{Email: "dev@example.org", Name: "Dev"}},
		Cc:      []client.Address{{Email: "lead@example.org"}},
		Subject: "Your order", Text: "Thanks!", HTML: `<p>Thanks <b>a lot</b></p>`,
		Headers:         map[string]string{"X-Order": "1234"},
		CustomVariables: map[string]string{"user_id": "42"},
		Category:        "orders",
		Attachments: []client.Attachment{
			{Filename: "logo.png", Content: []byte("\x89PNG\r\n"), Type: "image/png", Disposition: "inline", ContentID: "logo"},
			{Filename: "notes.txt", Content: []byte("some notes")},
		},
	}
	sent, err := admin.SendToSandbox(ctx, sb.ID, rich)
	ok(t, err)
	if !sent.Success || len(sent.MessageIDs) != 2 {
		t.Fatalf("sandbox send = %+v, want one message id for each of to and cc", sent)
	}
	_, err = admin.SendToSandbox(ctx, sb.ID, hello("qa@anywhere.example", "plain@example.org"))
	ok(t, err)

	msgs, err := admin.ListMessages(ctx, sb.ID, client.MessageListOptions{})
	ok(t, err)
	// One captured message an email, whatever its recipients.
	if len(msgs) != 2 || msgs[0].ToEmail != "plain@example.org" {
		t.Fatalf("sandbox holds %+v, want 2 messages, newest first", msgs)
	}
	plain := msgs[0]
	var m client.Message
	for _, x := range msgs {
		if x.ToEmail == "dev@example.org" {
			m = x
		}
	}
	if m.ID == 0 || m.SandboxID != sb.ID || m.Subject != "Your order" || m.FromEmail != "qa@anywhere.example" ||
		m.FromName != "QA" || m.ToName != "Dev" || m.IsRead || m.EmailSize == 0 || m.HumanSize == "" ||
		m.MailFrom != "qa@anywhere.example" || m.SentAt.IsZero() {
		t.Errorf("captured message = %+v", m)
	}
	found, err := admin.ListMessages(ctx, sb.ID, client.MessageListOptions{Search: "DEV@"})
	ok(t, err)
	if len(found) != 1 || found[0].ID != m.ID {
		t.Errorf("search = %+v", found)
	}
	older, err := admin.ListMessages(ctx, sb.ID, client.MessageListOptions{LastID: plain.ID})
	ok(t, err)
	if len(older) != 1 || older[0].ID != m.ID {
		t.Errorf("messages before %d = %+v", plain.ID, older)
	}
	if page2, err := admin.ListMessages(ctx, sb.ID, client.MessageListOptions{Page: 2}); err != nil || len(page2) != 0 {
		t.Errorf("page 2 = %+v, %v", page2, err)
	}

	got, err := admin.GetMessage(ctx, sb.ID, m.ID)
	ok(t, err)
	if got.ID != m.ID || got.Subject != m.Subject {
		t.Errorf("get = %+v", got)
	}

	// Bodies, as bytes and streamed.
	for _, tt := range []struct {
		part     client.BodyPart
		contains string
	}{
		{client.BodyHTML, "<p>Thanks <b>a lot</b></p>"},
		{client.BodyHTMLSource, "<p>Thanks <b>a lot</b></p>"},
		{client.BodyText, "Thanks!"},
		{client.BodyRaw, "Subject: Your order"},
		{client.BodyEML, "X-Order: 1234"},
	} {
		t.Run("body "+string(tt.part), func(t *testing.T) {
			b, err := admin.MessageBody(ctx, sb.ID, m.ID, tt.part)
			ok(t, err)
			if !strings.Contains(string(b), tt.contains) {
				t.Errorf("%s body %q does not hold %q", tt.part, b, tt.contains)
			}
			var w bytes.Buffer
			ok(t, admin.WriteMessageBody(ctx, sb.ID, m.ID, tt.part, &w))
			if !bytes.Equal(w.Bytes(), b) {
				t.Errorf("streamed %s body differs", tt.part)
			}
		})
	}
	_, err = admin.MessageBody(ctx, sb.ID, plain.ID, client.BodyHTML)
	if ae := apiError(t, err, http.StatusConflict); ae.Code != "conflict" || ae.Message != "HTML body does not exist." {
		t.Errorf("a text-only message's HTML: %+v", ae)
	}
	if _, err := admin.MessageBody(ctx, sb.ID, m.ID, "pdf"); err == nil || client.StatusOf(err) != 0 {
		t.Errorf("an unknown body part: %v, want an error before any request", err)
	}

	headers, err := admin.MessageHeaders(ctx, sb.ID, m.ID)
	ok(t, err)
	if headers["subject"] != "Your order" || headers["x_order"] != "1234" || !strings.Contains(headers["to"], "dev@example.org") {
		t.Errorf("headers = %v", headers)
	}

	atts, err := admin.ListAttachments(ctx, sb.ID, m.ID, "")
	ok(t, err)
	if len(atts) != 2 {
		t.Fatalf("attachments = %+v", atts)
	}
	byName := map[string]client.MessageAttachment{}
	for _, a := range atts {
		byName[a.Filename] = a
	}
	notes, logo := byName["notes.txt"], byName["logo.png"]
	if notes.Size != len("some notes") || notes.AttachmentType != "attachment" || notes.MessageID != m.ID ||
		logo.AttachmentType != "inline" || logo.ContentID != "logo" || logo.ContentType != "image/png" {
		t.Errorf("attachments = %+v", atts)
	}
	inline, err := admin.ListAttachments(ctx, sb.ID, m.ID, "inline")
	ok(t, err)
	if len(inline) != 1 || inline[0].Filename != "logo.png" {
		t.Errorf("inline attachments = %+v", inline)
	}
	one, err := admin.GetAttachment(ctx, sb.ID, m.ID, notes.ID)
	ok(t, err)
	if one.Filename != "notes.txt" {
		t.Errorf("get attachment = %+v", one)
	}
	var content bytes.Buffer
	ok(t, admin.DownloadAttachment(ctx, sb.ID, m.ID, notes.ID, &content))
	if content.String() != "some notes" {
		t.Errorf("downloaded %q", content.String())
	}
	if err := admin.DownloadAttachment(ctx, sb.ID, m.ID, 3, &content); !client.IsNotFound(err) {
		t.Errorf("a third attachment: %v, want 404", err)
	}

	// The log of a captured message points at it.
	log, err := admin.GetEmailLog(ctx, sent.MessageIDs[0])
	ok(t, err)
	if log.Status != client.StatusCaptured || log.DeliveryStatus != client.DeliveryCaptured || log.SandboxID != sb.ID ||
		log.SandboxMessageID == 0 || log.DomainID != 0 || log.To != "dev@example.org" || log.Category != "orders" ||
		log.CustomVariables["user_id"] != "42" || log.Subject != "Your order" {
		t.Errorf("email log = %+v", log)
	}
	// Each recipient has its own message id; they share the one capture.
	ccLog, err := admin.GetEmailLog(ctx, sent.MessageIDs[1])
	ok(t, err)
	if log.SandboxMessageID != m.ID || ccLog.SandboxMessageID != m.ID || ccLog.To != "lead@example.org" {
		t.Errorf("logs point at messages %d and %d (to %s), want both at %d", log.SandboxMessageID, ccLog.SandboxMessageID, ccLog.To, m.ID)
	}
	if _, err := e.client(e.otherAdmin).GetEmailLog(ctx, sent.MessageIDs[0]); !client.IsNotFound(err) {
		t.Errorf("another account reading the log: %v, want 404", err)
	}
	if _, err := admin.GetEmailLog(ctx, "../api_tokens"); err == nil || client.StatusOf(err) != 0 {
		t.Errorf("a message id with a slash: %v, want an error before any request", err)
	}

	// Read flag and delete.
	marked, err := admin.MarkMessageRead(ctx, sb.ID, m.ID, true)
	ok(t, err)
	if !marked.IsRead {
		t.Errorf("marked = %+v", marked)
	}
	if m2, err := admin.GetMessage(ctx, sb.ID, m.ID); err != nil || !m2.IsRead {
		t.Errorf("after marking read: %+v, %v", m2, err)
	}
	if unmarked, err := admin.MarkMessageRead(ctx, sb.ID, m.ID, false); err != nil || unmarked.IsRead {
		t.Errorf("marked unread: %+v, %v", unmarked, err)
	}
	deleted, err := admin.DeleteMessage(ctx, sb.ID, m.ID)
	ok(t, err)
	if deleted.ID != m.ID {
		t.Errorf("delete answered %+v", deleted)
	}
	if _, err := admin.GetMessage(ctx, sb.ID, m.ID); !client.IsNotFound(err) {
		t.Errorf("a deleted message: %v, want 404", err)
	}

	// A sandbox batch answers each email; the refused one is not captured.
	res, err := admin.SendBatchToSandbox(ctx, sb.ID, client.Batch{
		Base: &client.Email{From: client.Address{Email: "news@anywhere.example"}, Subject: "Monthly", Text: "News"},
		Requests: []client.Email{
			{To: []client.Address{{Email: "a@example.org"}}},
			{To: []client.Address{{Email: "b@example.org"}}, Subject: "Override"},
			{Subject: "No recipients"},
		},
	})
	ok(t, err)
	if !res.Success || len(res.Responses) != 3 || !res.Responses[0].Success || !res.Responses[1].Success ||
		res.Responses[2].Success || res.Responses[2].Err() == nil || !strings.Contains(res.Responses[2].Err().Error(), "'to'") ||
		res.Responses[0].Err() != nil {
		t.Errorf("sandbox batch = %+v", res)
	}
	if subjects, err := admin.ListMessages(ctx, sb.ID, client.MessageListOptions{Search: "override"}); err != nil || len(subjects) != 1 {
		t.Errorf("the overriding item: %+v, %v", subjects, err)
	}
}

// Sending errors come in the sending API's shape; each maps to an *Error.
func TestSendErrors(t *testing.T) {
	e := newEnv(t)
	noRelay := newEnv(t, withoutDelivery())
	ctx := t.Context()
	admin := e.client(e.admin)
	_, err := admin.CreateDomain(ctx, "example.com")
	ok(t, err)
	viewer, err := admin.CreateToken(ctx, client.NewToken{Name: "viewer", Permissions: []client.Permission{perm("account", e.acme, client.Viewer)}})
	ok(t, err)
	tests := []struct {
		name     string
		call     func() error
		status   int
		code     string
		contains string // in the message
	}{
		{"live mail without a relay", func() error {
			_, err := noRelay.client(noRelay.admin).Send(ctx, hello("a@example.com", "u@example.org"))
			return err
		}, 503, "unavailable", "--smtp-relay"},
		{"no subject", func() error {
			m := hello("a@example.com", "u@example.org")
			m.Subject = ""
			_, err := admin.Send(ctx, m)
			return err
		}, 400, "bad_request", "'subject' is required"},
		{"no sender", func() error { _, err := admin.Send(ctx, hello("", "u@example.org")); return err }, 400, "bad_request", "'from' is required"},
		{"a domain the account does not have", func() error { _, err := admin.Send(ctx, hello("a@nowhere.example", "u@example.org")); return err },
			403, "forbidden", "nowhere.example"},
		{"a viewer", func() error {
			_, err := e.client(viewer.Value).Send(ctx, hello("a@example.com", "u@example.org"))
			return err
		},
			403, "forbidden", "example.com"},
		{"a bad token", func() error {
			_, err := e.client("tk_live_nope").Send(ctx, hello("a@example.com", "u@example.org"))
			return err
		},
			401, "invalid_api_key", "API token"},
		{"an unknown sandbox", func() error {
			_, err := admin.SendToSandbox(ctx, 999999, hello("a@example.com", "u@example.org"))
			return err
		},
			404, "not_found", "Not Found"},
		{"an empty batch", func() error { _, err := admin.SendBatch(ctx, client.Batch{}); return err }, 400, "bad_request", "'requests'"},
		{"MailSage without a recipient", func() error {
			_, err := admin.SendMailSage(ctx, client.MailSageEmail{Subject: "s", Body: "b", From: &client.Address{Email: "a@example.com"}})
			return err
		}, 400, "invalid_request", "'recipient.email' is required"},
		{"MailSage with no domain to send from", func() error {
			_, err := e.client(viewer.Value).SendMailSage(ctx, client.MailSageEmail{Recipient: client.Address{Email: "u@example.org"}, Subject: "s", Body: "b"})
			return err
		}, 422, "sender_required", "'from' is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := apiError(t, tt.call(), tt.status)
			if ae.Code != tt.code || !strings.Contains(ae.Message, tt.contains) {
				t.Errorf("got code %q message %q, want %q containing %q", ae.Code, ae.Message, tt.code, tt.contains)
			}
		})
	}
	if _, err := admin.Send(ctx, nil); err == nil {
		t.Error("sending no email succeeded")
	}
}

// A test key's mail is captured in the account's "Test key sends" sandbox,
// through Send, SendBatch and MailSage alike, without any relay.
func TestTestKeySendsAreCaptured(t *testing.T) {
	e := newEnv(t, withoutDelivery())
	ctx := t.Context()
	admin := e.client(e.admin)
	d, err := admin.CreateDomain(ctx, "example.com")
	ok(t, err)
	key, err := admin.CreateToken(ctx, client.NewToken{Name: "ci", Environment: client.EnvironmentTest,
		Permissions: []client.Permission{perm("domain", d.ID, client.Admin)}})
	ok(t, err)
	if !strings.HasPrefix(key.Value, "tk_test_") || key.Environment != client.EnvironmentTest {
		t.Fatalf("test key = %+v", key.Token)
	}
	ci := e.client(key.Value)

	sent, err := ci.Send(ctx, hello("app@example.com", "user@example.org"))
	ok(t, err)
	log, err := ci.GetEmailLog(ctx, sent.MessageIDs[0])
	ok(t, err)
	if log.DeliveryStatus != client.DeliveryCaptured || log.SandboxID == 0 {
		t.Fatalf("a test key's log = %+v", log)
	}
	sandbox, err := admin.GetSandbox(ctx, log.SandboxID)
	ok(t, err)
	msg, err := admin.GetMessage(ctx, log.SandboxID, log.SandboxMessageID)
	ok(t, err)
	if sandbox.Name != "Test key sends" || msg.ToEmail != "user@example.org" || msg.FromEmail != "app@example.com" {
		t.Errorf("captured in %+v as %+v", sandbox, msg)
	}

	batch, err := ci.SendBatch(ctx, client.Batch{Base: hello("app@example.com"),
		Requests: []client.Email{{To: []client.Address{{Email: "a@example.org"}}}, {To: []client.Address{{Email: "b@example.org"}}}}})
	ok(t, err)
	if len(batch.Responses) != 2 || batch.Responses[0].Err() != nil || batch.Responses[1].Err() != nil {
		t.Errorf("batch = %+v", batch)
	}

	// MailSage: the sender defaults to no-reply@ the key's one domain.
	ms, err := ci.SendMailSage(ctx, client.MailSageEmail{Recipient: client.Address{Email: "u@example.org"}, Subject: "Hi", Body: "Test"})
	ok(t, err)
	if !ms.Success || ms.MessageID == "" || ms.Status != "accepted" {
		t.Fatalf("MailSage = %+v", ms)
	}
	msLog, err := ci.GetEmailLog(ctx, ms.MessageID)
	ok(t, err)
	if msLog.From != "no-reply@example.com" || msLog.SandboxID != log.SandboxID {
		t.Errorf("MailSage log = %+v", msLog)
	}
	all, err := admin.ListMessages(ctx, log.SandboxID, client.MessageListOptions{})
	ok(t, err)
	if len(all) != 4 {
		t.Errorf("the test-key sandbox holds %d messages, want 4", len(all))
	}
}

// Live mail is accepted and queued when tokend has a relay.
func TestLiveSendIsQueued(t *testing.T) {
	e := newEnv(t) // deliveries queued; nothing takes them in this test
	ctx := t.Context()
	admin := e.client(e.admin)
	d, err := admin.CreateDomain(ctx, "example.com")
	ok(t, err)
	// Unverified: live mail is refused with the reason, nothing queued.
	_, err = admin.Send(ctx, &client.Email{From: client.Address{Email: "news@example.com"}, To: []client.Address{{Email: "a@example.org"}},
		Subject: "Hi", Text: "Hi"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || !strings.Contains(apiErr.Message, "not verified") {
		t.Fatalf("send from an unverified domain: %v, want 403 saying it is not verified", err)
	}
	for _, r := range d.DNSRecords {
		e.dns.AddTXT(r.Domain, r.Value)
	}
	v, err := admin.VerifyDomain(ctx, d.ID)
	ok(t, err)
	if !v.DNSVerified || v.DNSVerifiedAt == nil || v.ComplianceStatus != "compliant" || len(v.DNSRecords) != 4 {
		t.Fatalf("verified domain = %+v", v)
	}
	for _, r := range v.DNSRecords {
		if r.Status != "pass" {
			t.Errorf("record %s: status %q, want pass", r.Key, r.Status)
		}
	}
	sent, err := admin.Send(ctx, &client.Email{From: client.Address{Email: "news@example.com", Name: "News"},
		To: []client.Address{{Email: "a@example.org"}}, Bcc: []client.Address{{Email: "b@example.org"}},
		ReplyTo: &client.Address{Email: "help@example.com"}, Subject: "Hi", HTML: "<p>Hi</p>"})
	ok(t, err)
	if len(sent.MessageIDs) != 2 {
		t.Fatalf("send = %+v", sent)
	}
	log, err := admin.GetEmailLog(ctx, sent.MessageIDs[1])
	ok(t, err)
	if log.Status != client.StatusEnqueued || log.DeliveryStatus != client.DeliveryQueued || log.To != "b@example.org" ||
		log.DomainID != d.ID || log.SandboxID != 0 || log.SendingStream != "transactional" || log.LastError != "" {
		t.Errorf("log = %+v", log)
	}
}
