package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
)

// A path that a subtree pattern takes only once a slash is added (ServeMux
// would redirect the path itself there) still needs that pattern's rule
// when another route takes the path: the API behind may serve /admin as it
// serves /admin/.
func TestGatewayVariantsOfASubtree(t *testing.T) {
	base := newFixture(t, "", false)
	f := newFixtureWith(t, base, fmt.Sprintf("/admin/ account:%d:admin\n/{page} none\n", base.tokend.AccountID))
	viewer := http.Header{"Api-Token": {f.tokend.Token(t, "viewer").Value}}
	admin := http.Header{"Api-Token": {f.tokend.Admin.Value}}
	for _, c := range []struct {
		name, path string
		header     http.Header
		status     int
	}{
		{"the subtree's rule, without a token", "/admin", nil, 401},
		{"the subtree's rule, for a viewer", "/admin", viewer, 403},
		{"the subtree's rule, for the admin", "/admin", admin, 200},
		{"in another case", "/Admin", viewer, 403},
		{"inside the subtree", "/admin/users", viewer, 403},
		{"another page", "/about", nil, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, _, body := f.do("GET", c.path, c.header); status != c.status {
				t.Fatalf("GET %s: %d %v, want %d", c.path, status, body, c.status)
			}
		})
	}
}
