package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Token is an API token as tokend lists it. Its value is never shown again
// after the answer that issued it (see IssuedToken).
type Token struct {
	ID          int64        `json:"id"`
	Name        string       `json:"name"`
	Last4       string       `json:"last_4_digits"` // the value's last four characters
	CreatedBy   string       `json:"created_by"`    // the name of the token that created it
	ExpiresAt   *time.Time   `json:"expires_at"`    // nil: never expires
	Permissions []Permission `json:"resources"`
	Environment string       `json:"environment"` // EnvironmentLive or EnvironmentTest
	CreatedAt   time.Time    `json:"created_at"`
	// LastUsedAt is when the token last authenticated a request (updated in
	// batches, so it may lag; nil if never).
	LastUsedAt *time.Time `json:"last_used_at"`
	// The token's guards: the addresses and networks it may be used from
	// (empty: any), its own rate limit and its quota (nil: none).
	AllowedIPs []string        `json:"allowed_ips"`
	RateLimit  *TokenRateLimit `json:"rate_limit"`
	Quota      *Quota          `json:"quota"`
}

// TokenRateLimit is a token's own rate limit: at most Limit requests per
// PeriodSeconds, below its account's plan limit.
type TokenRateLimit struct {
	Limit         int `json:"limit"`
	PeriodSeconds int `json:"period_seconds"`
}

// Quota periods and units.
const (
	QuotaDay      = "day"
	QuotaMonth    = "month"
	QuotaRequests = "requests"
	QuotaEmails   = "emails"
)

// Quota is a token's budget of Limit requests or emails (Unit) per day or
// month (Period, refilled at its start, UTC). In answers, Remaining and
// ResetsAt say what is left and when it refills; they are ignored in
// requests.
type Quota struct {
	Limit     int64      `json:"limit"`
	Period    string     `json:"period"`
	Unit      string     `json:"unit"`
	Remaining *int64     `json:"remaining,omitempty"`
	ResetsAt  *time.Time `json:"resets_at,omitempty"`
}

// IssuedToken is a token just created or reset, with its value: the only
// time tokend shows it. Keep Value secret; tokend stores only its hash.
type IssuedToken struct {
	Token
	Value string `json:"token"`
}

// Expiry is the expires_at of a token being created or reset. The zero
// Expiry leaves it to the server's default (serve --default-ttl; without
// one, never); NeverExpires and ExpiresAt choose explicitly.
type Expiry struct {
	set bool
	at  *time.Time // nil with set: never
}

// NeverExpires is an explicit "never" (expires_at null), whatever the
// server's default.
func NeverExpires() Expiry { return Expiry{set: true} }

// ExpiresAt makes the token expire at t, which must be in the future and at
// most five years away (tokend answers 422 otherwise).
func ExpiresAt(t time.Time) Expiry { return Expiry{set: true, at: &t} }

// IsZero reports whether e is the server's default.
func (e Expiry) IsZero() bool { return !e.set }

// Time returns the expiry time and true, or false for the default and for never.
func (e Expiry) Time() (time.Time, bool) {
	if e.at == nil {
		return time.Time{}, false
	}
	return *e.at, true
}

// MarshalJSON writes null for never and the time for ExpiresAt. The default
// has no JSON form: fields of type Expiry are tagged omitzero, so that it is
// left out.
func (e Expiry) MarshalJSON() ([]byte, error) {
	switch {
	case !e.set:
		return nil, errors.New("client: the default Expiry is written by leaving expires_at out (omitzero)")
	case e.at == nil:
		return []byte("null"), nil
	}
	return json.Marshal(e.at.Format(time.RFC3339Nano))
}

// NewToken is what CreateToken asks for.
type NewToken struct {
	Name string `json:"name"` // required, at most 255 characters
	// Permissions granted; the caller must be admin on each of them, and a
	// token with none may only be created by an account admin.
	Permissions []Permission `json:"resources"`
	// Environment is EnvironmentLive (the default when empty) or EnvironmentTest.
	Environment string `json:"environment,omitempty"`
	ExpiresAt   Expiry `json:"expires_at,omitzero"`
	// Guards, which only an account admin may set: the IP addresses and
	// CIDR networks the token may be used from, its own rate limit and
	// its quota.
	AllowedIPs []string        `json:"allowed_ips,omitempty"`
	RateLimit  *TokenRateLimit `json:"rate_limit,omitempty"`
	Quota      *Quota          `json:"quota,omitempty"`
}

// TokenUpdate is what UpdateToken changes: each field left nil stays as it is.
type TokenUpdate struct {
	Name *string `json:"name,omitempty"`
	// Permissions, when set, replaces all of the token's permissions (an
	// empty slice takes them all away).
	Permissions *[]Permission `json:"resources,omitempty"`
	// The guards (account admins only, never on the caller's own token):
	// AllowedIPs, when set, replaces the list (empty: any address);
	// RateLimit and Quota, when set, replace the token's, and
	// RemoveRateLimit and RemoveQuota take them away.
	AllowedIPs      *[]string       `json:"allowed_ips,omitempty"`
	RateLimit       *TokenRateLimit `json:"rate_limit,omitempty"`
	RemoveRateLimit bool            `json:"-"`
	Quota           *Quota          `json:"quota,omitempty"`
	RemoveQuota     bool            `json:"-"`
}

