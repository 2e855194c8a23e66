package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Access levels a permission grants.
const (
	Viewer = 10
	Admin  = 100
)

// Permission is a level on one resource: resource_type account, project,
// sandbox (alias inbox) or domain (alias sending_domain).
type Permission struct {
	ResourceType string `json:"resource_type"`
	ResourceID   int64  `json:"resource_id"`
	AccessLevel  int    `json:"access_level"`
}

// String renders p as ParsePermission reads it, such as "project:3:viewer".
func (p Permission) String() string {
	level := strconv.Itoa(p.AccessLevel)
	switch p.AccessLevel {
	case Viewer:
		level = "viewer"
	case Admin:
		level = "admin"
	}
	return p.ResourceType + ":" + strconv.FormatInt(p.ResourceID, 10) + ":" + level
}

// ParsePermission reads "<resource_type>:<resource_id>:<level>", such as
// "project:3:viewer" or "account:1:100"; levels are viewer, admin, 10, 100.
func ParsePermission(s string) (Permission, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return Permission{}, fmt.Errorf("permission %q: want <resource_type>:<resource_id>:<level>, such as project:3:viewer", s)
	}
	switch parts[0] {
	case "account", "project", "sandbox", "domain":
	case "inbox":
		parts[0] = "sandbox"
	case "sending_domain":
		parts[0] = "domain"
	default:
		return Permission{}, fmt.Errorf("permission %q: resource type %q is not one of account, project, sandbox, domain", s, parts[0])
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || id <= 0 {
		return Permission{}, fmt.Errorf("permission %q: resource id %q is not a positive integer", s, parts[1])
	}
	var level int
	switch parts[2] {
	case "viewer", "10":
		level = Viewer
	case "admin", "100":
		level = Admin
	default:
		return Permission{}, fmt.Errorf("permission %q: level %q is not viewer, admin, 10 or 100", s, parts[2])
	}
	return Permission{ResourceType: parts[0], ResourceID: id, AccessLevel: level}, nil
}

