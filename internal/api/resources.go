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
	ID         int64  `json:"id"`
	DomainName string `json:"domain_name"`
	// ComplianceStatus is Mailtrap's: "unverified_dns" until the records
	// pass, then "compliant".
	ComplianceStatus string     `json:"compliance_status"`
	DNSVerified      bool       `json:"dns_verified"`
	DNSVerifiedAt    *time.Time `json:"dns_verified_at"`
	// Trusted says an operator lets the domain send whatever its DNS says.
	Trusted       bool            `json:"trusted"`
	TrustedAt     *time.Time      `json:"trusted_at"`
	DNSCheckedAt  *time.Time      `json:"dns_checked_at"`
	DNSCheckError *string         `json:"dns_check_error"`
	CreatedAt     time.Time       `json:"created_at"`
	DNSRecords    []dnsRecordJSON `json:"dns_records"`
	Permissions   permissionsJSON `json:"permissions"`
	APIToken      *apiToken       `json:"api_token,omitempty"`
	// Mailtrap's features that tokend does not have: always false.
	OpenTracking        bool `json:"open_tracking_enabled"`
	ClickTracking       bool `json:"click_tracking_enabled"`
	TrackingOptOut      bool `json:"tracking_opt_out_enabled"`
	AutoUnsubscribeLink bool `json:"auto_unsubscribe_link_enabled"`
	Inbound             bool `json:"inbound_enabled"`
}

// dnsRecordJSON is a record to publish, in Mailtrap's shape, with what the
// last check found: status "unchecked", "pass", "missing" or "mismatch"
// (found then lists the records found at that name).
type dnsRecordJSON struct {
	Key    string   `json:"key"`
	Domain string   `json:"domain"`
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Value  string   `json:"value"`
	Status string   `json:"status"`
	Found  []string `json:"found,omitempty"`
	Detail string   `json:"detail,omitempty"`
}

func toDomainJSON(v tokend.ResourceView) domainJSON {
	dns := make([]dnsRecordJSON, len(v.DNS))
	for i, d := range v.DNS {
		dns[i] = dnsRecordJSON{Key: d.Key, Domain: d.Domain, Name: d.Name, Type: d.Type, Value: d.Value,
			Status: d.Status, Found: d.Found, Detail: d.Detail}
	}
	out := domainJSON{ID: v.ID, DomainName: v.Name, ComplianceStatus: "unverified_dns", CreatedAt: v.CreatedAt,
		DNSRecords: dns, Permissions: permissionsFor(v.Level)}
	if st := v.DNSState; st != nil {
		out.DNSVerified, out.DNSVerifiedAt = st.VerifiedAt != nil, st.VerifiedAt
		out.Trusted, out.TrustedAt = st.TrustedAt != nil, st.TrustedAt
		out.DNSCheckedAt = st.CheckedAt
		if st.CheckError != "" {
			out.DNSCheckError = &st.CheckError
		}
		if st.Sendable() {
			out.ComplianceStatus = "compliant"
		}
	}
	return out
}

func toJSON(v tokend.ResourceView) any {
	perms := permissionsFor(v.Level)
	switch v.Type {
	case tokend.ResourceSandbox:
		return sandboxJSON{ID: v.ID, Name: v.Name, ProjectID: v.ProjectID, CreatedAt: v.CreatedAt, Permissions: perms}
	case tokend.ResourceDomain:
		return toDomainJSON(v)
	}
	return projectJSON{ID: v.ID, Name: v.Name, CreatedAt: v.CreatedAt, Permissions: perms}
}

// listResources, getResource, renameResource and deleteResource build the
// handlers that projects, sandboxes and domains share. wrap shapes a list
// response: projects and sandboxes answer a bare array, domains {"data": [...]}.
func (s *Server) listResources(typ tokend.ResourceType, wrap func([]any) any) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
		views, err := s.svc.ListResources(r.Context(), caller, typ)
		if err != nil {
			return err
		}
		out := make([]any, len(views))
		for i, v := range views {
			out[i] = toJSON(v)
		}
		encode(w, http.StatusOK, wrap(out))
		return nil
	}
}

func asArray(list []any) any { return list }

func asData(list []any) any { return map[string]any{"data": list} }

func (s *Server) getResource(typ tokend.ResourceType) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
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
}

// renameResource reads {"<wrapper>": {"name": "..."}}.
func (s *Server) renameResource(typ tokend.ResourceType, wrapper string) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
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
}

func (s *Server) deleteResource(typ tokend.ResourceType) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
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
	t := toIssuedToken(d.Token, s.opts.Now())
	out.APIToken = &t
	encode(w, http.StatusOK, out)
	return nil
}
