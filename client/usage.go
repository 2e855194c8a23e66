package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Outcomes of requests, as usage counts them.
const (
	OutcomeSuccess     = "success"
	OutcomeClientError = "client_error"
	OutcomeRateLimited = "rate_limited"
	OutcomeServerError = "server_error"
)

// UsageReport is one token's part of a usage report: the token, named by
// the SHA-256 of its value in hexadecimal (TokenSHA256), the requests of
// the token a service admitted or refused on its own since its last report,
// by outcome (OutcomeSuccess, ...), and how many more it asks to admit on
// its own (Want, 0 for none).
type UsageReport struct {
	TokenSHA256 string           `json:"token_sha256"`
	Requests    map[string]int64 `json:"requests,omitempty"`
	Want        int              `json:"want,omitempty"`
}

// TokenSHA256 is the name of a token in a usage report: the SHA-256 of its
// value, in hexadecimal.
func TokenSHA256(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Lease is tokend's answer to one token's part of a usage report: Code is
// VALID with Granted requests the service may admit on its own (fewer than
// it asked when a limit had no more), RATE_LIMITED or USAGE_EXCEEDED with
// Reason and RetryAfter, NOT_FOUND or EXPIRED. TokenID is the token's id
// (0 with NOT_FOUND).
type Lease struct {
	TokenID      int64      `json:"token_id,omitempty"`
	Code         string     `json:"code"`
	Reason       string     `json:"reason,omitempty"`
	Granted      int        `json:"granted"`
	RetryAfterMS int64      `json:"retry_after_ms,omitempty"`
	RateLimit    *RateLimit `json:"ratelimit,omitempty"`
	Quota        *Quota     `json:"quota,omitempty"`
}

// RetryAfter is how long until one more request would be granted.
func (l *Lease) RetryAfter() time.Duration { return time.Duration(l.RetryAfterMS) * time.Millisecond }

// ReportUsage sends a usage report (POST /api/usage_reports) and returns
// one lease per token, in the report's order. The client's own token must
// be of the same account with at least viewer on it.
func (c *Client) ReportUsage(ctx context.Context, reports []UsageReport) ([]Lease, error) {
	in := struct {
		Reports []UsageReport `json:"reports"`
	}{reports}
	if in.Reports == nil {
		in.Reports = []UsageReport{}
	}
	var out struct {
		Leases []Lease `json:"leases"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/usage_reports", nil, in, &out); err != nil {
		return nil, err
	}
	return out.Leases, nil
}
