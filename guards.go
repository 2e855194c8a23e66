package tokend

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Guards are the conditions a token sets on its own use, checked on every
// request by every verifier: tokend's own (Verifier, for the API, sending
// and the verify API) and the middleware's and gateway's in front of a
// remote tokend, which build them from tokend's answer. A new condition on
// a token is added here, to the facts and to the checks, and every way in
// enforces it.
//
// They are checked in a fixed order: expiry and the address (Admit, from
// memory), then the token's own rate limit and quota, then the account's
// plan limit (the Verifier's charge).
type Guards struct {
	// ExpiresAt is when the token stops working; nil for never.
	ExpiresAt *time.Time
	// AllowedIPs are the networks the token may be used from; empty for
	// any. A single address is a /32 (or /128) prefix.
	AllowedIPs []netip.Prefix
	// RateLimit is the token's own limit, below its account's plan; nil
	// for none.
	RateLimit *Rate
	// Quota is the token's budget per day or month; nil for none.
	Quota *Quota
}

// Guards returns t's guards.
func (t *Token) Guards() Guards {
	return Guards{ExpiresAt: t.ExpiresAt, AllowedIPs: t.AllowedIPs, RateLimit: t.RateLimit, Quota: t.Quota}
}

// Errors of the guards. Each adapter maps them by Code and Reason.
var (
	// ErrExpiredToken refuses a token past its expiry.
	ErrExpiredToken = errExpiredToken
	// ErrIPNotAllowed refuses a token used from outside its allowed_ips.
	// It counts as a failed authentication of the client address.
	ErrIPNotAllowed = &Error{Code: EFORBIDDEN, Message: "This token may not be used from your IP address", Reason: ReasonIPNotAllowed}
)

// Reasons of the guards' refusals, as the API's error bodies name them.
const (
	ReasonIPNotAllowed     = "ip_not_allowed"
	ReasonTokenRateLimited = "token_rate_limited"
	ReasonQuotaExceeded    = "quota_exceeded"
)

// Admit returns nil when a request at now from client (an IP address, as
// the adapter determined it) may use the token, and otherwise the refusal:
// ErrExpiredToken (EUNAUTHORIZED, reason expired_api_key) once it has
// expired, ErrIPNotAllowed when client is outside its AllowedIPs (or is not
// an address at all).
func (g Guards) Admit(now time.Time, client string) error {
	if g.ExpiresAt != nil && !now.Before(*g.ExpiresAt) {
		return errExpiredToken
	}
	if len(g.AllowedIPs) > 0 && !g.AllowsIP(client) {
		return ErrIPNotAllowed
	}
	return nil
}

