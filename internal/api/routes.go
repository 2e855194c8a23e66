package api

// routes registers every endpoint. Token routes exist twice: at /api, as in the
// contract, and under /api/accounts/{account_id}, as the Mailtrap SDKs call them.
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /api/openapi.json", s.openAPI)

	for _, base := range []string{"/api", "/api/accounts/{account_id}"} {
		m.Handle("GET "+base+"/api_tokens", s.authed(s.listTokens))
		m.Handle("POST "+base+"/api_tokens", s.authed(s.createToken))
		m.Handle("GET "+base+"/api_tokens/{id}", s.authed(s.getToken))
		m.Handle("PATCH "+base+"/api_tokens/{id}", s.authed(s.updateToken))
		m.Handle("DELETE "+base+"/api_tokens/{id}", s.authed(s.deleteToken))
		m.Handle("POST "+base+"/api_tokens/{id}/reset", s.authed(s.resetToken))
	}

	m.Handle("GET /api/accounts", s.authed(s.listAccounts))

	m.Handle("GET /api/accounts/{account_id}/projects", s.authed(s.listProjects))
	m.Handle("POST /api/accounts/{account_id}/projects", s.authed(s.createProject))
	m.Handle("GET /api/accounts/{account_id}/projects/{id}", s.authed(s.getProject))
	m.Handle("PATCH /api/accounts/{account_id}/projects/{id}", s.authed(s.updateProject))
	m.Handle("DELETE /api/accounts/{account_id}/projects/{id}", s.authed(s.deleteProject))

	m.Handle("POST /api/accounts/{account_id}/projects/{project_id}/inboxes", s.authed(s.createSandbox))
	m.Handle("GET /api/accounts/{account_id}/inboxes", s.authed(s.listSandboxes))
	m.Handle("GET /api/accounts/{account_id}/inboxes/{id}", s.authed(s.getSandbox))
	m.Handle("PATCH /api/accounts/{account_id}/inboxes/{id}", s.authed(s.updateSandbox))
	m.Handle("DELETE /api/accounts/{account_id}/inboxes/{id}", s.authed(s.deleteSandbox))

	m.Handle("GET /api/accounts/{account_id}/sending_domains", s.authed(s.listDomains))
	m.Handle("POST /api/accounts/{account_id}/sending_domains", s.authed(s.createDomain))
	m.Handle("GET /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.getDomain))
	m.Handle("DELETE /api/accounts/{account_id}/sending_domains/{id}", s.authed(s.deleteDomain))

	m.HandleFunc("/", s.noRoute)
}
