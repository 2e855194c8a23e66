package api

import "github.com/tokend/tokend"

// routes registers every endpoint. Token and audit routes exist twice: at /api,
// as in the contract, and under /api/accounts/{account_id}, as the Mailtrap
// SDKs call them.
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /api/openapi.json", s.openAPI)
	if s.opts.ServeMetrics {
		m.Handle("GET /metrics", s.metrics.Handler())
	}

	for _, base := range []string{"/api", "/api/accounts/{account_id}"} {
		m.Handle("GET "+base+"/api_tokens", s.authed(s.listTokens))
		m.Handle("POST "+base+"/api_tokens", s.authed(s.createToken))
		m.Handle("GET "+base+"/api_tokens/{id}", s.authed(s.getToken))
		m.Handle("PATCH "+base+"/api_tokens/{id}", s.authed(s.updateToken))
		m.Handle("DELETE "+base+"/api_tokens/{id}", s.authed(s.deleteToken))
		m.Handle("POST "+base+"/api_tokens/{id}/reset", s.authed(s.resetToken))
		m.Handle("GET "+base+"/api_tokens/{id}/usage", s.authed(s.tokenUsage))
		m.Handle("GET "+base+"/audit_log", s.authed(s.auditLog))
	}

	m.Handle("GET /api/accounts", s.authed(s.listAccounts))
	m.Handle("GET /api/whoami", s.authed(s.whoami))

	m.Handle("GET /api/accounts/{account_id}/projects", s.authed(s.listResources(tokend.ResourceProject, asArray)))
	m.Handle("POST /api/accounts/{account_id}/projects", s.authed(s.createProject))
	m.Handle("GET /api/accounts/{account_id}/projects/{id}", s.authed(s.getResource(tokend.ResourceProject)))
	m.Handle("PATCH /api/accounts/{account_id}/projects/{id}", s.authed(s.renameResource(tokend.ResourceProject, "project")))
	m.Handle("DELETE /api/accounts/{account_id}/projects/{id}", s.authed(s.deleteResource(tokend.ResourceProject)))

	m.Handle("POST /api/accounts/{account_id}/projects/{project_id}/inboxes", s.authed(s.createSandbox))
	m.Handle("GET /api/accounts/{account_id}/inboxes", s.authed(s.listResources(tokend.ResourceSandbox, asArray)))
	m.Handle("GET /api/accounts/{account_id}/inboxes/{id}", s.authed(s.getResource(tokend.ResourceSandbox)))
	m.Handle("PATCH /api/accounts/{account_id}/inboxes/{id}", s.authed(s.renameResource(tokend.ResourceSandbox, "inbox")))
	m.Handle("DELETE /api/accounts/{account_id}/inboxes/{id}", s.authed(s.deleteResource(tokend.ResourceSandbox)))

	m.Handle("GET /api/accounts/{account_id}/sending_domains", s.authed(s.listResources(tokend.ResourceDomain, asData)))
	m.Handle("POST /api/accounts/{account_id}/sending_domains", s.authed(s.createDomain))
	m.Handle("GET /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.getResource(tokend.ResourceDomain)))
	m.Handle("DELETE /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.deleteResource(tokend.ResourceDomain)))

	m.HandleFunc("/", s.noRoute)
}
