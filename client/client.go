// Package client is a typed Go client for tokend's HTTP API: API tokens,
// accounts, projects, sandboxes and sending domains, usage and the audit
// log, sending email (safe to retry with an idempotency key), its logs, the
// suppression list and the webhooks that receive its events, reading
// captured mail, and verification (a token a service was handed, and the
// account's change stream).
//
// A Client holds one token and may be used by many goroutines at once. Every
// answer outside 2xx is an *Error carrying the status and tokend's code:
//
//	c, err := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
//	v, err := c.Verify(ctx, presented, client.MustPermission("project:3:viewer"))
//	var e *client.Error
//	if errors.As(err, &e) && e.Status == http.StatusTooManyRequests { ... e.RetryAfter ... }
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Client calls one tokend with one token. Create it with New.
type Client struct {
	base      *url.URL
	token     string
	hc        *http.Client
	userAgent string
	account   accountCache // the token's account id, for the /api/accounts/{id} routes
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc (default: a client with a 30 s timeout;
// the change stream never times out).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the tokend at baseURL (such as
// "http://127.0.0.1:8080") that authenticates with token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tokend URL %q: want http://host:port or https://host", baseURL)
	}
	c := &Client{base: u, token: token, hc: &http.Client{Timeout: 30 * time.Second}, userAgent: "tokend-go-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is an answer outside 2xx.
type Error struct {
	Status int // the HTTP status
	// Code is tokend's code where the body has one (invalid_api_key,
	// missing_api_key, expired_api_key, rate_limited, auth_throttled, ...),
	// otherwise one named for the status: forbidden, not_found, invalid,
	// too_large, unavailable, internal, or http_<status>.
	Code    string
	Message string
	// Fields holds a 422's messages by field.
	Fields map[string][]string
	// RetryAfter is the Retry-After of a 429 or 503 (0 when absent).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if len(e.Fields) > 0 {
		var parts []string
		for f, ms := range e.Fields {
			parts = append(parts, f+": "+strings.Join(ms, ", "))
		}
		sort.Strings(parts) // the same error reads the same every time
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return fmt.Sprintf("tokend: %d %s: %s", e.Status, e.Code, msg)
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404 from tokend.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// do sends one request with in as its JSON body (none when nil) and decodes a
// 2xx body into out (skipped when nil). query may be nil.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	_, err := c.doHeader(ctx, method, path, query, nil, in, out)
	return err
}

// doHeader is do with header added to the request's headers (nil: none),
// returning the headers of a 2xx answer.
func (c *Client) doHeader(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) (http.Header, error) {
	res, err := c.send(ctx, c.hc, method, path, query, header, in)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return nil, readError(res)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxErrorBody))
		return res.Header, nil
	}
	if w, ok := out.(io.Writer); ok {
		if _, err := io.Copy(w, res.Body); err != nil {
			return nil, fmt.Errorf("tokend: %s %s: read body: %w", method, path, err)
		}
		return res.Header, nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("tokend: %s %s: decode answer: %w", method, path, err)
	}
	return res.Header, nil
}

// send builds and sends a request, with header added to its headers (nil:
// none); the caller closes the body.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, query url.Values, header http.Header, in any) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimRight(c.base.Path, "/") + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("tokend: %s %s: encode body: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("tokend: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tokend: %s %s: %w", method, path, err)
	}
	return res, nil
}

// readError turns an answer outside 2xx into an *Error. tokend's bodies come
// in a few shapes: {"error", "status", "code"}, {"errors": "message"},
// {"errors": {"field": [...]}}, and the sending API's
// {"success": false, "errors": ["..."]}.
func readError(res *http.Response) error {
	e := &Error{Status: res.StatusCode}
	if s := res.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	var body struct {
		Error  any             `json:"error"`
		Errors json.RawMessage `json:"errors"`
		Code   string          `json:"code"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.Code = body.Code
		if s, ok := body.Error.(string); ok {
			e.Message = s
		}
		var msg string
		var list []string
		var fields map[string][]string
		switch {
		case len(body.Errors) == 0:
		case json.Unmarshal(body.Errors, &msg) == nil:
			e.Message = msg
		case json.Unmarshal(body.Errors, &list) == nil:
			e.Message = strings.Join(list, "; ")
		case json.Unmarshal(body.Errors, &fields) == nil:
			e.Fields = fields
			if e.Message == "" {
				e.Message = "Validation failed"
			}
		}
	}
	if e.Code == "" {
		e.Code = statusCode(res.StatusCode)
	}
	return e
}

func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusUnprocessableEntity:
		return "invalid"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusInternalServerError:
		return "internal"
	}
	return "http_" + strconv.Itoa(status)
}
