package tokend

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// ResourceView is a resource with the level the caller holds on it; a
// sending domain also carries the DNS records its owner publishes and what
// DNS said of them.
type ResourceView struct {
	Resource
	Level    AccessLevel
	DNS      []DNSRecord
	DNSState *DomainDNS // nil for other resources
}

// DomainView is a newly created domain with the admin token made for it.
type DomainView struct {
	ResourceView
	Token *IssuedToken
}

// AccountView is an account with the caller's account-level access levels.
type AccountView struct {
	Account
	Levels []AccessLevel
}

// ListAccounts returns the accounts the caller can see: its own.
func (s *Service) ListAccounts(ctx context.Context, caller *Token) ([]AccountView, error) {
	var out []AccountView
	err := s.store.Read(ctx, func(tx Tx) error {
		a, err := tx.Account(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		levels := []AccessLevel{}
		if l := caller.LevelOn(accountResource(a.ID)); l != NoAccess {
			levels = append(levels, l)
		}
		out = []AccountView{{Account: *a, Levels: levels}}
		return nil
	})
	return out, err
}

// ListResources returns the resources of one type in the caller's account that
// the caller can read, in ID order.
func (s *Service) ListResources(ctx context.Context, caller *Token, typ ResourceType) ([]ResourceView, error) {
	out := []ResourceView{}
	err := s.store.Read(ctx, func(tx Tx) error {
		rs, err := tx.Resources(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if l := caller.LevelOn(r); r.Type == typ && l >= Viewer {
				out = append(out, ResourceView{Resource: r, Level: l})
			}
		}
		if typ != ResourceDomain || len(out) == 0 {
			return nil
		}
		keys, err := tx.DomainKeys(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		byDomain := make(map[int64]*DomainKey, len(keys))
		for i := range keys {
			byDomain[keys[i].DomainID] = &keys[i]
		}
		states, err := tx.AccountDomainDNS(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		stateOf := make(map[int64]*DomainDNS, len(states))
		for i := range states {
			stateOf[states[i].DomainID] = &states[i]
		}
		for i := range out {
			out[i].DNSState = stateOf[out[i].ID]
			out[i].DNS = DNSRecords(out[i].Name, out[i].DNSState, byDomain[out[i].ID], s.opts.SPF)
		}
		return nil
	})
	return out, err
}

// GetResource returns one resource the caller can read; ENOTFOUND otherwise.
func (s *Service) GetResource(ctx context.Context, caller *Token, typ ResourceType, id int64) (*ResourceView, error) {
	var out *ResourceView
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if out, err = readableResource(ctx, tx, caller, typ, id); err != nil || typ != ResourceDomain {
			return err
		}
		return s.withDNS(ctx, tx, out)
	})
	return out, err
}

// withDNS fills in a domain's DNS records.
func (s *Service) withDNS(ctx context.Context, tx Tx, v *ResourceView) error {
	key, err := tx.DomainKey(ctx, v.ID)
	if ErrorCode(err) == ENOTFOUND {
		key, err = nil, nil // a domain made before DKIM keys existed
	}
	if err != nil {
		return err
	}
	st, err := tx.DomainDNS(ctx, v.ID)
	if ErrorCode(err) == ENOTFOUND {
		st, err = nil, nil // made before tokend checked DNS, until the server starts
	}
	if err != nil {
		return err
	}
	v.DNSState = st
	v.DNS = DNSRecords(v.Name, st, key, s.opts.SPF)
	return nil
}

// CreateProject creates a project; the caller must be account admin (EFORBIDDEN).
func (s *Service) CreateProject(ctx context.Context, caller *Token, name string) (*ResourceView, error) {
	return s.createResource(ctx, caller, Resource{Type: ResourceProject, Name: name}, accountResource(caller.AccountID))
}

// CreateSandbox creates a sandbox in a project the caller can read (ENOTFOUND
// otherwise); the caller must be admin on the project (EFORBIDDEN).
func (s *Service) CreateSandbox(ctx context.Context, caller *Token, projectID int64, name string) (*ResourceView, error) {
	var fe FieldErrors
	name = validateName(&fe, "name", name)
	var out *ResourceView
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		p, err := readableResource(ctx, tx, caller, ResourceProject, projectID)
		if err != nil {
			return err
		}
		if p.Level != Admin {
			return Errorf(EFORBIDDEN, "You need admin access to project %d to create sandboxes in it", projectID)
		}
		if err := fe.Err(); err != nil {
			return err
		}
		r := Resource{Type: ResourceSandbox, AccountID: caller.AccountID, ProjectID: projectID, Name: name, CreatedAt: s.now()}
		if err := tx.CreateResource(ctx, &r); err != nil {
			return err
		}
		out = &ResourceView{Resource: r, Level: caller.LevelOn(r)}
		return s.auditResource(ctx, tx, caller, ActionResourceCreated, r)
	})
	return out, err
}

