package api_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// callers are the kinds of credential the matrix tries on every endpoint.
var callers = []string{"no token", "malformed", "bad checksum", "expired", "deleted",
	"other account", "viewer", "admin of another resource", "account admin"}

// caller returns a credential of the named kind in e.
func caller(e *env, kind string) string {
	e.t.Helper()
	switch kind {
	case "no token":
		return ""
	case "malformed":
		return "tk_live_tooshort"
	case "bad checksum":
		return e.admin[:len(e.admin)-1] + string(flip(e.admin[len(e.admin)-1]))
	case "expired":
		var tok apiToken
		e.post("/api/api_tokens", e.admin, map[string]any{"name": "expiring", "expires_at": e.clock.Now().Add(time.Minute),
			"resources": []any{perm("account", e.acme, 100)}}).want(200).decode(&tok)
		e.secrets.add(tok.Token)
		e.clock.Advance(time.Minute)
		return tok.Token
	case "deleted":
		tok := e.createToken(e.admin, "doomed", perm("account", e.acme, 100))
		e.del(e.path("/api/api_tokens/%d", tok.ID), e.admin).want(204)
		return tok.Token
	case "other account":
		return e.otherAdmin
	case "viewer":
		return e.createToken(e.admin, "viewer", perm("account", e.acme, 10)).Token
	case "admin of another resource":
		return e.createToken(e.admin, "elsewhere", perm("project", e.createProject(e.admin, "Elsewhere"), 100)).Token
	case "account admin":
		return e.admin
	}
	e.t.Fatalf("unknown caller %q", kind)
	return ""
}