// AllowsIP reports whether client is within the allowed networks (any
// address when there are none). An IPv4 address written in IPv6 form
// (::ffff:10.0.0.1) is the IPv4 address; a zone (%eth0) is ignored.
func (g Guards) AllowsIP(client string) bool {
	if len(g.AllowedIPs) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(client)
	if err != nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range g.AllowedIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Bounds of the guards a token may set.
const (
	MaxAllowedIPs       = 100
	MaxRatePeriod       = 24 * time.Hour
	MaxRateLimit        = 1_000_000_000
	MaxQuotaLimit int64 = 1 << 50
)

// ParseAllowedIP reads one entry of allowed_ips: an IPv4 or IPv6 address,
// or a network in CIDR notation (10.0.0.0/8, 2001:db8::/32). Host bits set
// in a network are an error, since they usually mean a typo.
func ParseAllowedIP(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR network", s)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR network", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set: the network is %s", s, p.Masked())
		}
		return p, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR network", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// FormatAllowedIP writes p as ParseAllowedIP reads it: a single address
// without its prefix length.
func FormatAllowedIP(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ParseRate reads a rate limit written as "<limit>/<period>", such as
// "100/1m" or "5000/24h": the form of the CLI's --rate-limit.
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	limit, err := strconv.Atoi(n)
	if !ok || err != nil || limit <= 0 {
		return Rate{}, fmt.Errorf("rate limit %q: want <requests>/<period>, such as 100/1m or 5000/24h", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil {
		return Rate{}, fmt.Errorf("rate limit %q: period %q is not a duration such as 10s, 1m or 24h", s, per)
	}
	if d < time.Second || d > MaxRatePeriod || d%time.Second != 0 {
		return Rate{}, fmt.Errorf("rate limit %q: the period must be whole seconds from 1s to 24h", s)
	}
	return Rate{Limit: limit, Per: d}, nil
}

// ParseQuota reads a quota written as "<limit>/<day|month>[/<requests|emails>]",
// such as "1000/day" or "50000/month/emails": the form of the CLI's --quota.
// The unit defaults to requests.
func ParseQuota(s string) (Quota, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	bad := fmt.Errorf("quota %q: want <limit>/day or <limit>/month, then optionally /requests or /emails, such as 1000/day or 50000/month/emails", s)
	if len(parts) < 2 || len(parts) > 3 {
		return Quota{}, bad
	}
	limit, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || limit <= 0 {
		return Quota{}, bad
	}
	q := Quota{Limit: limit, Period: QuotaPeriod(parts[1]), Unit: QuotaRequests}
	if len(parts) == 3 {
		q.Unit = QuotaUnit(parts[2])
	}
	if q.Period != QuotaDay && q.Period != QuotaMonth || q.Unit != QuotaRequests && q.Unit != QuotaEmails {
		return Quota{}, bad
	}
	return q, nil
}

// QuotaPeriod is how often a quota refills: at the start of each UTC day
// or month.
type QuotaPeriod string

// Quota periods.
const (
	QuotaDay   QuotaPeriod = "day"
	QuotaMonth QuotaPeriod = "month"
)

// QuotaUnit is what a quota counts.
type QuotaUnit string

// Quota units: every authenticated request, or every message sent (each
// recipient of an email, as the message allowance counts them).
const (
	QuotaRequests QuotaUnit = "requests"
	QuotaEmails   QuotaUnit = "emails"
)

// Quota is a budget of Limit units per period that refills at the period's
// start (UTC). It never goes below zero, across every instance: each unit
// is spent in the store.
type Quota struct {
	Limit  int64
	Period QuotaPeriod
	Unit   QuotaUnit
}

// Window returns the period containing now: its start and the next one's.
func (q Quota) Window(now time.Time) (start, end time.Time) {
	now = now.UTC()
	y, m, d := now.Date()
	if q.Period == QuotaMonth {
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 0, 1)
}

// QuotaState is a quota as of a moment: how much of it is left in the
// current period and when it refills.
type QuotaState struct {
	Quota
	Remaining int64
	ResetsAt  time.Time
}

// QuotaUsage is what a token spent of its quota in the period that started
// at Start.
type QuotaUsage struct {
	Start time.Time
	Used  int64
}

// StateAt returns q's state at now, given what was spent (nil: nothing).
func (q Quota) StateAt(now time.Time, used *QuotaUsage) QuotaState {
	start, end := q.Window(now)
	s := QuotaState{Quota: q, Remaining: q.Limit, ResetsAt: end}
	if used != nil && used.Start.Equal(start) {
		s.Remaining = max(q.Limit-used.Used, 0)
	}
	return s
}

// validateGuards checks the guards a caller asks to set.
func validateGuards(fe *FieldErrors, g GuardsInput) {
	if g.AllowedIPs != nil {
		if len(*g.AllowedIPs) > MaxAllowedIPs {
			fe.Add("allowed_ips", fmt.Sprintf("may list at most %d addresses or networks", MaxAllowedIPs))
		}
		for _, p := range *g.AllowedIPs {
			if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				fe.Add("allowed_ips", fmt.Sprintf("%s is not a network in canonical form (such as 10.0.0.0/8)", p))
				break
			}
		}
	}
	if r := g.RateLimit; r != nil && *r != nil {
		rl := *r
		if rl.Limit <= 0 || rl.Limit > MaxRateLimit {
			fe.Add("rate_limit", fmt.Sprintf("limit must be an integer from 1 to %d", MaxRateLimit))
		}
		if rl.Per < time.Second || rl.Per > MaxRatePeriod || rl.Per%time.Second != 0 {
			fe.Add("rate_limit", fmt.Sprintf("period_seconds must be an integer from 1 to %d", int(MaxRatePeriod/time.Second)))
		}
	}
	if q := g.Quota; q != nil && *q != nil {
		qq := *q
		if qq.Limit <= 0 || qq.Limit > MaxQuotaLimit {
			fe.Add("quota", fmt.Sprintf("limit must be an integer from 1 to %d", MaxQuotaLimit))
		}
		if qq.Period != QuotaDay && qq.Period != QuotaMonth {
			fe.Add("quota", "period must be day or month")
		}
		if qq.Unit != QuotaRequests && qq.Unit != QuotaEmails {
			fe.Add("quota", "unit must be requests or emails")
		}
	}
}

// GuardsInput is what a caller asks to change of a token's guards: each
// field left nil stays as it is; a field pointing at nil (or at an empty
// list) removes the guard.
type GuardsInput struct {
	AllowedIPs *[]netip.Prefix
	RateLimit  **Rate
	Quota      **Quota
}

// set reports whether in changes anything.
func (in GuardsInput) set() bool {
	return in.AllowedIPs != nil || in.RateLimit != nil || in.Quota != nil
}

// apply changes t's guards as in says, and returns the audit details of
// what changed.
func (in GuardsInput) apply(t *Token, details map[string]any) {
	if in.AllowedIPs != nil {
		ips := *in.AllowedIPs
		if len(ips) == 0 {
			ips = nil
		}
		details["allowed_ips"] = map[string]any{"from": ipStrings(t.AllowedIPs), "to": ipStrings(ips)}
		t.AllowedIPs = ips
	}
	if in.RateLimit != nil {
		details["rate_limit"] = map[string]any{"from": rateDetails(t.RateLimit), "to": rateDetails(*in.RateLimit)}
		t.RateLimit = *in.RateLimit
	}
	if in.Quota != nil {
		details["quota"] = map[string]any{"from": quotaDetails(t.Quota), "to": quotaDetails(*in.Quota)}
		t.Quota = *in.Quota
	}
}

func ipStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = FormatAllowedIP(p)
	}
	return out
}

func rateDetails(r *Rate) any {
	if r == nil {
		return nil
	}
	return map[string]any{"limit": r.Limit, "period_seconds": int(r.Per / time.Second)}
}

func quotaDetails(q *Quota) any {
	if q == nil {
		return nil
	}
	return map[string]any{"limit": q.Limit, "period": string(q.Period), "unit": string(q.Unit)}
}
