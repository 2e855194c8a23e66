package client_test

import (
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/client"
)

// FuzzParsePermission holds the client's reading of "<type>:<id>:<level>"
// to tokend's own: the same strings accepted, as the same permission, and
// String gives back what parses to it.
func FuzzParsePermission(f *testing.F) {
	for _, seed := range []string{"project:3:viewer", "account:1:100", "inbox:7:admin", "sending_domain:2:10",
		"sandbox:0:viewer", "domain:-1:admin", "planet:1:10", "project:3", "project:3:owner", " project:3:viewer ",
		"project:+3:viewer", "project:03:viewer", "project:9223372036854775808:viewer"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, cerr := client.ParsePermission(s)
		d, derr := tokend.ParsePermission(s)
		if (cerr == nil) != (derr == nil) {
			t.Fatalf("%q: client says %v, tokend says %v", s, cerr, derr)
		}
		if cerr != nil {
			return
		}
		if c.ResourceType != string(d.ResourceType) || c.ResourceID != d.ResourceID || c.AccessLevel != int(d.Level) {
			t.Fatalf("%q: client %+v, tokend %+v", s, c, d)
		}
		again, err := client.ParsePermission(c.String())
		if err != nil || again != c {
			t.Fatalf("%q: String %q parses to %+v, %v", s, c.String(), again, err)
		}
	})
}
