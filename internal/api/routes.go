package api

import (
	"net/http"

	"github.com/tokend/tokend"
)

// routes registers every endpoint, then the catch-all that answers 404 and 405.
func (s *Server) routes() {
	s.eachRoute(s.mux.Handle)
	if s.opts.Dashboard != nil {
		s.opts.Dashboard.Routes(s.mux.Handle)
	}
	s.mux.HandleFunc("/", s.noRoute)
}

// Routes lists the registered endpoints as "METHOD /pattern", in registration
// order; the catch-all is not one. Tests hold it against the OpenAPI document.
func (s *Server) Routes() []string {
	var out []string
	s.eachRoute(func(pattern string, _ http.Handler) { out = append(out, pattern) })
	return out
}

// eachRoute passes every endpoint to handle. Token and audit routes exist
// twice: at /api, as in the contract, and under /api/accounts/{account_id}, as
// the Mailtrap SDKs call them.
func (s *Server) eachRoute(handle func(pattern string, h http.Handler)) {
	m := handle
	m("GET /healthz", http.HandlerFunc(s.healthz))
	m("GET /api/openapi.json", http.HandlerFunc(s.openAPI))
	if s.opts.ServeMetrics {
		m("GET /metrics", s.metrics.Handler())
	}

	for _, base := range []string{"/api", "/api/accounts/{account_id}"} {
		m("GET "+base+"/api_tokens", s.authed(s.listTokens))
		m("GET "+base+"/api_tokens/unused", s.authed(s.unusedTokens))
		m("POST "+base+"/api_tokens", s.authed(s.createToken))
		m("GET "+base+"/api_tokens/{id}", s.authed(s.getToken))
		m("PATCH "+base+"/api_tokens/{id}", s.authed(s.updateToken))
		m("DELETE "+base+"/api_tokens/{id}", s.authed(s.deleteToken))
		m("POST "+base+"/api_tokens/{id}/reset", s.authed(s.resetToken))
		m("GET "+base+"/api_tokens/{id}/usage", s.authed(s.tokenUsage))
		m("GET "+base+"/audit_log", s.authed(s.auditLog))
	}

	// Verification for other services: a token they were handed, a request a
	// reverse proxy forwards, and the change stream their caches follow.
	m("POST /api/verify", s.authedUncharged(s.verifyToken))
	m("GET /api/verify", http.HandlerFunc(s.verifyForward))
	m("HEAD /api/verify", http.HandlerFunc(s.verifyForward))
	m("GET /api/auth_changes", s.authed(s.authChanges))
	m("POST /api/usage_reports", s.authedUncharged(s.reportUsage))
	// Reports of leaked tokens, signed by the scanner rather than by a token.
	m("POST /api/secret_scanning/github", http.HandlerFunc(s.secretScanning))

	m("GET /api/accounts", s.authed(s.listAccounts))
	m("GET /api/accounts/{account_id}/token_settings", s.authed(s.tokenSettings))
	m("PATCH /api/accounts/{account_id}/token_settings", s.authed(s.setTokenSettings))
	m("GET /api/whoami", s.authed(s.whoami))

	m("GET /api/accounts/{account_id}/projects", s.authed(s.listResources(tokend.ResourceProject, asArray)))
	m("POST /api/accounts/{account_id}/projects", s.authed(s.createProject))
	m("GET /api/accounts/{account_id}/projects/{id}", s.authed(s.getResource(tokend.ResourceProject)))
	m("PATCH /api/accounts/{account_id}/projects/{id}", s.authed(s.renameResource(tokend.ResourceProject, "project")))
	m("DELETE /api/accounts/{account_id}/projects/{id}", s.authed(s.deleteResource(tokend.ResourceProject)))

	m("POST /api/accounts/{account_id}/projects/{project_id}/inboxes", s.authed(s.createSandbox))
	m("GET /api/accounts/{account_id}/inboxes", s.authed(s.listResources(tokend.ResourceSandbox, asArray)))
	m("GET /api/accounts/{account_id}/inboxes/{id}", s.authed(s.getResource(tokend.ResourceSandbox)))
	m("PATCH /api/accounts/{account_id}/inboxes/{id}", s.authed(s.renameResource(tokend.ResourceSandbox, "inbox")))
	m("DELETE /api/accounts/{account_id}/inboxes/{id}", s.authed(s.deleteResource(tokend.ResourceSandbox)))

	m("GET /api/accounts/{account_id}/sending_domains", s.authed(s.listResources(tokend.ResourceDomain, asData)))
	m("POST /api/accounts/{account_id}/sending_domains", s.authed(s.createDomain))
	m("GET /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.getResource(tokend.ResourceDomain)))
	m("PATCH /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.updateDomain))
	m("DELETE /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.deleteResource(tokend.ResourceDomain)))
	m("POST /api/accounts/{account_id}/sending_domains/{id}/verify", s.authed(s.verifyDomain))
	m("POST /api/accounts/{account_id}/sending_domains/{id}/send_setup_instructions", s.authed(s.sendSetupInstructions))

	// Sending: Mailtrap's transactional and sandbox routes answer in the
	// sending API's error shape, MailSage's in its own.
	sending := func(h authedHandler) http.Handler { return s.authedAs(s.writeSendError, h) }
	m("POST /api/send", sending(s.send))
	m("POST /api/batch", sending(s.batch))
	m("POST /api/send/{inbox_id}", sending(s.send))
	m("POST /api/batch/{inbox_id}", sending(s.batch))
	m("POST /api/v1/emails/send", s.authedAs(s.writeMailSageError, s.sendMailSage))
	// What became of sent mail: the email logs (one entry per recipient,
	// with its events) and the suppression lists, at Mailtrap's paths.
	m("GET /api/email_logs/{message_id}", s.authed(s.emailLog))
	m("GET /api/accounts/{account_id}/email_logs", s.authed(s.listEmailLogs))
	m("GET /api/accounts/{account_id}/email_logs/{message_id}", s.authed(s.emailLog))
	m("GET /api/accounts/{account_id}/suppressions", s.authed(s.listSuppressions))
	m("POST /api/accounts/{account_id}/suppressions", s.authed(s.createSuppression))
	m("DELETE /api/accounts/{account_id}/suppressions/{id}", s.authed(s.deleteSuppression))
	m("GET /api/accounts/{account_id}/webhooks", s.authed(s.listWebhooks))
	m("POST /api/accounts/{account_id}/webhooks", s.authed(s.createWebhook))
	m("GET /api/accounts/{account_id}/webhooks/{id}", s.authed(s.getWebhook))
	m("PATCH /api/accounts/{account_id}/webhooks/{id}", s.authed(s.updateWebhook))
	m("DELETE /api/accounts/{account_id}/webhooks/{id}", s.authed(s.deleteWebhook))
	m("GET /api/accounts/{account_id}/webhooks/{id}/deliveries", s.authed(s.webhookDeliveries))
	m("POST /api/accounts/{account_id}/webhooks/{id}/deliveries/{delivery_id}/resend", s.authed(s.resendWebhookDelivery))

	// Captured mail, at the older (SDK) and the newer sandbox paths.
	for _, base := range []string{"/api/accounts/{account_id}/inboxes/{inbox_id}/messages", "/api/sandboxes/{inbox_id}/messages"} {
		m("GET "+base, s.authed(s.listMessages))
		m("GET "+base+"/{id}", s.authed(s.getMessage))
		m("PATCH "+base+"/{id}", s.authed(s.updateMessage))
		m("DELETE "+base+"/{id}", s.authed(s.deleteMessage))
		m("GET "+base+"/{id}/body.html", s.authed(s.messageBody("html")))
		m("GET "+base+"/{id}/body.htmlsource", s.authed(s.messageBody("htmlsource")))
		m("GET "+base+"/{id}/body.txt", s.authed(s.messageBody("txt")))
		m("GET "+base+"/{id}/body.raw", s.authed(s.messageBody("raw")))
		m("GET "+base+"/{id}/body.eml", s.authed(s.messageBody("eml")))
		m("GET "+base+"/{id}/mail_headers", s.authed(s.messageHeaders))
		m("GET "+base+"/{id}/attachments", s.authed(s.listAttachments))
		m("GET "+base+"/{id}/attachments/{attachment_id}", s.authed(s.getAttachment))
		m("GET "+base+"/{id}/attachments/{attachment_id}/download", s.authed(s.downloadAttachment))
	}
}