// isPublicSuffix reports whether name is a public suffix (com, co.uk,
// github.io) of the Public Suffix List, under which anyone may register.
func isPublicSuffix(name string) bool {
	suffix, _ := publicsuffix.PublicSuffix(name)
	return suffix == name
}

var domainName = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$`)

// CreateDomain creates a sending domain with its DKIM key and its own token
// with admin on it, named "<domain> token <id>". The caller must be account
// admin (EFORBIDDEN).
func (s *Service) CreateDomain(ctx context.Context, caller *Token, name string) (*DomainView, error) {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	var fe FieldErrors
	switch {
	case name == "":
		fe.Add("domain_name", "can't be blank")
	case len(name) > 253 || !domainName.MatchString(name):
		fe.Add("domain_name", "is not a valid domain name: a host name such as mail.example.com (no IP address, scheme, port or path)")
	case isPublicSuffix(name):
		fe.Add("domain_name", "is a public suffix (such as com or co.uk), which no one account can own: add a domain registered under it")
	}
	var key *DomainKey
	if len(fe) == 0 && caller.IsAccountAdmin() {
		// Outside the transaction: generating an RSA key takes tens of milliseconds.
		var err error
		if key, err = newDomainKey(s.opts.Keyring, name, s.opts.DKIMKeyBits, s.now()); err != nil {
			return nil, err
		}
	}
	var out *DomainView
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		if !caller.IsAccountAdmin() {
			return Errorf(EFORBIDDEN, "You need admin access to the account to add sending domains")
		}
		if err := fe.Err(); err != nil {
			return err
		}
		if claimed, err := tx.DomainNameClaimed(ctx, name, caller.AccountID); err != nil {
			return err
		} else if claimed {
			return DomainClaimedError(name)
		}
		now := s.now()
		d := Resource{Type: ResourceDomain, AccountID: caller.AccountID, Name: name, CreatedAt: now}
		if err := tx.CreateResource(ctx, &d); err != nil {
			return err
		}
		st := newDomainDNS(d, now)
		if err := tx.CreateDomainDNS(ctx, st); err != nil {
			return err
		}
		if key == nil { // the caller became account admin since it authenticated
			return Errorf(EFORBIDDEN, "You need admin access to the account to add sending domains")
		}
		key.DomainID, key.AccountID = d.ID, d.AccountID
		if err := tx.CreateDomainKey(ctx, key); err != nil {
			return err
		}
		t, err := s.issue(ctx, tx, &Token{
			AccountID:   caller.AccountID,
			Environment: Live,
			CreatedBy:   caller.Name,
			Permissions: []Permission{{ResourceType: ResourceDomain, ResourceID: d.ID, Level: Admin}},
		}, now, name)
		if err != nil {
			return err
		}
		out = &DomainView{ResourceView: ResourceView{Resource: d, Level: caller.LevelOn(d), DNS: DNSRecords(name, st, key, s.opts.SPF), DNSState: st}, Token: t}
		if err := s.auditResource(ctx, tx, caller, ActionResourceCreated, d); err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenCreated, "api_token", t.ID, tokenDetails(&t.Token))
	})
	if err != nil {
		return nil, err
	}
	s.issued(out.Token)
	return out, nil
}

// RenameResource renames a project or sandbox the caller can read (ENOTFOUND
// otherwise); the caller must be admin on it (EFORBIDDEN).
func (s *Service) RenameResource(ctx context.Context, caller *Token, typ ResourceType, id int64, name string) (*ResourceView, error) {
	var fe FieldErrors
	name = validateName(&fe, "name", name)
	var out *ResourceView
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		r, err := adminResource(ctx, tx, caller, typ, id, "rename")
		if err != nil {
			return err
		}
		if err := fe.Err(); err != nil {
			return err
		}
		if err := tx.RenameResource(ctx, typ, id, name); err != nil {
			return err
		}
		from := r.Name
		r.Name = name
		out = r
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionResourceRenamed, string(typ), id, map[string]any{"from": from, "to": name})
	})
	return out, err
}

// DeleteResource deletes a resource the caller can read (ENOTFOUND otherwise)
// and is admin on (EFORBIDDEN), with a project's sandboxes, and removes every
// permission that named them.
func (s *Service) DeleteResource(ctx context.Context, caller *Token, typ ResourceType, id int64) error {
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		r, err := adminResource(ctx, tx, caller, typ, id, "delete")
		if err != nil {
			return err
		}
		if err := tx.DeleteResource(ctx, typ, id); err != nil {
			return err
		}
		change = AuthChange{AccountID: caller.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err // permissions naming the resource are gone from the account's tokens
		}
		return s.auditResource(ctx, tx, caller, ActionResourceDeleted, r.Resource)
	})
	if err != nil {
		return err
	}
	s.evict(change)
	return nil
}

// createResource validates and stores a project under parent, on which the
// caller must be admin.
func (s *Service) createResource(ctx context.Context, caller *Token, r Resource, parent Resource) (*ResourceView, error) {
	var fe FieldErrors
	r.Name = validateName(&fe, "name", r.Name)
	var out *ResourceView
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		if caller.LevelOn(parent) != Admin {
			return Errorf(EFORBIDDEN, "You need admin access to the %s to create a %s", parent.Type, r.Type)
		}
		if err := fe.Err(); err != nil {
			return err
		}
		r.AccountID = caller.AccountID
		r.CreatedAt = s.now()
		if err := tx.CreateResource(ctx, &r); err != nil {
			return err
		}
		out = &ResourceView{Resource: r, Level: caller.LevelOn(r)}
		return s.auditResource(ctx, tx, caller, ActionResourceCreated, r)
	})
	return out, err
}

func (s *Service) auditResource(ctx context.Context, tx Tx, caller *Token, action string, r Resource) error {
	details := map[string]any{"name": r.Name}
	if r.Type == ResourceSandbox {
		details["project_id"] = r.ProjectID
	}
	return s.audit(ctx, tx, caller.AccountID, caller, "", action, string(r.Type), r.ID, details)
}

func readableResource(ctx context.Context, tx Tx, caller *Token, typ ResourceType, id int64) (*ResourceView, error) {
	r, err := tx.Resource(ctx, typ, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, errNotFound
	} else if err != nil {
		return nil, err
	}
	l := caller.LevelOn(*r)
	if l < Viewer {
		return nil, errNotFound
	}
	return &ResourceView{Resource: *r, Level: l}, nil
}

func adminResource(ctx context.Context, tx Tx, caller *Token, typ ResourceType, id int64, verb string) (*ResourceView, error) {
	r, err := readableResource(ctx, tx, caller, typ, id)
	if err != nil {
		return nil, err
	}
	if r.Level != Admin {
		return nil, Errorf(EFORBIDDEN, "You need admin access to %s %d to %s it", typ, id, verb)
	}
	return r, nil
}

// CreateAccount creates an account and its first token, with admin on the
// account. It is for operators (the CLI), not for API callers.
func (s *Service) CreateAccount(ctx context.Context, name string, plan Plan, createdBy string) (*Account, *IssuedToken, error) {
	var a *Account
	var t *IssuedToken
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		a, t, err = s.createAccount(ctx, tx, name, plan, createdBy)
		return err
	})
	s.issued(t)
	return a, t, err
}

// Bootstrap creates the account "Default" and its first admin token when the
// store holds no account yet; otherwise it returns nil, nil, nil.
func (s *Service) Bootstrap(ctx context.Context, createdBy string) (*Account, *IssuedToken, error) {
	var a *Account
	var t *IssuedToken
	err := s.store.Write(ctx, func(tx Tx) error {
		existing, err := tx.Accounts(ctx)
		if err != nil || len(existing) > 0 {
			return err
		}
		a, t, err = s.createAccount(ctx, tx, "Default", PlanFree, createdBy)
		return err
	})
	s.issued(t)
	return a, t, err
}

// ListAllAccounts returns every account, for operators.
func (s *Service) ListAllAccounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Accounts(ctx)
		return err
	})
	return out, err
}

func (s *Service) createAccount(ctx context.Context, tx Tx, name string, plan Plan, createdBy string) (*Account, *IssuedToken, error) {
	var fe FieldErrors
	name = validateName(&fe, "name", name)
	if _, ok := ParsePlan(string(plan)); !ok {
		fe.Add("plan", "must be free, pro or enterprise")
	}
	if err := fe.Err(); err != nil {
		return nil, nil, err
	}
	now := s.now()
	a := &Account{Name: name, Plan: plan, RateLimit: plan.DefaultRateLimit(), MessageLimit: plan.DefaultMessageLimit(), CreatedAt: now}
	if err := tx.CreateAccount(ctx, a); err != nil {
		return nil, nil, fmt.Errorf("create account: %w", err)
	}
	t, err := s.issue(ctx, tx, &Token{
		AccountID:   a.ID,
		Name:        "Admin token",
		Environment: Live,
		CreatedBy:   createdBy,
		Permissions: []Permission{{ResourceType: ResourceAccount, ResourceID: a.ID, Level: Admin}},
	}, now, "")
	if err != nil {
		return nil, nil, err
	}
	if err := s.audit(ctx, tx, a.ID, nil, createdBy, ActionAccountCreated, "account", a.ID, map[string]any{"name": a.Name, "plan": a.Plan}); err != nil {
		return nil, nil, err
	}
	if err := s.audit(ctx, tx, a.ID, nil, createdBy, ActionTokenCreated, "api_token", t.ID, tokenDetails(&t.Token)); err != nil {
		return nil, nil, err
	}
	return a, t, nil
}
