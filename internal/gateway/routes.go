package gateway

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/tokend/tokend/client"
)

// Route is one line of a routes file: requests matching Pattern (a
// net/http.ServeMux pattern, such as "GET /v1/projects/{project_id}/items")
// need what Rule says.
type Route struct {
	Pattern string
	Rule    Rule
	Line    int // in the routes file, for messages
}

// Rule is what a route requires: nothing (Public), any valid token of the
// account (no Permissions), or a token holding every one of Permissions.
type Rule struct {
	Public      bool
	Permissions []PermissionTemplate
}

// PermissionTemplate is a permission whose resource id may be a path value
// of the route, as in project:{project_id}:viewer.
type PermissionTemplate struct {
	ResourceType string
	ResourceID   int64  // when IDFrom is empty
	IDFrom       string // the path wildcard that holds the id
	AccessLevel  int
}

var wildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// ParseRoutes reads a routes file: one route per line, a pattern then its
// rule, blank lines and #-comments ignored.
//
//	# pattern                         rule
//	GET  /healthz                     none
//	GET  /v1/projects/{id}/reports    project:{id}:viewer
//	POST /v1/send                     domain:7:admin
//	/                                 token
//
// A rule is "none" (no token needed), "token" (any valid token of the
// account) or one or more permissions <type>:<id>:<level>, all required,
// where <id> may name a wildcard of the pattern. A request no pattern
// matches is refused with 404.
func ParseRoutes(r io.Reader) ([]Route, error) {
	var routes []Route
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		pattern, rule := f[0], f[1:]
		if !strings.Contains(f[0], "/") && len(f) > 1 { // a method first
			if f[0] != strings.ToUpper(f[0]) {
				return nil, fmt.Errorf("routes line %d: method %q: methods are upper case (%s), or a request would never match", n, f[0], strings.ToUpper(f[0]))
			}
			pattern, rule = f[0]+" "+f[1], f[2:]
		}
		if len(rule) == 0 {
			return nil, fmt.Errorf("routes line %d: %q has no rule: want none, token or permissions such as project:3:viewer", n, pattern)
		}
		if path := pattern[strings.LastIndex(pattern, " ")+1:]; !strings.HasPrefix(path, "/") {
			// Go matches hosts as written, while clients may send any case.
			return nil, fmt.Errorf("routes line %d: %q: patterns are paths (starting with /); hosts are not matched", n, pattern)
		}
		route := Route{Pattern: pattern, Line: n}
		wildcards := map[string]bool{}
		for _, m := range wildcard.FindAllStringSubmatch(pattern, -1) {
			wildcards[m[1]] = true
		}
		switch {
		case len(rule) == 1 && rule[0] == "none":
			route.Rule.Public = true
		case len(rule) == 1 && rule[0] == "token":
		default:
			for _, s := range rule {
				p, err := parseTemplate(s, wildcards)
				if err != nil {
					return nil, fmt.Errorf("routes line %d: %w", n, err)
				}
				route.Rule.Permissions = append(route.Rule.Permissions, p)
			}
		}
		routes = append(routes, route)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("routes: no routes: every request would be refused")
	}
	return routes, nil
}

func parseTemplate(s string, wildcards map[string]bool) (PermissionTemplate, error) {
	parts := strings.Split(s, ":")
	if len(parts) == 3 && strings.HasPrefix(parts[1], "{") && strings.HasSuffix(parts[1], "}") {
		name := parts[1][1 : len(parts[1])-1]
		if !wildcards[name] {
			return PermissionTemplate{}, fmt.Errorf("permission %q: the pattern has no wildcard {%s}", s, name)
		}
		p, err := client.ParsePermission(parts[0] + ":1:" + parts[2])
		if err != nil {
			return PermissionTemplate{}, fmt.Errorf("permission %q: %w", s, err)
		}
		return PermissionTemplate{ResourceType: p.ResourceType, IDFrom: name, AccessLevel: p.AccessLevel}, nil
	}
	if s == "none" || s == "token" {
		return PermissionTemplate{}, fmt.Errorf("%q cannot be combined with permissions", s)
	}
	p, err := client.ParsePermission(s)
	if err != nil {
		return PermissionTemplate{}, err
	}
	return PermissionTemplate{ResourceType: p.ResourceType, ResourceID: p.ResourceID, AccessLevel: p.AccessLevel}, nil
}
