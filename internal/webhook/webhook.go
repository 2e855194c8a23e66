// Package webhook signs, vets and delivers customer webhooks: the HTTP POSTs
// that tell a customer's endpoint of email events, in the manner of Mailtrap.
//
// Each delivery carries two signatures over the same key (the endpoint's
// signing secret): Mailtrap's (Mailtrap-Signature, a hex HMAC-SHA256 of the
// body) and Standard Webhooks' (webhook-id, webhook-timestamp and
// webhook-signature), so that receivers written for either verify it. A
// Policy decides which URLs an endpoint may have and which addresses a
// delivery may reach; its Client enforces that after DNS resolution. Deliver
// makes one attempt and says whether another could succeed (IsPermanent).
//
// It imports only the standard library.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// UserAgent is the User-Agent of every delivery.
const UserAgent = "tokend-webhooks/1"

const (
	maxRead = 64 << 10 // response bytes read from an endpoint
	maxLog  = 1 << 10  // response bytes kept for the attempt log
)

// Sign returns the headers that sign body for one delivery:
//
//	Mailtrap-Signature: lowercase hex HMAC-SHA256(key=[]byte(secret), body)  (Mailtrap's scheme)
//	webhook-id:         id
//	webhook-timestamp:  decimal unix seconds of at
//	webhook-signature:  "v1," + base64std(HMAC-SHA256(key=[]byte(secret), id + "." + timestamp + "." + body))  (Standard Webhooks)
//
// plus Content-Type (contentType, when not empty) and User-Agent (UserAgent).
// id is the delivery's unique ID, the same for each of its attempts; like
// every header value, it must hold no control characters.
func Sign(secret, id string, at time.Time, contentType string, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mailtrap := hmac.New(sha256.New, []byte(secret))
	mailtrap.Write(body)
	standard := hmac.New(sha256.New, []byte(secret))
	io.WriteString(standard, id+"."+ts+".")
	standard.Write(body)

	h := http.Header{}
	h.Set("Mailtrap-Signature", hex.EncodeToString(mailtrap.Sum(nil)))
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(standard.Sum(nil)))
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("User-Agent", UserAgent)
	return h
}

// StandardSecret is the Standard Webhooks form of a signing secret:
// "whsec_" + base64std([]byte(secret)), so that a Standard Webhooks verifier
// given it uses the same key bytes as Mailtrap's scheme.
func StandardSecret(secret string) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(secret))
}

// NewSecret returns a new random signing secret: 32 bytes from crypto/rand
// as 64 lowercase hex characters.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: it crashes the program if the system has no randomness
	return hex.EncodeToString(b)
}

// Result of one delivery attempt.
type Result struct {
	Status   int // HTTP status, 0 if no response
	Duration time.Duration
	// Body is the first 1 KiB of the response body as text for the attempt
	// log: valid UTF-8 (a character the cut splits is dropped), line breaks
	// and tabs as spaces, other control characters and invalid bytes as
	// U+FFFD.
	Body string
}

// Deliver POSTs body to url through c, signed with Sign's headers, and
// reports the attempt. A 2xx answer is success (nil error). Any other status
// is an error naming it ("endpoint answered 500 Internal Server Error"), and
// so are a destination c refuses, a network error and a timeout. It reads at
// most 64 KiB of the response (a failure while reading it does not undo a
// 2xx) and closes it. Errors never contain the secret.
//
// IsPermanent(err) reports whether retrying cannot help: a URL that is not a
// valid http(s) URL, or a destination the client's Policy refuses. Every
// status, 4xx included, and every network error is worth retrying.
func Deliver(ctx context.Context, c *http.Client, url, secret, id string, at time.Time, contentType string, body []byte) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, &permanentError{fmt.Errorf("webhook URL: %w", err)}
	}
	if (req.URL.Scheme != "https" && req.URL.Scheme != "http") || req.URL.Hostname() == "" {
		return Result{}, &permanentError{errors.New("webhook URL: not an http(s) URL with a host")}
	}
	req.Header = Sign(secret, id, at, contentType, body)

	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return Result{Duration: time.Since(start)}, fmt.Errorf("webhook delivery: %w", err)
	}
	defer res.Body.Close()
	head := make([]byte, maxLog)
	n, _ := io.ReadFull(res.Body, head)
	more, _ := io.Copy(io.Discard, io.LimitReader(res.Body, maxRead-int64(n)))
	r := Result{Status: res.StatusCode, Duration: time.Since(start), Body: logText(head[:n], more > 0)}
	if res.StatusCode/100 != 2 {
		// The status text is Go's, not the endpoint's reason phrase.
		return r, fmt.Errorf("endpoint answered %s", strings.TrimSpace(strconv.Itoa(res.StatusCode)+" "+http.StatusText(res.StatusCode)))
	}
	return r, nil
}

// IsPermanent reports whether err, from Deliver, is one that retrying cannot
// help: an invalid URL or a destination refused by policy.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// permanentError marks an error that retrying cannot help.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// logText is b, the start of a response body, as Result.Body holds it; cut
// says that the body went on after b.
func logText(b []byte, cut bool) string {
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1 && cut && !utf8.FullRune(b):
			return s.String() // the start of a character the cut split
		case r == '\t' || r == '\n' || r == '\r':
			s.WriteByte(' ')
		case r == utf8.RuneError && n == 1, unicode.IsControl(r):
			s.WriteRune(utf8.RuneError)
		default:
			s.Write(b[:n])
		}
		b = b[n:]
	}
	return s.String()
}
