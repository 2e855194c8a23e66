package web

// The permissions grid: the resources a user can read, as rows of checkboxes.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tokend/tokend"
)

// catalog names the resources a user can read, for grids and summaries.
type catalog struct {
	Account   tokend.AccountView
	Projects  []tokend.ResourceView
	Sandboxes []tokend.ResourceView
	Domains   []tokend.ResourceView
	names     map[string]string // "type:id" → name
}

func (s *Server) catalog(ctx context.Context, p *tokend.Token) (*catalog, error) {
	accounts, err := s.svc.ListAccounts(ctx, p)
	if err != nil {
		return nil, err
	}
	c := &catalog{Account: accounts[0], names: map[string]string{}}
	c.names[key(tokend.ResourceAccount, c.Account.ID)] = c.Account.Name
	for _, t := range []struct {
		typ  tokend.ResourceType
		dest *[]tokend.ResourceView
	}{{tokend.ResourceProject, &c.Projects}, {tokend.ResourceSandbox, &c.Sandboxes}, {tokend.ResourceDomain, &c.Domains}} {
		if *t.dest, err = s.svc.ListResources(ctx, p, t.typ); err != nil {
			return nil, err
		}
		for _, v := range *t.dest {
			c.names[key(t.typ, v.ID)] = v.Name
		}
	}
	return c, nil
}

func key(t tokend.ResourceType, id int64) string { return string(t) + ":" + strconv.FormatInt(id, 10) }

// gridRow is one resource of the permissions grid.
type gridRow struct {
	Type, Name string
	Key        string
	Indent     bool
	Viewer     bool
	Admin      bool
	CanGrant   bool // the user is admin of it: only then may a token be given access to it
}

// accountLevel is the caller's level on the account itself.
func (c *catalog) accountLevel() tokend.AccessLevel {
	var l tokend.AccessLevel
	for _, v := range c.Account.Levels {
		l = max(l, v)
	}
	return l
}

// grid lays the catalog out as rows, checking what perms grant.
func (c *catalog) grid(perms []tokend.Permission) []gridRow {
	granted := map[string]tokend.AccessLevel{}
	for _, p := range perms {
		granted[key(p.ResourceType, p.ResourceID)] = p.Level
	}
	row := func(t tokend.ResourceType, id int64, name string, indent bool, level tokend.AccessLevel) gridRow {
		k := key(t, id)
		return gridRow{Type: string(t), Name: name, Key: k, Indent: indent, Viewer: granted[k] == tokend.Viewer, Admin: granted[k] == tokend.Admin,
			CanGrant: level == tokend.Admin}
	}
	rows := []gridRow{row(tokend.ResourceAccount, c.Account.ID, c.Account.Name, false, c.accountLevel())}
	for _, p := range c.Projects {
		rows = append(rows, row(tokend.ResourceProject, p.ID, p.Name, false, p.Level))
		for _, sb := range c.Sandboxes {
			if sb.ProjectID == p.ID {
				rows = append(rows, row(tokend.ResourceSandbox, sb.ID, sb.Name, true, sb.Level))
			}
		}
	}
	for _, d := range c.Domains {
		rows = append(rows, row(tokend.ResourceDomain, d.ID, d.Name, false, d.Level))
	}
	return rows
}

// summary describes a token's permissions: "Admin domain example.com".
func (c *catalog) summary(perms []tokend.Permission) string {
	if len(perms) == 0 {
		return "No resources"
	}
	parts := make([]string, len(perms))
	for i, p := range perms {
		name, ok := c.names[key(p.ResourceType, p.ResourceID)]
		if !ok {
			name = "#" + strconv.FormatInt(p.ResourceID, 10)
		}
		parts[i] = fmt.Sprintf("%s %s %s", funcs["level"].(func(tokend.AccessLevel) string)(p.Level), p.ResourceType, name)
	}
	return strings.Join(parts, ", ")
}

// readPermissions reads the grid's checkboxes ("perm" = "type:id:level"); a
// resource checked twice takes the higher level.
func readPermissions(r *http.Request) ([]tokend.Permission, error) {
	levels := map[string]tokend.AccessLevel{}
	var order []string
	for _, v := range r.PostForm["perm"] {
		parts := strings.Split(v, ":")
		if len(parts) != 3 {
			return nil, tokend.Invalid("resources", "could not be read from the form")
		}
		level, err := strconv.Atoi(parts[2])
		if err != nil || !tokend.AccessLevel(level).Valid() {
			return nil, tokend.Invalid("resources", "could not be read from the form")
		}
		k := parts[0] + ":" + parts[1]
		if _, seen := levels[k]; !seen {
			order = append(order, k)
		}
		levels[k] = max(levels[k], tokend.AccessLevel(level))
	}
	perms := make([]tokend.Permission, 0, len(order))
	for _, k := range order {
		t, idText, _ := strings.Cut(k, ":")
		typ, ok := tokend.ParseResourceType(t)
		id, err := strconv.ParseInt(idText, 10, 64)
		if !ok || err != nil || id <= 0 {
			return nil, tokend.Invalid("resources", "could not be read from the form")
		}
		perms = append(perms, tokend.Permission{ResourceType: typ, ResourceID: id, Level: levels[k]})
	}
	return perms, nil
}
