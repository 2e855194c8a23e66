// Package secretscan is the transport side of GitHub's secret scanning
// partner program: GitHub POSTs the tokens it found in public code, signed
// with one of its published keys, and the partner answers, per token,
// whether it was one of its own.
//
// The package checks the signature (Keys), parses the report (ParseMatches)
// and answers with GitHub's feedback array (Handler). What a token is, and
// what happens to one that leaked, is decided by the caller's Reporter.
//
// The verifying keys are read from a file in the format of GitHub's meta
// endpoint (https://api.github.com/meta/public_keys/secret_scanning); this
// package never fetches them. Keep the file current out of band: Keys picks
// up a rewritten file by itself.
//
// Token values are never logged, and never echoed anywhere but in the
// feedback body, where GitHub expects them back as token_raw.
//
// The package imports only the standard library.
package secretscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits on a report, enforced by ParseMatches.
const (
	MaxMatches      = 1000 // elements in one report
	MaxTokenLength  = 1024 // bytes of a match's token, after JSON decoding
	MaxURLLength    = 2048 // bytes of a match's URL
	MaxTypeLength   = 1024 // bytes of a match's type
	MaxSourceLength = 1024 // bytes of a match's source
)

// Match is one token GitHub found: the token itself, the token type the
// partner registered with GitHub, the URL of the place it was found and what
// kind of place that is ("content", "commit", "pull_request", "issue",
// "discussion", "gist", "wiki", ...; free text, GitHub adds kinds).
type Match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// Label is the partner's verdict on a match.
type Label string

// The labels GitHub accepts: the token was one of the partner's
// (true_positive) or not (false_positive).
const (
	TruePositive  Label = "true_positive"
	FalsePositive Label = "false_positive"
)

// Valid reports whether l is one of TruePositive and FalsePositive.
func (l Label) Valid() bool { return l == TruePositive || l == FalsePositive }

// Feedback is one element of the answer to GitHub: the reported token and
// type, as received, and the verdict.
type Feedback struct {
	TokenRaw  string `json:"token_raw"`
	TokenType string `json:"token_type"`
	Label     Label  `json:"label"`
}

// ParseMatches parses a report: a JSON array of objects, each with a string
// "token" (required, 1 to MaxTokenLength bytes), and optional strings
// "type", "url" and "source" (at most MaxTypeLength, MaxURLLength and
// MaxSourceLength bytes). Field names are matched exactly (GitHub sends them
// in lower case); a field given twice, null, or not a string is an error;
// other fields are ignored. An array of more than MaxMatches elements is an
// error. An empty array is valid and gives an empty, non-nil slice.
//
// Errors say what is wrong and at which element (counted from 0), never
// with a token's value.
func ParseMatches(body []byte) ([]Match, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("report is empty, want a JSON array")
	}
	// Syntax first, so that the walk below deals only with structure.
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("report is not valid JSON (near byte %d)", se.Offset)
		}
		return nil, errors.New("report is not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if !delim(dec, '[') {
		return nil, errors.New("report is not a JSON array")
	}
	matches := []Match{}
	for i := 0; dec.More(); i++ {
		if i == MaxMatches {
			return nil, fmt.Errorf("report has more than %d matches", MaxMatches)
		}
		m, err := parseMatch(dec)
		if err != nil {
			return nil, fmt.Errorf("match %d: %w", i, err)
		}
		matches = append(matches, m)
	}
	if !delim(dec, ']') {
		return nil, errors.New("report is not a JSON array")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("report has data after the array")
	}
	return matches, nil
}

// delim reads the next token and reports whether it is d.
func delim(dec *json.Decoder, d json.Delim) bool {
	t, err := dec.Token()
	return err == nil && t == d
}

func parseMatch(dec *json.Decoder) (Match, error) {
	var m Match
	if !delim(dec, '{') {
		return m, errors.New("not a JSON object")
	}
	var seen [4]bool // token, type, url, source
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return m, errors.New("not a JSON object")
		}
		name, _ := t.(string)
		var field *string
		var max, n int
		switch name {
		case "token":
			field, max, n = &m.Token, MaxTokenLength, 0
		case "type":
			field, max, n = &m.Type, MaxTypeLength, 1
		case "url":
			field, max, n = &m.URL, MaxURLLength, 2
		case "source":
			field, max, n = &m.Source, MaxSourceLength, 3
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return m, errors.New("not a JSON object")
			}
			continue
		}
		if seen[n] {
			return m, fmt.Errorf("%q is given twice", name)
		}
		seen[n] = true
		v, err := dec.Token()
		s, ok := v.(string)
		if err != nil || !ok {
			// A value that is not a string may be an array or object:
			// the error ends the parse, so it need not be skipped.
			return m, fmt.Errorf("%q is not a string", name)
		}
		if len(s) > max {
			return m, fmt.Errorf("%q is longer than %d bytes", name, max)
		}
		*field = s
	}
	if !delim(dec, '}') {
		return m, errors.New("not a JSON object")
	}
	if m.Token == "" {
		return m, errors.New(`"token" is missing or empty`)
	}
	return m, nil
}
