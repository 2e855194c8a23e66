package api

import (
	"net/http"

	"github.com/tokend/tokend"
)

// routes registers every endpoint, then the catch-all that answers 404 and 405.
func (s *Server) routes() {
	s.eachRoute(s.mux.Handle)
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
		m("POST "+base+"/api_tokens", s.authed(s.createToken))
		m("GET "+base+"/api_tokens/{id}", s.authed(s.getToken))
		m("PATCH "+base+"/api_tokens/{id}", s.authed(s.updateToken))
		m("DELETE "+base+"/api_tokens/{id}", s.authed(s.deleteToken))
		m("POST "+base+"/api_tokens/{id}/reset", s.authed(s.resetToken))
		m("GET "+base+"/api_tokens/{id}/usage", s.authed(s.tokenUsage))
		m("GET "+base+"/audit_log", s.authed(s.auditLog))
	}

	m("GET /api/accounts", s.authed(s.listAccounts))
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
	m("DELETE /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.deleteResource(tokend.ResourceDomain)))
}
