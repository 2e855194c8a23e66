package secretscan_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/secretscan"
)

func TestParseMatches(t *testing.T) {
	tok := secretscan.Match{Token: "tokend_abc", Type: "tokend_api_token", URL: "https://github.com/o/r/blob/main/f", Source: "content"}
	many := func(n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`{"token":"t"},`, n), ",") + "]"
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, c := range []struct {
		name string
		body string
		want []secretscan.Match // when no error
		err  string             // in the error
	}{
		{"empty array", `[]`, []secretscan.Match{}, ""},
		{"empty array, white space", " \n[ ]\r\n\t", []secretscan.Match{}, ""},
		{"one match", `[{"token":"tokend_abc","type":"tokend_api_token","url":"https://github.com/o/r/blob/main/f","source":"content"}]`, []secretscan.Match{tok}, ""},
		{"two in order", `[{"token":"b","type":"t"},{"token":"a","source":"commit"}]`,
			[]secretscan.Match{{Token: "b", Type: "t"}, {Token: "a", Source: "commit"}}, ""},
		{"unknown fields ignored", `[{"extra":{"a":[1,{"token":2}]},"token":"a","n":null,"m":[]}]`, []secretscan.Match{{Token: "a"}}, ""},
		{"escapes", `[{"token":"a\"\\\u00e9\n<>&"}]`, []secretscan.Match{{Token: "a\"\\é\n<>&"}}, ""},
		{"any source", `[{"token":"a","source":"something new"}]`, []secretscan.Match{{Token: "a", Source: "something new"}}, ""},
		{"longest token and URL", `[{"token":"` + long(secretscan.MaxTokenLength) + `","url":"` + long(secretscan.MaxURLLength) + `"}]`,
			[]secretscan.Match{{Token: long(secretscan.MaxTokenLength), URL: long(secretscan.MaxURLLength)}}, ""},
		{"most matches", many(secretscan.MaxMatches), nil, ""},

		{"empty body", ``, nil, "report is empty"},
		{"white space", " \n", nil, "report is empty"},
		{"not JSON", `tokens`, nil, "not valid JSON (near byte 2)"},
		{"truncated", `[{"token":"a"}`, nil, "not valid JSON"},
		{"trailing comma", `[{"token":"a"},]`, nil, "not valid JSON"},
		{"two arrays", `[][]`, nil, "not valid JSON"},
		{"null", `null`, nil, "not a JSON array"},
		{"an object", `{"token":"a"}`, nil, "not a JSON array"},
		{"a string", `"a"`, nil, "not a JSON array"},
		{"too many matches", many(secretscan.MaxMatches + 1), nil, "more than 1000 matches"},
		{"null match", `[{"token":"a"},null]`, nil, "match 1: not a JSON object"},
		{"string match", `["a"]`, nil, "match 0: not a JSON object"},
		{"array match", `[[{"token":"a"}]]`, nil, "match 0: not a JSON object"},
		{"no token", `[{"type":"t"}]`, nil, `match 0: "token" is missing or empty`},
		{"empty token", `[{"token":""}]`, nil, `match 0: "token" is missing or empty`},
		{"null token", `[{"token":null}]`, nil, `match 0: "token" is not a string`},
		{"number token", `[{"token":1}]`, nil, `match 0: "token" is not a string`},
		{"object token", `[{"token":{"a":"b"}}]`, nil, `match 0: "token" is not a string`},
		{"number type", `[{"token":"a","type":1}]`, nil, `match 0: "type" is not a string`},
		{"null url", `[{"token":"a","url":null}]`, nil, `match 0: "url" is not a string`},
		{"array source", `[{"token":"a","source":["content"]}]`, nil, `match 0: "source" is not a string`},
		{"token twice", `[{"token":"a","token":"b"}]`, nil, `match 0: "token" is given twice`},
		{"url twice", `[{"token":"a","url":"","url":""}]`, nil, `match 0: "url" is given twice`},
		{"token too long", `[{"token":"a"},{"token":"` + long(secretscan.MaxTokenLength+1) + `"}]`, nil, `match 1: "token" is longer than 1024 bytes`},
		{"token too long once decoded", `[{"token":"` + strings.Repeat(`\u00e9`, secretscan.MaxTokenLength/2+1) + `"}]`, nil, `"token" is longer than 1024 bytes`},
		{"url too long", `[{"token":"a","url":"` + long(secretscan.MaxURLLength+1) + `"}]`, nil, `match 0: "url" is longer than 2048 bytes`},
		{"type too long", `[{"token":"a","type":"` + long(secretscan.MaxTypeLength+1) + `"}]`, nil, `"type" is longer than`},
		{"source too long", `[{"token":"a","source":"` + long(secretscan.MaxSourceLength+1) + `"}]`, nil, `"source" is longer than`},
		{"field names are exact", `[{"Token":"a"}]`, nil, `"token" is missing or empty`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := secretscan.ParseMatches([]byte(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				if got != nil {
					t.Fatalf("matches with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want != nil && !reflect.DeepEqual(got, c.want) {
				t.Fatalf("%#v, want %#v", got, c.want)
			}
			if got == nil {
				t.Fatal("nil matches")
			}
		})
	}
}

// TestParseMatchesErrorsHoldNoToken: the error of a rejected report may be
// logged and sent back, so it must not hold a token.
func TestParseMatchesErrorsHoldNoToken(t *testing.T) {
	secret := "tokend_SECRET"
	for _, body := range []string{
		`[{"token":"` + secret + `","token":"` + secret + `"}]`,
		`[{"token":"` + secret + `","url":1}]`,
		`[{"token":"` + secret + strings.Repeat("x", 2000) + `"}]`,
		`[{"token":"` + secret + `"`,
		`[{"token":"` + secret + `"},1]`,
		`{"token":"` + secret + `"}`,
	} {
		_, err := secretscan.ParseMatches([]byte(body))
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%.40s: error %v", body, err)
		}
	}
}

