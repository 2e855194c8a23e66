package tokend

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

var submissionNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func TestPrepareSubmission(t *testing.T) {
	cases := []struct {
		name    string
		raw     string
		live    bool
		want    []string // in the prepared message
		notWant []string
		subject string
		key     string
	}{
		{name: "bare LF and CR become CRLF", raw: "From: a@example.com\nSubject: s\n\nline1\nline2\rline3\r\n.\n",
			want: []string{"From: a@example.com\r\n", "\r\n\r\nline1\r\nline2\r\nline3\r\n.\r\n"}, subject: "s"},
		{name: "Bcc, Return-Path and tokend's fields go", raw: "From: a@example.com\r\nBcc: hidden@example.org,\r\n  more@example.org\r\nReturn-Path: <x@y.z>\r\n" +
			"X-MT-Category: welcome\r\nIdempotency-Key: k1\r\nSubject: s\r\n\r\nbody\r\n",
			notWant: []string{"hidden@", "more@", "Return-Path", "X-MT-Category", "Idempotency-Key"}, want: []string{"Subject: s\r\n"}, subject: "s", key: "k1"},
		{name: "live mail gets a Date, not a Message-ID", raw: "From: a@example.com\r\n\r\nb\r\n", live: true,
			want: []string{"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n"}, notWant: []string{"Message-ID"}},
		{name: "captured mail gets a Message-ID", raw: "From: a@example.com\r\n\r\nb\r\n", want: []string{"Message-ID: <", "@example.com>\r\n"}},
		{name: "given Date and Message-ID stay alone", raw: "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <m@x>\r\nFrom: a@example.com\r\n\r\nb\r\n",
			notWant: []string{"2026"}},
		{name: "encoded subject is decoded for the logs", raw: "From: a@example.com\r\nSubject: =?UTF-8?B?SMOpbGxv?=\r\n\r\nb\r\n", subject: "Héllo"},
		{name: "header only", raw: "From: a@example.com\r\nSubject: s", want: []string{"Subject: s\r\n\r\n"}, subject: "s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, idem, err := prepareSubmission(&Submission{MailFrom: "a@example.com", Recipients: []string{"b@example.org"}, Raw: []byte(tc.raw)}, tc.live, submissionNow)
			if err != nil {
				t.Fatal(err)
			}
			raw := string(p.raw)
			for _, w := range tc.want {
				if !strings.Contains(raw, w) {
					t.Errorf("prepared message lacks %q:\n%q", w, raw)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(raw, w) {
					t.Errorf("prepared message has %q:\n%q", w, raw)
				}
			}
			var key string
			if idem != nil {
				key = idem.Key
			}
			if p.env.subject != tc.subject || key != tc.key {
				t.Errorf("subject %q key %q, want %q %q", p.env.subject, key, tc.subject, tc.key)
			}
		})
	}
}

// TestSubmissionFingerprint: a retry of an idempotent submission matches
// its first try although tokend added a Date and a Message-ID of its own to
// each (at another time, with other ids); any change of envelope or
// message does not match.
func TestSubmissionFingerprint(t *testing.T) {
	const msg = "From: a@example.com\r\nIdempotency-Key: k1\r\nSubject: s\r\n\r\nbody\r\n"
	first := fingerprint(t, "a@example.com", []string{"b@example.org"}, msg, submissionNow)
	cases := []struct {
		name      string
		mailFrom  string
		rcpts     []string
		raw       string
		now       time.Time
		wantMatch bool
	}{
		{name: "retried a minute later", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: msg, now: submissionNow.Add(time.Minute), wantMatch: true},
		{name: "retried with bare LF", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: strings.ReplaceAll(msg, "\r\n", "\n"), now: submissionNow, wantMatch: true},
		{name: "key field elsewhere", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: "Idempotency-Key: k1\r\nFrom: a@example.com\r\nSubject: s\r\n\r\nbody\r\n", now: submissionNow, wantMatch: true},
		{name: "other body", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: strings.Replace(msg, "body", "Body", 1), now: submissionNow},
		{name: "other subject", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: strings.Replace(msg, "Subject: s", "Subject: t", 1), now: submissionNow},
		{name: "other recipient", mailFrom: "a@example.com", rcpts: []string{"c@example.org"}, raw: msg, now: submissionNow},
		{name: "one more recipient", mailFrom: "a@example.com", rcpts: []string{"b@example.org", "c@example.org"}, raw: msg, now: submissionNow},
		{name: "other envelope sender", mailFrom: "z@example.com", rcpts: []string{"b@example.org"}, raw: msg, now: submissionNow},
		{name: "a Bcc added", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: "Bcc: x@example.org\r\n" + msg, now: submissionNow},
		{name: "a category added", mailFrom: "a@example.com", rcpts: []string{"b@example.org"}, raw: "X-MT-Category: c\r\n" + msg, now: submissionNow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fingerprint(t, tc.mailFrom, tc.rcpts, tc.raw, tc.now)
			if match := bytes.Equal(got, first); match != tc.wantMatch {
				t.Errorf("matches the first try: %v, want %v", match, tc.wantMatch)
			}
		})
	}
}

func fingerprint(t *testing.T, mailFrom string, rcpts []string, raw string, now time.Time) []byte {
	t.Helper()
	// captured (not live): tokend adds a random Message-ID as well as a Date
	_, idem, err := prepareSubmission(&Submission{MailFrom: mailFrom, Recipients: rcpts, Raw: []byte(raw)}, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if idem == nil || idem.Key != "k1" {
		t.Fatalf("idempotency %+v, want key k1", idem)
	}
	return idem.Fingerprint
}

// FuzzSubmission holds the submission's promises for any message: it is
// refused with a validation error, or what goes on has CRLF line ends only,
// no Bcc field, and the body as given (line ends aside).
func FuzzSubmission(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nBcc: x@example.org\r\nSubject: s\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@example.com\nbcc:\n x@y\n\n.\n\r\n.\r\n"))
	f.Add([]byte("\r\n\r\nFrom: a@example.com"))
	f.Add([]byte(" folded first\r\nFrom: a@example.com\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, _, err := prepareSubmission(&Submission{MailFrom: "a@example.com", Recipients: []string{"b@example.org"}, Raw: raw}, true, submissionNow)
		if err != nil {
			if ErrorCode(err) != EINVALID && ErrorCode(err) != ETOOLARGE && ErrorCode(err) != EFORBIDDEN {
				t.Fatalf("error %v is not a refusal", err)
			}
			return
		}
		out := p.raw
		if i := bytes.IndexAny(bytes.ReplaceAll(out, []byte("\r\n"), nil), "\r\n"); i >= 0 {
			t.Fatalf("bare CR or LF in %q", out)
		}
		header, body := splitMessage(out)
		for _, f := range headerFields(header) {
			if strings.EqualFold(f.name(), "bcc") {
				t.Fatalf("Bcc field kept: %q", out)
			}
		}
		_, inBody := splitMessage(normalizeNewlines(raw))
		if !bytes.Equal(body, inBody) {
			t.Fatalf("body changed:\n%q\n%q", inBody, body)
		}
	})
}
