package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/tokend/tokend"
)

// FuzzResourceID holds both parsers of resource ids to one rule: accepted ids
// are exactly the positive decimal int64s, written with digits only (no sign,
// space, fraction or exponent). pathID reads {id} of a path and rejects
// anything else as not found; idInput reads resource_id, a JSON integer or a
// string of digits, and rejects anything else as invalid.
func FuzzResourceID(f *testing.F) {
	for _, seed := range []string{
		"1", "42", "007", "9223372036854775807", "9223372036854775808", "18446744073709551616",
		"0", "00", "-1", "-0", "+1", "+0", " 1", "1 ", "\t1", "1\n", "1.0", "1e3", "0x10", "1_000", "١",
		"", " ", "-", "+", "abc", `"1"`, `"+1"`, `" 1"`, "true", "null", "[1]", `{"id":1}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, ok := positiveDecimal(s)

		r := httptest.NewRequest(http.MethodGet, "/api/api_tokens/1", nil)
		r.SetPathValue("id", s)
		switch id, err := pathID(r, "id"); {
		case ok && (err != nil || id != want):
			t.Fatalf("pathID(%q) = %d, %v; want %d", s, id, err, want)
		case !ok && err == nil:
			t.Fatalf("pathID(%q) accepted %d", s, id)
		case !ok && !hasCode(err, tokend.ENOTFOUND):
			t.Fatalf("pathID(%q): error %#v is not a not-found *tokend.Error", s, err)
		}

		// s as a JSON string, then s as the raw JSON value of resource_id.
		quoted, _ := json.Marshal(s)
		checkIDInput(t, quoted, want, ok)
		if raw := []byte(s); json.Valid(raw) {
			raw = bytes.Trim(raw, " \t\r\n")
			var text string
			if raw[0] != '"' {
				text = string(raw)
			} else if err := json.Unmarshal(raw, &text); err != nil {
				t.Fatalf("json.Valid(%q) but: %v", raw, err)
			}
			want, ok := positiveDecimal(text)
			checkIDInput(t, raw, want, ok)
		}
	})
}

// checkIDInput decodes raw as the resource_id of a permission.
func checkIDInput(t *testing.T, raw []byte, want int64, ok bool) {
	t.Helper()
	var p permissionInput
	body := append(append([]byte(`{"resource_type":"project","access_level":10,"resource_id":`), raw...), '}')
	err := json.Unmarshal(body, &p)
	switch {
	case ok && (err != nil || int64(p.ResourceID) != want):
		t.Fatalf("resource_id %s = %d, %v; want %d", raw, p.ResourceID, err, want)
	case !ok && err == nil:
		t.Fatalf("resource_id %s accepted as %d", raw, p.ResourceID)
	case !ok && !hasCode(err, tokend.EINVALID):
		t.Fatalf("resource_id %s: error %#v is not an invalid *tokend.Error", raw, err)
	}
}

// positiveDecimal is the rule: digits only, a value in 1..MaxInt64.
func positiveDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

func hasCode(err error, code string) bool {
	var e *tokend.Error
	return errors.As(err, &e) && e.Code == code
}