func TestPermissionMatrix(t *testing.T) {
	const u = 401
	// Statuses in the order of callers.
	want := map[string][9]int{
		"list tokens":               {u, u, u, u, u, 200, 200, 200, 200},
		"create token":              {u, u, u, u, u, 422, 403, 422, 200}, // a resource the caller cannot read looks missing
		"get token":                 {u, u, u, u, u, 404, 404, 404, 200},
		"patch token":               {u, u, u, u, u, 404, 404, 404, 200},
		"reset token":               {u, u, u, u, u, 404, 404, 404, 200},
		"delete token":              {u, u, u, u, u, 404, 404, 404, 204},
		"list tokens in account":    {u, u, u, u, u, 404, 200, 200, 200},
		"create token in account":   {u, u, u, u, u, 404, 403, 422, 200},
		"get token in account":      {u, u, u, u, u, 404, 404, 404, 200},
		"patch token in account":    {u, u, u, u, u, 404, 404, 404, 200},
		"reset token in account":    {u, u, u, u, u, 404, 404, 404, 200},
		"delete token in account":   {u, u, u, u, u, 404, 404, 404, 204},
		"list accounts":             {u, u, u, u, u, 200, 200, 200, 200},
		"list projects":             {u, u, u, u, u, 404, 200, 200, 200},
		"create project":            {u, u, u, u, u, 404, 403, 403, 200},
		"get project":               {u, u, u, u, u, 404, 200, 404, 200},
		"rename project":            {u, u, u, u, u, 404, 403, 404, 200},
		"delete project":            {u, u, u, u, u, 404, 403, 404, 204},
		"create sandbox":            {u, u, u, u, u, 404, 403, 404, 200},
		"list sandboxes":            {u, u, u, u, u, 404, 200, 200, 200},
		"get sandbox":               {u, u, u, u, u, 404, 200, 404, 200},
		"rename sandbox":            {u, u, u, u, u, 404, 403, 404, 200},
		"delete sandbox":            {u, u, u, u, u, 404, 403, 404, 204},
		"list domains":              {u, u, u, u, u, 404, 200, 200, 200},
		"create domain":             {u, u, u, u, u, 404, 403, 403, 200},
		"get domain":                {u, u, u, u, u, 404, 200, 404, 200},
		"update domain":             {u, u, u, u, u, 404, 403, 404, 200},
		"delete domain":             {u, u, u, u, u, 404, 403, 404, 204},
		"verify domain":             {u, u, u, u, u, 404, 403, 404, 200},
		"domain setup instructions": {u, u, u, u, u, 404, 403, 404, 204},
		"token usage":               {u, u, u, u, u, 404, 404, 404, 200},
		"token usage in account":    {u, u, u, u, u, 404, 404, 404, 200},
		"audit log":                 {u, u, u, u, u, 200, 403, 403, 200}, // another account reads its own log
		"audit log in account":      {u, u, u, u, u, 404, 403, 403, 200},
		"whoami":                    {u, u, u, u, u, 200, 200, 200, 200},
		"unused tokens":             {u, u, u, u, u, 200, 200, 200, 200},
		"unused tokens in account":  {u, u, u, u, u, 404, 200, 200, 200},
		"token settings":            {u, u, u, u, u, 404, 200, 200, 200},
		"change token settings":     {u, u, u, u, u, 404, 403, 403, 200},
		// Sending needs admin on the sender's domain; a batch answers 200 and
		// refuses item by item; sandboxes follow the sandbox's permissions.
		"send":                 {u, u, u, u, u, 403, 403, 403, 200},
		"batch":                {u, u, u, u, u, 200, 200, 200, 200},
		"send to sandbox":      {u, u, u, u, u, 404, 403, 404, 200},
		"batch to sandbox":     {u, u, u, u, u, 404, 403, 404, 200},
		"mailsage send":        {u, u, u, u, u, 403, 403, 403, 200},
		"email log":            {u, u, u, u, u, 404, 200, 404, 200},
		"email log in account": {u, u, u, u, u, 404, 200, 404, 200},
		// The logs and suppressions of mail need access to a sending domain;
		// changing a domain's suppressions needs admin on it.
		"email logs":              {u, u, u, u, u, 404, 200, 403, 200},
		"suppressions":            {u, u, u, u, u, 404, 200, 403, 200},
		"add suppression":         {u, u, u, u, u, 404, 403, 422, 201}, // a domain_id the caller cannot read looks missing
		"delete suppression":      {u, u, u, u, u, 404, 403, 404, 200},
		"list webhooks":           {u, u, u, u, u, 404, 200, 200, 200}, // each sees the webhooks it can read: maybe none
		"create webhook":          {u, u, u, u, u, 404, 403, 422, 200},
		"get webhook":             {u, u, u, u, u, 404, 200, 404, 200},
		"update webhook":          {u, u, u, u, u, 404, 403, 404, 200},
		"delete webhook":          {u, u, u, u, u, 404, 403, 404, 200},
		"webhook deliveries":      {u, u, u, u, u, 404, 200, 404, 200},
		"resend webhook delivery": {u, u, u, u, u, 404, 403, 404, 200},
		// Services verify their own account's tokens (another account's look
		// missing, with 200); a reverse proxy's forwarded request passes with
		// any valid token; the change stream and usage reports need viewer
		// on the account.
		"verify token":                    {u, u, u, u, u, 200, 200, 403, 200},
		"report usage":                    {u, u, u, u, u, 200, 200, 403, 200},
		"verify forwarded request":        {u, u, u, u, u, 204, 204, 204, 204},
		"verify forwarded request (HEAD)": {u, u, u, u, u, 204, 204, 204, 204},
		"auth changes":                    {u, u, u, u, u, 200, 200, 403, 200},
	}
	for _, base := range []string{"", " (sandboxes)"} {
		other := 404 // another account cannot see the sandbox
		for name, row := range map[string][9]int{
			"list messages":       {u, u, u, u, u, other, 200, 404, 200},
			"get message":         {u, u, u, u, u, other, 200, 404, 200},
			"mark message read":   {u, u, u, u, u, other, 403, 404, 200},
			"delete message":      {u, u, u, u, u, other, 403, 404, 200},
			"message html":        {u, u, u, u, u, other, 200, 404, 200},
			"message html source": {u, u, u, u, u, other, 200, 404, 200},
			"message text":        {u, u, u, u, u, other, 200, 404, 200},
			"message raw":         {u, u, u, u, u, other, 200, 404, 200},
			"message eml":         {u, u, u, u, u, other, 200, 404, 200},
			"message headers":     {u, u, u, u, u, other, 200, 404, 200},
			"list attachments":    {u, u, u, u, u, other, 200, 404, 200},
			"get attachment":      {u, u, u, u, u, other, 200, 404, 200},
			"download attachment": {u, u, u, u, u, other, 200, 404, 200},
		} {
			want[name+base] = row
		}
	}
	probe := newEnv(t)
	eps := endpoints(probe)
	assertEndpointsAreTheRoutes(t, eps, authenticatedRoutes(probe))
	if len(eps) != len(want) {
		t.Fatalf("matrix covers %d endpoints, the API has %d", len(want), len(eps))
	}
	// A request refused with 401, or a read, changes nothing: one env per
	// caller kind serves all of them. Any other request gets an env of its
	// own, so that what it changes cannot reach another row.
	type sharedEnv struct {
		e     *env
		eps   []endpoint
		token string
	}
	shared := map[string]sharedEnv{}
	for _, kind := range callers {
		e := newEnv(t)
		eps := endpoints(e)
		shared[kind] = sharedEnv{e: e, eps: eps, token: caller(e, kind)}
	}
	for i, ep := range eps {
		row, ok := want[ep.name]
		if !ok {
			t.Fatalf("no matrix row for %q", ep.name)
		}
		for c, kind := range callers {
			t.Run(ep.name+"/"+kind, func(t *testing.T) {
				var e *env
				var token string
				if row[c] == 401 || ep.method == "GET" || ep.method == "HEAD" {
					s := shared[kind]
					e, token, ep = s.e.with(t), s.token, s.eps[i]
				} else {
					e = newEnv(t)
					ep = endpoints(e)[i]
					token = caller(e, kind)
				}
				e.send(request{method: ep.method, path: ep.path, token: token, body: ep.body}).want(row[c])
			})
		}
	}
}

// authenticatedRoutes is every route of e's router that takes a token: all
// under /api but the OpenAPI document.
func authenticatedRoutes(e *env) []string {
	var out []string
	for _, route := range routesOf(e) {
		// The contract's document and the scanners' reports (signed, not
		// authenticated by a token) are the API's only routes without one.
		if _, path, _ := strings.Cut(route, " "); strings.HasPrefix(path, "/api/") && route != "GET /api/openapi.json" && route != "POST /api/secret_scanning/github" {
			out = append(out, route)
		}
	}
	return out
}

// assertEndpointsAreTheRoutes stops the test unless eps names every route
// once and nothing else, so that a new route cannot escape the matrix and
// the 401 checks, and no row tests a route that is gone.
func assertEndpointsAreTheRoutes(t *testing.T, eps []endpoint, routes []string) {
	t.Helper()
	if len(routes) == 0 {
		t.Fatal("the router lists no authenticated routes")
	}
	var named []string
	for _, ep := range eps {
		switch {
		case slices.Contains(named, ep.route):
			t.Errorf("%q: %s already has an entry", ep.name, ep.route)
		case !slices.Contains(routes, ep.route):
			t.Errorf("%q names %s, which the router does not serve", ep.name, ep.route)
		}
		named = append(named, ep.route)
	}
	for _, route := range routes {
		if !slices.Contains(named, route) {
			t.Errorf("route %s has no entry in endpoints() nor a row in the permission matrix", route)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
