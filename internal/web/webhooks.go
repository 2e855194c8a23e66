package web

// Webhooks: the endpoints that receive the account's email events, their
// recent deliveries, and a delivery sent again.

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/webhook"
)

// webhookEvents are the event types the forms offer: the ones tokend sends.
var webhookEvents = []tokend.EmailEventType{tokend.EmailDelivery, tokend.EmailSoftBounce, tokend.EmailBounce, tokend.EmailReject}

// payloadFormats are the formats the forms offer, the default first.
var payloadFormats = []string{"json", "jsonlines"}

// webhookForm is what a webhook form holds: a webhook's settings, or what
// was typed, after a refusal.
type webhookForm struct {
	URL      string
	Events   []string
	DomainID int64 // 0: every sending domain (the create form only)
	Format   string
	Active   bool // the edit form only
}

// eventChoice is one event type's checkbox, labelled with its name, as the
// payloads and the API have it.
type eventChoice struct {
	Value, Label string
	Checked      bool
}

// Choices are the form's event type checkboxes: those tokend sends, and any
// other the webhook has (Mailtrap's types, accepted through the API and
// never sent), so that saving the form keeps them.
func (f webhookForm) Choices() []eventChoice {
	var out []eventChoice
	for _, t := range webhookEvents {
		out = append(out, eventChoice{Value: string(t), Label: string(t), Checked: slices.Contains(f.Events, string(t))})
	}
	for _, t := range f.Events {
		if !slices.Contains(webhookEvents, tokend.EmailEventType(t)) && slices.Contains(tokend.WebhookEventTypes, t) {
			out = append(out, eventChoice{Value: t, Label: t + " (never sent by tokend)", Checked: true})
		}
	}
	return out
}

// Formats are the payload formats the form offers.
func (webhookForm) Formats() []string { return payloadFormats }

// readWebhookForm reads a create or edit form; a sending domain that is not
// an ID is refused as the form's.
func readWebhookForm(r *http.Request) (webhookForm, error) {
	if err := r.ParseForm(); err != nil {
		return webhookForm{}, tokend.Invalid("base", "the form could not be read")
	}
	f := webhookForm{URL: strings.TrimSpace(r.PostFormValue("url")), Events: r.PostForm["event_types"], Format: r.PostFormValue("payload_format"),
		Active: r.PostFormValue("active") != ""}
	if v := r.PostFormValue("domain_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return f, tokend.Invalid("domain_id", "must be a sending domain of the list")
		}
		f.DomainID = id
	}
	return f, nil
}

// webhookView is a webhook as the pages show it.
type webhookView struct {
	*tokend.Webhook
	Domain    string    // its sending domain's name; "" for every domain
	State     logStatus // Active, Inactive or Deactivated, as a badge
	CanManage bool      // the user may change it: admin on its domain, or an account admin
}

// webhookAccess is what the pages need to know of the user's sending domains.
type webhookAccess struct {
	principal *tokend.Token
	domains   []tokend.ResourceView // the ones the user can read
}

func (s *Server) webhookAccess(r *http.Request, ses *session) (*webhookAccess, error) {
	domains, err := s.svc.ListResources(r.Context(), ses.Principal, tokend.ResourceDomain)
	if err != nil {
		return nil, err
	}
	return &webhookAccess{principal: ses.Principal, domains: domains}, nil
}

// administered are the sending domains the user is admin on: the ones a
// webhook may be created for.
func (a *webhookAccess) administered() []tokend.ResourceView {
	var out []tokend.ResourceView
	for _, d := range a.domains {
		if d.Level == tokend.Admin {
			out = append(out, d)
		}
	}
	return out
}

// view is h as the pages show it, under the rules of Webhooks: a webhook
// of every domain is changed by account admins, one of a domain by its
// admins.
func (a *webhookAccess) view(h *tokend.Webhook) webhookView {
	v := webhookView{Webhook: h, State: webhookState(h), CanManage: a.principal.IsAccountAdmin()}
	for _, d := range a.domains {
		if d.ID == h.DomainID {
			v.Domain, v.CanManage = d.Name, d.Level == tokend.Admin
		}
	}
	return v
}

