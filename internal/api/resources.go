package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tokend/tokend"
)

type accountJSON struct {
	ID           int64                `json:"id"`
	Name         string               `json:"name"`
	AccessLevels []tokend.AccessLevel `json:"access_levels"`
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	accounts, err := s.svc.ListAccounts(r.Context(), caller)
	if err != nil {
		return err
	}
	out := make([]accountJSON, len(accounts))
	for i, a := range accounts {
		out[i] = accountJSON{ID: a.ID, Name: a.Name, AccessLevels: a.Levels}
	}
	encode(w, http.StatusOK, out)
	return nil
}

// permissionsJSON is what the caller may do with a resource.
type permissionsJSON struct {
	CanRead    bool `json:"can_read"`
	CanUpdate  bool `json:"can_update"`
	CanDestroy bool `json:"can_destroy"`
}

func permissionsFor(l tokend.AccessLevel) permissionsJSON {
	return permissionsJSON{CanRead: l >= tokend.Viewer, CanUpdate: l >= tokend.Admin, CanDestroy: l >= tokend.Admin}
}

type projectJSON struct {
	ID          int64           `json:"id"`
	Name        string          `json:"name"`
	CreatedAt   time.Time       `json:"created_at"`
	Permissions permissionsJSON `json:"permissions"`
}

type sandboxJSON struct {
	ID          int64           `json:"id"`
	Name        string          `json:"name"`
	ProjectID   int64           `json:"project_id"`
	CreatedAt   time.Time       `json:"created_at"`
	Permissions permissionsJSON `json:"permissions"`
}

type domainJSON struct {
	ID          int64           `json:"id"`
	DomainName  string          `json:"domain_name"`
	CreatedAt   time.Time       `json:"created_at"`
	Permissions permissionsJSON `json:"permissions"`
	APIToken    *apiToken       `json:"api_token,omitempty"`
}

func toJSON(v tokend.ResourceView) any {
	perms := permissionsFor(v.Level)
	switch v.Type {
	case tokend.ResourceSandbox:
		return sandboxJSON{ID: v.ID, Name: v.Name, ProjectID: v.ProjectID, CreatedAt: v.CreatedAt, Permissions: perms}
	case tokend.ResourceDomain:
		return domainJSON{ID: v.ID, DomainName: v.Name, CreatedAt: v.CreatedAt, Permissions: perms}
	}
	return projectJSON{ID: v.ID, Name: v.Name, CreatedAt: v.CreatedAt, Permissions: perms}
}

// listResources, getResource, renameResource and deleteResource serve the
// operations that projects, sandboxes and domains share.
func (s *Server) listResources(typ tokend.ResourceType, r *http.Request, caller *tokend.Token) ([]any, error) {
	views, err := s.svc.ListResources(r.Context(), caller, typ)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(views))
	for i, v := range views {
		out[i] = toJSON(v)
	}
	return out, nil
}

func (s *Server) getResource(typ tokend.ResourceType, w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	v, err := s.svc.GetResource(r.Context(), caller, typ, id)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toJSON(*v))
	return nil
}

// decodeName reads {"<wrapper>": {"name": "..."}}, the request shape of
// Mailtrap's project and inbox endpoints. A missing name is "", which the
// service rejects as blank; other fields are ignored.
func decodeName(w http.ResponseWriter, r *http.Request, wrapper string) (string, error) {
	var body map[string]json.RawMessage
	if err := decode(w, r, &body); err != nil {
		return "", err
	}
	raw, ok := body[wrapper]
	if !ok {
		return "", nil
	}
	var inner struct {
		Name *string `json:"name"`
	}
	if err := json.Unmarshal(raw, &inner); err != nil {
		return "", tokend.Invalid("name", fmt.Sprintf(`%s must be an object such as {"name": "..."} with a string name`, wrapper))
	}
	if inner.Name == nil {
		return "", nil
	}
	return *inner.Name, nil
}

func (s *Server) renameResource(typ tokend.ResourceType, wrapper string, w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	name, err := decodeName(w, r, wrapper)
	if err != nil {
		return err
	}
	v, err := s.svc.RenameResource(r.Context(), caller, typ, id, name)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toJSON(*v))
	return nil
}

func (s *Server) deleteResource(typ tokend.ResourceType, w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.svc.DeleteResource(r.Context(), caller, typ, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	out, err := s.listResources(tokend.ResourceProject, r, caller)
	if err == nil {
		encode(w, http.StatusOK, out)
	}
	return err
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	name, err := decodeName(w, r, "project")
	if err != nil {
		return err
	}
	v, err := s.svc.CreateProject(r.Context(), caller, name)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toJSON(*v))
	return nil
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.getResource(tokend.ResourceProject, w, r, caller)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.renameResource(tokend.ResourceProject, "project", w, r, caller)
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.deleteResource(tokend.ResourceProject, w, r, caller)
}

func (s *Server) createSandbox(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	projectID, err := pathID(r, "project_id")
	if err != nil {
		return err
	}
	name, err := decodeName(w, r, "inbox")
	if err != nil {
		return err
	}
	v, err := s.svc.CreateSandbox(r.Context(), caller, projectID, name)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toJSON(*v))
	return nil
}

func (s *Server) listSandboxes(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	out, err := s.listResources(tokend.ResourceSandbox, r, caller)
	if err == nil {
		encode(w, http.StatusOK, out)
	}
	return err
}

func (s *Server) getSandbox(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.getResource(tokend.ResourceSandbox, w, r, caller)
}

func (s *Server) updateSandbox(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.renameResource(tokend.ResourceSandbox, "inbox", w, r, caller)
}

func (s *Server) deleteSandbox(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.deleteResource(tokend.ResourceSandbox, w, r, caller)
}

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	out, err := s.listResources(tokend.ResourceDomain, r, caller)
	if err == nil {
		encode(w, http.StatusOK, map[string]any{"data": out})
	}
	return err
}

type createDomainRequest struct {
	SendingDomain *struct {
		DomainName *string `json:"domain_name"`
	} `json:"sending_domain"`
}

func (s *Server) createDomain(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var req createDomainRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var name string
	if req.SendingDomain != nil && req.SendingDomain.DomainName != nil {
		name = *req.SendingDomain.DomainName
	}
	d, err := s.svc.CreateDomain(r.Context(), caller, name)
	if err != nil {
		return err
	}
	out := toJSON(d.ResourceView).(domainJSON)
	t := toIssuedToken(d.Token)
	out.APIToken = &t
	encode(w, http.StatusOK, out)
	return nil
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.getResource(tokend.ResourceDomain, w, r, caller)
}

func (s *Server) deleteDomain(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	return s.deleteResource(tokend.ResourceDomain, w, r, caller)
}