func FuzzParseMatches(f *testing.F) {
	for _, seed := range []string{
		`[]`,
		`[{"token":"tokend_abc","type":"tokend_api_token","url":"https://github.com/o/r/blob/main/f","source":"content"}]`,
		`[{"token":"a"},{"token":"b","x":[1,2,{"y":null}]}]`,
		`[{"token":"a\u00e9\ud800\"","type":null}]`,
		`[{"token":"a","token":"b"}]`,
		`[null]`,
		`{"token":"a"}`,
		"[{\"token\":\"\xff\xfe\"}]",
		`[{"Token":"a","TOKEN":"b"}]`,
		` [ { "token" : "a" } ] `,
		`[{"token":"a"}] x`,
		`[`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		matches, err := secretscan.ParseMatches(body)
		if err != nil {
			if matches != nil {
				t.Fatalf("matches with an error: %v", matches)
			}
			return
		}
		if matches == nil || len(matches) > secretscan.MaxMatches {
			t.Fatalf("%d matches (nil: %v)", len(matches), matches == nil)
		}
		for i, m := range matches {
			if m.Token == "" || len(m.Token) > secretscan.MaxTokenLength || len(m.URL) > secretscan.MaxURLLength ||
				len(m.Type) > secretscan.MaxTypeLength || len(m.Source) > secretscan.MaxSourceLength {
				t.Fatalf("match %d out of bounds: %d, %d, %d, %d bytes", i, len(m.Token), len(m.Type), len(m.URL), len(m.Source))
			}
		}
		// What is accepted comes back the same through GitHub's format.
		again, err := json.Marshal(matches)
		if err != nil {
			t.Fatal(err)
		}
		back, err := secretscan.ParseMatches(again)
		if err != nil {
			t.Fatalf("re-encoded report refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(back, matches) {
			t.Fatalf("round trip:\n%#v\n%#v", back, matches)
		}
	})
}