// MarshalJSON writes the update's body: a guard removed is null.
func (u TokenUpdate) MarshalJSON() ([]byte, error) {
	type plain TokenUpdate
	b, err := json.Marshal(plain(u))
	if err != nil || !u.RemoveRateLimit && !u.RemoveQuota {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if u.RemoveRateLimit {
		m["rate_limit"] = json.RawMessage("null")
	}
	if u.RemoveQuota {
		m["quota"] = json.RawMessage("null")
	}
	return json.Marshal(m)
}

// ListTokens returns the tokens of the account the caller can see: itself,
// every token for an account admin, otherwise those on all of whose
// resources the caller is admin. The same rule decides which tokens the
// caller may get, update, reset and delete.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var out []Token
	if err := c.do(ctx, http.MethodGet, "/api/api_tokens", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetToken returns one token; one the caller cannot see, or of another
// account, is a 404 (IsNotFound).
func (c *Client) GetToken(ctx context.Context, id int64) (*Token, error) {
	var out Token
	if err := c.do(ctx, http.MethodGet, "/api/api_tokens"+joinPath(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken issues a token in the caller's account. A caller not admin on
// every permission granted gets a 403; bad input (a blank name, a resource
// the account does not have, an expiry in the past) a 422 with Fields.
func (c *Client) CreateToken(ctx context.Context, in NewToken) (*IssuedToken, error) {
	if in.Permissions == nil {
		in.Permissions = []Permission{}
	}
	var out IssuedToken
	if err := c.do(ctx, http.MethodPost, "/api/api_tokens", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateToken renames a token or replaces its permissions, or both, and
// returns it as it now is. The change reaches every cache following the
// change stream.
func (c *Client) UpdateToken(ctx context.Context, id int64, in TokenUpdate) (*Token, error) {
	var out Token
	if err := c.do(ctx, http.MethodPatch, "/api/api_tokens"+joinPath(id), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteToken deletes a token: it stops authenticating at once. The last
// active token with admin on a sending domain cannot be deleted (403).
func (c *Client) DeleteToken(ctx context.Context, id int64) error {
	return c.do(ctx, http.MethodDelete, "/api/api_tokens"+joinPath(id), nil, nil, nil)
}

// ResetToken replaces a token with a new one (a new id and value, the same
// permissions and environment) expiring as expiry says. The old value keeps
// working for the server's reset grace period (or until its own earlier
// expiry). A token already reset, or expired, is a 422.
func (c *Client) ResetToken(ctx context.Context, id int64, expiry Expiry) (*IssuedToken, error) {
	in := struct {
		ExpiresAt Expiry `json:"expires_at,omitzero"`
	}{expiry}
	var out IssuedToken
	if err := c.do(ctx, http.MethodPost, "/api/api_tokens"+joinPath(id, "reset"), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Usage is a token's requests per UTC day, oldest first.
type Usage struct {
	TokenID    int64      `json:"token_id"`
	LastUsedAt *time.Time `json:"last_used_at"` // nil if never
	Days       []UsageDay `json:"days"`
}

// UsageDay counts the requests a token authenticated on one UTC day, by outcome.
type UsageDay struct {
	Date        time.Time `json:"date"`         // midnight UTC of the day
	Success     int64     `json:"success"`      // answers below 400
	ClientError int64     `json:"client_error"` // 4xx other than 429
	RateLimited int64     `json:"rate_limited"` // 429
	ServerError int64     `json:"server_error"` // 5xx
	Total       int64     `json:"total"`
}

// UnmarshalJSON reads the day as tokend writes it, "2006-01-02".
func (d *UsageDay) UnmarshalJSON(b []byte) error {
	type plain UsageDay
	var v struct {
		plain
		Date string `json:"date"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	day, err := time.Parse(time.DateOnly, v.Date)
	if err != nil {
		return err
	}
	*d = UsageDay(v.plain)
	d.Date = day
	return nil
}

// TokenUsage returns a token's usage. Counts are flushed in batches, so the
// latest requests may not show yet.
func (c *Client) TokenUsage(ctx context.Context, id int64) (*Usage, error) {
	var out Usage
	if err := c.do(ctx, http.MethodGet, "/api/api_tokens"+joinPath(id, "usage"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UnusedTokens returns the tokens the caller can see that made no request
// in the last days days (0: tokend's default, 90): used last before then,
// or never used and created before then. The caller itself is never among
// them.
func (c *Client) UnusedTokens(ctx context.Context, days int) ([]Token, error) {
	var query url.Values
	if days > 0 {
		query = url.Values{"days": {strconv.Itoa(days)}}
	}
	var out []Token
	if err := c.do(ctx, http.MethodGet, "/api/api_tokens/unused", query, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
