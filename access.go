package tokend

// covers reports whether permission p applies to resource r, directly or by
// containment: account ⊃ projects ⊃ sandboxes, account ⊃ domains.
func covers(p Permission, r Resource) bool {
	switch p.ResourceType {
	case ResourceAccount:
		return p.ResourceID == r.AccountID
	case ResourceProject:
		return r.Type == ResourceProject && r.ID == p.ResourceID ||
			r.Type == ResourceSandbox && r.ProjectID == p.ResourceID
	default:
		return r.Type == p.ResourceType && r.ID == p.ResourceID
	}
}

// LevelOn returns the highest level perms grant on r.
func LevelOn(perms []Permission, r Resource) AccessLevel {
	level := NoAccess
	for _, p := range perms {
		if p.Level > level && covers(p, r) {
			level = p.Level
		}
	}
	return level
}

// accountResource is the account itself seen as a resource, so that account
// permissions go through the same rules as the rest.
func accountResource(accountID int64) Resource {
	return Resource{Type: ResourceAccount, ID: accountID, AccountID: accountID}
}

// IsAccountAdmin reports whether t holds admin on its own account.
func (t *Token) IsAccountAdmin() bool {
	return LevelOn(t.Permissions, accountResource(t.AccountID)) == Admin
}

// LevelOn returns t's level on r; nothing outside t's account.
func (t *Token) LevelOn(r Resource) AccessLevel {
	if r.AccountID != t.AccountID {
		return NoAccess
	}
	return LevelOn(t.Permissions, r)
}

// catalog resolves the permissions of one account to resources, so that a
// permission on a sandbox can be checked against a permission on its project.
type catalog struct {
	accountID int64
	byKey     map[resourceKey]Resource
	domains   []Resource
}

type resourceKey struct {
	typ ResourceType
	id  int64
}

func newCatalog(accountID int64, resources []Resource) *catalog {
	c := &catalog{accountID: accountID, byKey: make(map[resourceKey]Resource, len(resources))}
	for _, r := range resources {
		c.byKey[resourceKey{r.Type, r.ID}] = r
		if r.Type == ResourceDomain {
			c.domains = append(c.domains, r)
		}
	}
	return c
}

// resolve returns the resource p names, if it exists in the catalog's account.
func (c *catalog) resolve(typ ResourceType, id int64) (Resource, bool) {
	if typ == ResourceAccount {
		return accountResource(c.accountID), id == c.accountID
	}
	r, ok := c.byKey[resourceKey{typ, id}]
	return r, ok
}

// adminOnAll reports whether caller is admin on every resource target's
// permissions name. A target with no permissions needs account admin.
func (c *catalog) adminOnAll(caller *Token, perms []Permission) bool {
	if len(perms) == 0 {
		return caller.IsAccountAdmin()
	}
	for _, p := range perms {
		r, ok := c.resolve(p.ResourceType, p.ResourceID)
		if !ok || caller.LevelOn(r) != Admin {
			return false
		}
	}
	return true
}

// canSee is the visibility rule: a caller sees itself, every token of its
// account if it is account admin, and any token on all of whose resources it is
// admin. A token with no resources is seen only by account admins and itself.
// The same rule decides who may delete or reset a token.
func (c *catalog) canSee(caller, target *Token) bool {
	if target.AccountID != caller.AccountID {
		return false
	}
	if target.ID == caller.ID || caller.IsAccountAdmin() {
		return true
	}
	return len(target.Permissions) > 0 && c.adminOnAll(caller, target.Permissions)
}

// domainsAdministered returns the domains on which perms grant admin.
func (c *catalog) domainsAdministered(perms []Permission) []Resource {
	var out []Resource
	for _, d := range c.domains {
		if LevelOn(perms, d) == Admin {
			out = append(out, d)
		}
	}
	return out
}