// webhookState is a webhook's state as a badge.
func webhookState(h *tokend.Webhook) logStatus {
	switch {
	case h.Active:
		return logStatus{"active", "Active", "pass"}
	case h.DeactivatedAt != nil:
		return logStatus{"deactivated", "Deactivated by tokend", "fail"}
	}
	return logStatus{"inactive", "Inactive", "unchecked"}
}

type webhooksData struct {
	Webhooks []webhookView
	CanAdd   bool
	Domains  []tokend.ResourceView // the sending domains a webhook may be added for
	Form     webhookForm
}

func (s *Server) webhooks(w http.ResponseWriter, r *http.Request, ses *session) error {
	f := s.takeFlash(w, r)
	return s.renderWebhooks(w, r, ses, http.StatusOK, f.Error, f.Notice, webhookForm{Events: []string{string(tokend.EmailDelivery), string(tokend.EmailBounce)},
		Format: payloadFormats[0]})
}

// renderWebhooks lists the webhooks the user can read, with the add form
// for those who may add one: account admins (for every domain or one) and
// domain admins (for their domains).
func (s *Server) renderWebhooks(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg, notice string, form webhookForm) error {
	list, err := s.opts.Webhooks.List(r.Context(), ses.Principal)
	if err != nil {
		return err
	}
	a, err := s.webhookAccess(r, ses)
	if err != nil {
		return err
	}
	d := webhooksData{Domains: a.administered(), Form: form}
	d.CanAdd = ses.Principal.IsAccountAdmin() || len(d.Domains) > 0
	for i := range list {
		d.Webhooks = append(d.Webhooks, a.view(&list[i]))
	}
	s.render(w, r, status, "webhooks", view{Title: "Webhooks", Session: ses, Error: errMsg, Notice: notice, Data: d})
	return nil
}

// createdWebhookData is a new webhook with its secret, shown this once.
type createdWebhookData struct {
	webhookView
	Secret, StandardSecret string
}

// createWebhook adds a webhook, as POST .../webhooks does, and shows its
// signing secret, in both forms, this once: no page shows it again.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, ses *session) error {
	form, err := readWebhookForm(r)
	var created *tokend.CreatedWebhook
	if err == nil {
		created, err = s.opts.Webhooks.Create(r.Context(), ses.Principal, tokend.WebhookInput{URL: form.URL, EventTypes: form.Events,
			DomainID: form.DomainID, PayloadFormat: form.Format})
	}
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderWebhooks(w, r, ses, status, msg, "", form) })
	}
	a, err := s.webhookAccess(r, ses)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "webhook_created", view{Title: "Webhook created", Session: ses, Data: createdWebhookData{
		webhookView: a.view(&created.Webhook), Secret: created.Secret, StandardSecret: webhook.StandardSecret(created.Secret)}})
	return nil
}

type webhookData struct {
	Hook       webhookView
	Form       webhookForm // the edit form
	Deliveries []deliveryRow
}

type deliveryRow struct {
	tokend.WebhookDelivery
	Event string    // the event type in words
	Badge logStatus // its state
}

// deliveryStates are the delivery states as badges.
var deliveryStates = map[tokend.WebhookDeliveryState]logStatus{
	tokend.WebhookPending:   {"pending", "Pending", "unchecked"},
	tokend.WebhookDelivered: {"delivered", "Delivered", "pass"},
	tokend.WebhookFailed:    {"failed", "Failed", "fail"},
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request, ses *session) error {
	f := s.takeFlash(w, r)
	return s.renderWebhook(w, r, ses, http.StatusOK, f.Error, f.Notice, nil)
}

