package gateway_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/gateway"
	"github.com/tokend/tokend/middleware"
)

// FuzzParseRoutes: any routes file either parses into routes the gateway
// accepts or builds from, or is refused with an error; nothing panics, and
// every route has a rule the gateway understands.
func FuzzParseRoutes(f *testing.F) {
	for _, seed := range []string{
		"GET /healthz none\n/ token\n",
		"GET /v1/projects/{id}/reports project:{id}:viewer # c\n",
		"POST /v1/send domain:7:admin account:1:viewer\n",
		"GET example.com/x/{a...} sandbox:{a}:100\n",
		"get /x token\n",
		"GET /p/{id} project:{pid}:viewer\n",
		"GET /x\n",
		"GET /x none token\n",
		"/ none\n/ token\n",
		"\n# only a comment\n",
	} {
		f.Add(seed)
	}
	c, _ := client.New("http://127.0.0.1:1", "tk_live_x")
	auth, _ := middleware.New(c, middleware.Options{})
	up, _ := url.Parse("http://127.0.0.1:1")
	f.Fuzz(func(t *testing.T, file string) {
		routes, err := gateway.ParseRoutes(strings.NewReader(file))
		if err != nil {
			if routes != nil {
				t.Fatalf("routes %v with error %v", routes, err)
			}
			return
		}
		for _, r := range routes {
			if r.Rule.Public && len(r.Rule.Permissions) > 0 {
				t.Fatalf("line %d is public and needs permissions", r.Line)
			}
			for _, p := range r.Rule.Permissions {
				if p.AccessLevel != client.Viewer && p.AccessLevel != client.Admin {
					t.Fatalf("line %d: level %d", r.Line, p.AccessLevel)
				}
				if (p.IDFrom == "") == (p.ResourceID == 0) {
					t.Fatalf("line %d: permission %+v names no id, or two", r.Line, p)
				}
			}
		}
		gateway.New(gateway.Options{Upstream: up, Auth: auth, Routes: routes}) // may refuse, must not panic
	})
}
