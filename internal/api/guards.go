package api

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/tokend/tokend"
)

// A token's guards on the wire, beside the contract's fields (Mailtrap's
// clients ignore them): "allowed_ips" (a list, empty for any address),
// "rate_limit" ({"limit", "period_seconds"} or null) and "quota" ({"limit",
// "period", "unit"} or null; answers add "remaining" and "resets_at").

type rateLimitJSON struct {
	Limit         int   `json:"limit"`
	PeriodSeconds int64 `json:"period_seconds"`
}

type quotaJSON struct {
	Limit     int64              `json:"limit"`
	Period    tokend.QuotaPeriod `json:"period"`
	Unit      tokend.QuotaUnit   `json:"unit"`
	Remaining *int64             `json:"remaining,omitempty"`
	ResetsAt  *time.Time         `json:"resets_at,omitempty"`
}

// guardsJSON are the guard fields of a token answer.
type guardsJSON struct {
	AllowedIPs []string       `json:"allowed_ips"`
	RateLimit  *rateLimitJSON `json:"rate_limit"`
	Quota      *quotaJSON     `json:"quota"`
}

// toGuardsJSON is t's guards, with its quota as of now.
func toGuardsJSON(t *tokend.Token, now time.Time) guardsJSON {
	g := guardsJSON{AllowedIPs: make([]string, len(t.AllowedIPs))}
	for i, p := range t.AllowedIPs {
		g.AllowedIPs[i] = tokend.FormatAllowedIP(p)
	}
	if r := t.RateLimit; r != nil {
		g.RateLimit = &rateLimitJSON{Limit: r.Limit, PeriodSeconds: int64(r.Per / time.Second)}
	}
	if q := tokend.QuotaOf(t, now); q != nil {
		g.Quota = quotaStateJSON(q)
	}
	return g
}

func quotaStateJSON(q *tokend.QuotaState) *quotaJSON {
	resets := q.ResetsAt
	remaining := q.Remaining
	return &quotaJSON{Limit: q.Limit, Period: q.Period, Unit: q.Unit, Remaining: &remaining, ResetsAt: &resets}
}

// guardsInput are the guard fields of a create or update body: each one
// absent is left as it is, null (or an empty list) removes the guard.
type guardsInput struct {
	AllowedIPs allowedIPsInput `json:"allowed_ips"`
	RateLimit  rateLimitInput  `json:"rate_limit"`
	Quota      quotaInput      `json:"quota"`
}

func (g *guardsInput) domain() tokend.GuardsInput {
	var in tokend.GuardsInput
	if g.AllowedIPs.set {
		in.AllowedIPs = &g.AllowedIPs.ips
	}
	if g.RateLimit.set {
		in.RateLimit = &g.RateLimit.rate
	}
	if g.Quota.set {
		in.Quota = &g.Quota.quota
	}
	return in
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

type allowedIPsInput struct {
	set bool
	ips []netip.Prefix
}

func (a *allowedIPsInput) UnmarshalJSON(b []byte) error {
	a.set, a.ips = true, nil
	if isNull(b) {
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return tokend.Invalid("allowed_ips", "must be a list of IP addresses and CIDR networks, such as [\"203.0.113.7\", \"10.0.0.0/8\", \"2001:db8::/32\"]")
	}
	if len(list) > tokend.MaxAllowedIPs {
		return tokend.Invalid("allowed_ips", "may list at most 100 addresses or networks")
	}
	var fe tokend.FieldErrors
	for _, s := range list {
		p, err := tokend.ParseAllowedIP(s)
		if err != nil {
			fe.Add("allowed_ips", err.Error())
			continue
		}
		a.ips = append(a.ips, p)
	}
	if a.ips == nil {
		a.ips = []netip.Prefix{}
	}
	return fe.Err()
}

type rateLimitInput struct {
	set  bool
	rate *tokend.Rate
}

func (r *rateLimitInput) UnmarshalJSON(b []byte) error {
	r.set, r.rate = true, nil
	if isNull(b) {
		return nil
	}
	var in struct {
		Limit         *int   `json:"limit"`
		PeriodSeconds *int64 `json:"period_seconds"`
	}
	if err := json.Unmarshal(b, &in); err != nil || in.Limit == nil || in.PeriodSeconds == nil {
		return tokend.Invalid("rate_limit", `must be {"limit": <requests>, "period_seconds": <seconds>} or null`)
	}
	per := time.Duration(min(max(*in.PeriodSeconds, -1), int64(tokend.MaxRatePeriod/time.Second)+1)) * time.Second
	r.rate = &tokend.Rate{Limit: *in.Limit, Per: per}
	return nil
}

type quotaInput struct {
	set   bool
	quota *tokend.Quota
}

func (q *quotaInput) UnmarshalJSON(b []byte) error {
	q.set, q.quota = true, nil
	if isNull(b) {
		return nil
	}
	var in struct {
		Limit  *int64  `json:"limit"`
		Period *string `json:"period"`
		Unit   *string `json:"unit"`
	}
	if err := json.Unmarshal(b, &in); err != nil || in.Limit == nil || in.Period == nil {
		return tokend.Invalid("quota", `must be {"limit": <units>, "period": "day" or "month", "unit": "requests" or "emails"} or null`)
	}
	unit := tokend.QuotaRequests
	if in.Unit != nil {
		unit = tokend.QuotaUnit(*in.Unit)
	}
	q.quota = &tokend.Quota{Limit: *in.Limit, Period: tokend.QuotaPeriod(*in.Period), Unit: unit}
	return nil
}