// renderWebhook shows the webhook the path names: its settings, the edit
// form to those who may change it (with form, after a refusal), and its
// recent deliveries, each with a Resend button.
func (s *Server) renderWebhook(w http.ResponseWriter, r *http.Request, ses *session, status int, errMsg, notice string, form *webhookForm) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	h, err := s.opts.Webhooks.Get(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	deliveries, err := s.opts.Webhooks.Deliveries(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	a, err := s.webhookAccess(r, ses)
	if err != nil {
		return err
	}
	d := webhookData{Hook: a.view(h), Form: webhookForm{URL: h.URL, Events: h.EventTypes, Format: h.PayloadFormat, Active: h.Active}}
	if form != nil {
		d.Form = *form
	}
	for _, dl := range deliveries {
		label, ok := eventLabels[dl.EventType]
		if !ok {
			label = string(dl.EventType)
		}
		d.Deliveries = append(d.Deliveries, deliveryRow{WebhookDelivery: dl, Event: label, Badge: deliveryStates[dl.State]})
	}
	s.render(w, r, status, "webhook", view{Title: "Webhook " + h.URL, Session: ses, Error: errMsg, Notice: notice, Data: d})
	return nil
}

// updateWebhook saves the edit form, as PATCH .../webhooks/{id} does: the
// URL, the event types, the format and whether it is active. Activating a
// webhook tokend deactivated clears its failure record.
func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	form, err := readWebhookForm(r)
	var h *tokend.Webhook
	if err == nil {
		h, err = s.opts.Webhooks.Update(r.Context(), ses.Principal, id, tokend.WebhookUpdate{URL: &form.URL, EventTypes: &form.Events,
			PayloadFormat: &form.Format, Active: &form.Active})
	}
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderWebhook(w, r, ses, status, msg, "", &form) })
	}
	msg := fmt.Sprintf("Saved the webhook to %s: it is active.", h.URL)
	if !h.Active {
		msg = fmt.Sprintf("Saved the webhook to %s: it is inactive, and its events wait to be sent until it is active again.", h.URL)
	}
	s.setFlash(w, r, flash{Notice: msg})
	http.Redirect(w, r, fmt.Sprintf("/webhooks/%d", id), http.StatusSeeOther)
	return nil
}

// confirmDeleteWebhook asks before deleting a webhook, of those who may.
func (s *Server) confirmDeleteWebhook(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	h, err := s.opts.Webhooks.Get(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	a, err := s.webhookAccess(r, ses)
	if err != nil {
		return err
	}
	if !a.view(h).CanManage {
		return tokend.Errorf(tokend.EFORBIDDEN, "You need admin access to the webhook's sending domain, or to the account, to delete it")
	}
	s.render(w, r, http.StatusOK, "confirm", view{Title: "Delete webhook", Session: ses, Data: confirmData{
		Action: fmt.Sprintf("/webhooks/%d/delete", h.ID), Verb: "Delete the webhook to " + h.URL,
		Explain: "Its endpoint gets no more events, and the deliveries waiting for it are dropped.", Cancel: fmt.Sprintf("/webhooks/%d", h.ID)}})
	return nil
}

// deleteWebhook deletes a webhook, as DELETE .../webhooks/{id} does.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	h, err := s.opts.Webhooks.Delete(r.Context(), ses.Principal, id)
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderWebhook(w, r, ses, status, msg, "", nil) })
	}
	s.setFlash(w, r, flash{Notice: fmt.Sprintf("Deleted the webhook to %s, and the deliveries waiting for it.", h.URL)})
	http.Redirect(w, r, "/webhooks", http.StatusSeeOther)
	return nil
}

// resendWebhookDelivery sends a delivery's event again, as a new delivery,
// as POST .../deliveries/{delivery_id}/resend does.
func (s *Server) resendWebhookDelivery(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	delivery, err := pathInt(r, "delivery")
	if err != nil {
		return err
	}
	d, err := s.opts.Webhooks.Resend(r.Context(), ses.Principal, id, delivery)
	if err != nil {
		return s.formError(w, r, ses, err, func(status int, msg string) error { return s.renderWebhook(w, r, ses, status, msg, "", nil) })
	}
	s.setFlash(w, r, flash{Notice: fmt.Sprintf("Queued delivery %d: the %s event of message %s is sent again.", d.ID, strings.ToLower(eventLabels[d.EventType]), d.MessageID)})
	http.Redirect(w, r, fmt.Sprintf("/webhooks/%d", id), http.StatusSeeOther)
	return nil
}