// MustPermission is ParsePermission for permissions written in code; it
// panics on a malformed one.
func MustPermission(s string) Permission {
	p, err := ParsePermission(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Verification codes.
const (
	CodeValid                   = "VALID"
	CodeNotFound                = "NOT_FOUND"
	CodeExpired                 = "EXPIRED"
	CodeRateLimited             = "RATE_LIMITED"
	CodeInsufficientPermissions = "INSUFFICIENT_PERMISSIONS"
	CodeIPNotAllowed            = "IP_NOT_ALLOWED" // the token may not be used from the address given
	CodeUsageExceeded           = "USAGE_EXCEEDED" // the token's quota is used up
)

// Verification is tokend's answer about a token a service was handed. The
// fields after Code are set only when the token belongs to the caller's
// account (TokenID is then non-zero).
type Verification struct {
	Valid bool   `json:"valid"`
	Code  string `json:"code"`
	// Reason names the rule behind RATE_LIMITED, USAGE_EXCEEDED and
	// IP_NOT_ALLOWED: token_rate_limited or rate_limited (the token's own
	// limit or its plan's), quota_exceeded, ip_not_allowed.
	Reason      string       `json:"reason,omitempty"`
	TokenID     int64        `json:"token_id"`
	Name        string       `json:"name"`
	AccountID   int64        `json:"account_id"`
	Environment string       `json:"environment"`
	ExpiresAt   *time.Time   `json:"expires_at"`
	Permissions []Permission `json:"permissions"`
	// RateLimit is the tighter of the token's own limit and its plan's,
	// after this verification.
	RateLimit *RateLimit `json:"ratelimit"`
	// The token's guards: AllowedIPs (empty: any address), its own rate
	// limit and its quota (Remaining set when this verification spent it).
	AllowedIPs     []string        `json:"allowed_ips"`
	TokenRateLimit *TokenRateLimit `json:"rate_limit"`
	Quota          *Quota          `json:"quota"`
}

// RateLimit is the verified token's plan limit after the verification.
type RateLimit struct {
	Limit     int `json:"limit"`     // requests per minute
	Remaining int `json:"remaining"` // left now
	Reset     int `json:"reset"`     // seconds until whole again
}

// Verify asks tokend about token, a credential this service was handed,
// and whether it holds every permission in required. The client's own token
// must be of the same account with at least viewer on it. Any outcome is a
// Verification; an error means the question could not be answered (the
// client's own token refused, its limit spent, tokend unreachable).
func (c *Client) Verify(ctx context.Context, token string, required ...Permission) (*Verification, error) {
	return c.VerifyFrom(ctx, token, "", required...)
}

// VerifyFrom is Verify for a token presented from the IP address ip,
// checked against the token's allowed_ips: IP_NOT_ALLOWED outside them. A
// token that has allowed_ips is IP_NOT_ALLOWED when ip is empty too.
func (c *Client) VerifyFrom(ctx context.Context, token, ip string, required ...Permission) (*Verification, error) {
	in := struct {
		Token       string       `json:"token"`
		Permissions []Permission `json:"permissions,omitempty"`
		IP          string       `json:"ip,omitempty"`
	}{token, required, ip}
	var out Verification
	if err := c.do(ctx, http.MethodPost, "/api/verify", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuthEvent is one event of the change stream.
type AuthEvent struct {
	// Kind is "ready" (first: forget everything cached before it), "token"
	// (TokenID changed), "account" (every token of AccountID changed) or
	// "flush" (forget everything).
	Kind      string
	TokenID   int64
	AccountID int64
}

// Change stream event kinds.
const (
	EventReady   = "ready"
	EventToken   = "token"
	EventAccount = "account"
	EventFlush   = "flush"
)

// AuthChangeStream is an open GET /api/auth_changes. Read it from one goroutine.
type AuthChangeStream struct {
	body   io.ReadCloser
	lines  chan string
	err    error // set before lines is closed
	idle   time.Duration
	closed chan struct{}
}

// StreamIdleTimeout is how long a change stream may be silent (tokend sends
// a comment every 15 s) before Next calls it lost.
const StreamIdleTimeout = 40 * time.Second

// AuthChanges opens the account's change stream. It returns once tokend has
// accepted it; read events with Next and end it with Close (or ctx).
func (c *Client) AuthChanges(ctx context.Context) (*AuthChangeStream, error) {
	hc := *c.hc
	hc.Timeout = 0 // the stream is meant to last
	res, err := c.send(ctx, &hc, http.MethodGet, "/api/auth_changes", nil, nil, nil)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		return nil, readError(res)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		res.Body.Close()
		return nil, fmt.Errorf("tokend: GET /api/auth_changes: answered %q, not an event stream", ct)
	}
	s := &AuthChangeStream{body: res.Body, lines: make(chan string, 64), closed: make(chan struct{}), idle: StreamIdleTimeout}
	go s.read()
	return s, nil
}

// maxEventLine bounds one line of the stream.
const maxEventLine = 64 << 10

func (s *AuthChangeStream) read() {
	defer close(s.lines)
	sc := bufio.NewScanner(s.body)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	for sc.Scan() {
		select {
		case s.lines <- sc.Text():
		case <-s.closed:
			s.err = errStreamClosed
			return
		}
	}
	s.err = sc.Err()
	if s.err == nil {
		s.err = io.EOF
	}
}

// errStreamClosed is what Next returns once Close has ended the stream.
var errStreamClosed = errors.New("tokend: change stream closed")

// ErrStreamIdle is returned by Next when the stream has been silent too long.
var ErrStreamIdle = errors.New("tokend: change stream silent for too long")

// Next returns the next event. An error means the stream is over (io.EOF
// when tokend ended it): whatever was learned from it may be stale, and a
// new stream starts again from ready.
func (s *AuthChangeStream) Next() (AuthEvent, error) {
	timer := time.NewTimer(s.idle)
	defer timer.Stop()
	var kind, data string
	for {
		select {
		case <-timer.C:
			return AuthEvent{}, ErrStreamIdle
		case line, ok := <-s.lines:
			if !ok {
				return AuthEvent{}, s.err
			}
			timer.Reset(s.idle)
			switch {
			case line == "": // the end of an event
				if kind == "" {
					data = ""
					continue
				}
				return parseEvent(kind, data)
			case strings.HasPrefix(line, ":"): // a comment: tokend's heartbeat
			case strings.HasPrefix(line, "event:"):
				kind = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				if data != "" {
					data += "\n"
				}
				data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
	}
}

func parseEvent(kind, data string) (AuthEvent, error) {
	var d struct {
		TokenID   int64 `json:"token_id"`
		AccountID int64 `json:"account_id"`
	}
	if data != "" {
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return AuthEvent{}, fmt.Errorf("tokend: change stream: event %q: %w", kind, err)
		}
	}
	return AuthEvent{Kind: kind, TokenID: d.TokenID, AccountID: d.AccountID}, nil
}

// Close ends the stream.
func (s *AuthChangeStream) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return s.body.Close()
}
