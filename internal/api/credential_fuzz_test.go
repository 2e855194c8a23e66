package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokend/tokend"
)

// FuzzCredential feeds credential every mix of Api-Token and Authorization
// values: each argument is the values of one header, separated by newlines
// (none when empty). A blank Api-Token value counts as absent.
//
// Accepted, the value is non-empty and trimmed, every non-blank Api-Token value
// equals it, and every Authorization value is "Bearer <it>" (scheme in any
// case) or, only beside a non-blank Api-Token, carries no bearer token. And the
// converse: whenever the headers agree on one token that way, it is accepted.
// Rejected, the error is an unauthorized *tokend.Error, and "missing" only
// when no header carries anything.
func FuzzCredential(f *testing.F) {
	seeds := []struct{ apiToken, authorization string }{
		{"", ""},
		{"tk_a", ""},
		{"", "Bearer tk_a"},
		{"tk_a", "Bearer tk_a"},
		{"  tk_a\t", "bearer   tk_a "},
		{"", "BEARER tk_a"},
		{"tk_a", "Bearer tk_b"},
		{"tk_a\ntk_b", ""},
		{"tk_a\ntk_a", "Bearer tk_a\nBearer tk_a"},
		{"", "Bearer tk_a\nBearer tk_b"},
		{"tk_a\n", "Bearer tk_a"},
		{"\n \n", ""},
		{"tk_a", "Basic dXNlcjpwYXNz"},
		{"", "Basic dXNlcjpwYXNz"},
		{"tk_a", "Basic dXNlcjpwYXNz\nBearer tk_b"},
		{"", "Bearer tk_a\nBasic dXNlcjpwYXNz"},
		{"", "Bearer"},
		{"", "Bearer "},
		{"tk_a", "Bearer "},
		{"", "Bearer\ttk_a"},
		{"", "Bearer tk a"},
		{"", "\n"},
	}
	for _, s := range seeds {
		f.Add(s.apiToken, s.authorization)
	}
	f.Fuzz(func(t *testing.T, apiToken, authorization string) {
		tokens, auths := headerValues(apiToken), headerValues(authorization)
		r := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
		for _, v := range tokens {
			r.Header.Add("Api-Token", v)
		}
		for _, v := range auths {
			r.Header.Add("Authorization", v)
		}
		value, err := credential(r)

		// What the headers say: the non-blank tokens they carry, and whether
		// an Authorization value carries none.
		carried := map[string]bool{}
		hasAPIToken, otherScheme := false, false
		for _, v := range tokens {
			if v = strings.TrimSpace(v); v != "" {
				carried[v], hasAPIToken = true, true
			}
		}
		for _, a := range auths {
			if tok, ok := bearer(a); ok {
				carried[tok] = true
			} else {
				otherScheme = true
			}
		}
		agreed := len(carried) == 1 && (!otherScheme || hasAPIToken)

		if err != nil {
			var e *tokend.Error
			if !errors.As(err, &e) || e.Code != tokend.EUNAUTHORIZED {
				t.Fatalf("error %#v is not an unauthorized *tokend.Error", err)
			}
			if agreed {
				t.Fatalf("Api-Token %q, Authorization %q agree on one token, yet: %v", tokens, auths, err)
			}
			if e.Reason == "missing_api_key" && (hasAPIToken || strings.TrimSpace(strings.Join(auths, "")) != "") {
				t.Fatalf("Api-Token %q, Authorization %q: reported as missing", tokens, auths)
			}
			return
		}
		if value == "" || value != strings.TrimSpace(value) {
			t.Fatalf("accepted value %q is empty or untrimmed", value)
		}
		for _, v := range tokens {
			if v = strings.TrimSpace(v); v != "" && v != value {
				t.Fatalf("accepted %q beside Api-Token %q", value, v)
			}
		}
		for _, a := range auths {
			tok, ok := bearer(a)
			if ok && tok != value {
				t.Fatalf("accepted %q beside Authorization %q", value, a)
			}
			if !ok && !hasAPIToken {
				t.Fatalf("accepted %q from Authorization %q without Api-Token", value, a)
			}
		}
		if !agreed {
			t.Fatalf("accepted %q from Api-Token %q, Authorization %q, which do not agree", value, tokens, auths)
		}
	})
}

// headerValues splits a fuzz argument into header values.
func headerValues(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(auth string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(auth), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}
