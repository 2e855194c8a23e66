package tokend

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Services that check tokend's tokens in their own process (the Go
// middleware, the gateway) admit most requests without asking tokend. So
// that every request they admit still counts, in the token's usage and
// against its limits, as if tokend had served it, they report usage and
// lease budgets: each report gives the requests a service admitted or
// refused on its own since its last report, by outcome, and asks for a
// lease of more requests it may admit on its own. A lease is spent in
// tokend's limits when it is granted (the token's own rate limit, its quota
// of requests and its account's plan limit, shared by every tokend
// instance), so however many services admit requests of one token, they
// admit together no more than one tokend would. What a lease costs in
// accuracy is the other way: requests leased to a service that then sees
// no more of them are spent though nobody made them, at most what that
// service asked for ahead of its demand.
//
// A report names each token by the SHA-256 of its value, which only a
// service that was handed the token knows (tokend never shows it): a
// service token cannot spend the limits of the account's tokens it never
// saw, though it can list their ids.

// UsageReport is one token's part of a usage report.
type UsageReport struct {
	TokenHash [32]byte // the SHA-256 of the token's value
	// Requests counts, by outcome, the requests of the token the service
	// admitted (success) or refused (rate_limited, client_error) on its own
	// since its last report. They go to the token's usage.
	Requests map[Outcome]int64
	// Want is how many more requests the service would admit on its own:
	// the lease it asks for (0: none).
	Want int
}

// Lease is the answer to one token's part of a usage report.
type Lease struct {
	// TokenID is the token's id when it is one of the caller's account's
	// (0 with NOT_FOUND).
	TokenID int64
	// Code is VALID when the token may make requests: Granted of them are
	// leased, fewer than asked for when a limit had no more (asking again
	// then says which and until when). RATE_LIMITED and USAGE_EXCEEDED
	// grant none, with Reason and RetryAfter saying which limit and for how
	// long; NOT_FOUND (not a token of the caller's account, or deleted) and
	// EXPIRED grant none either.
	Code       VerifyCode
	Reason     string
	Granted    int
	RetryAfter time.Duration
	// Limit is the token's plan limit after the grant (LimitSet when it was
	// charged), or its own rate limit when that refused it; Quota its quota
	// of requests after it (nil when it has none or none was asked for).
	Limit    LimitDecision
	LimitSet bool
	Quota    *QuotaState
}

// Bounds of a usage report.
const (
	// MaxUsageReports is how many tokens one report may name.
	MaxUsageReports = 1000
	// MaxLease is the most requests of one token a report may ask for.
	MaxLease = 1_000_000
	// MaxReportedRequests bounds each count of a report.
	MaxReportedRequests = 1_000_000
)

// reportedOutcomes are the outcomes a service may report.
var reportedOutcomes = map[Outcome]bool{OutcomeSuccess: true, OutcomeClientError: true, OutcomeRateLimited: true, OutcomeServerError: true}

// UsageLeases is the answer to a usage report: one Lease per token, in the
// report's order, and what the report spent of the caller's allowance of
// verifications that find no valid token (MissesSet when it spent some).
type UsageLeases struct {
	Leases    []Lease
	Misses    LimitDecision
	MissesSet bool
}

// ReportUsage records what a service admitted and refused on its own for
// tokens of its account and leases it more, as the comment at the top of
// this file describes. caller is the service's own token, with at least
// viewer on its account (EFORBIDDEN otherwise). A token of another account,
// or none, is NOT_FOUND, its counts are dropped, and it spends one request
// of the caller's allowance of verifications that find no valid token, as
// POST /api/verify does; once that allowance is spent the report is
// ErrRateLimited and nothing of it counts. A report that breaks the bounds
// above, names a token twice or an unknown outcome is EINVALID, and one the
// limits or the store fail, an error of theirs: nothing of either counts,
// and nothing is leased.
func (v *Verifier) ReportUsage(ctx context.Context, caller *Token, reports []UsageReport) (UsageLeases, error) {
	var out UsageLeases
	if err := MayVerify(caller); err != nil {
		return out, err
	}
	if err := validateReports(reports); err != nil {
		return out, err
	}
	// Each miss is charged as it is found, so that a report of made-up
	// tokens stops costing lookups once the allowance is spent.
	tokens := make([]*Token, len(reports))
	for i := range reports {
		t, _, err := v.svc.lookup(ctx, &reports[i].TokenHash)
		switch {
		case err != nil && err != errBadToken:
			return out, err
		case err != nil || t.AccountID != caller.AccountID:
			d := Decision{Token: caller}
			v.chargeKey(ctx, &d, true)
			out.Misses, out.MissesSet = d.Limit, d.LimitSet
			if d.Err != nil {
				return out, d.Err
			}
		default:
			tokens[i] = t
		}
	}
	now := v.opts.Now()
	out.Leases = make([]Lease, len(reports))
	for i, r := range reports {
		l := &out.Leases[i]
		*l = Lease{Code: CodeNotFound}
		t := tokens[i]
		if t == nil {
			continue
		}
		l.TokenID = t.ID
		if t.ExpiredAt(now) {
			l.Code = CodeExpired
			continue
		}
		l.Code = CodeValid
		if r.Want > 0 {
			granted, d := v.lease(ctx, t, r.Want)
			if d.Outcome == VerifyError {
				// The report fails and is sent again: what it was granted
				// so far goes back.
				for j := range i {
					if g := out.Leases[j].Granted; g > 0 {
						v.unlease(ctx, tokens[j], g)
					}
				}
				return UsageLeases{}, d.Err
			}
			l.Granted, l.Limit, l.LimitSet, l.Quota = granted, d.Limit, d.LimitSet, d.Quota
			if granted == 0 && d.Err != nil {
				l.Code, l.Reason, l.RetryAfter = CodeRateLimited, reason(d.Err), d.RetryAfter
				if l.Reason == ReasonQuotaExceeded {
					l.Code = CodeUsageExceeded
				}
			}
		}
	}
	// Counted once every lease is granted: a report that fails is sent
	// again, and must not count twice.
	for i, r := range reports {
		if t := tokens[i]; t != nil {
			for o, n := range r.Requests {
				if n > 0 {
					v.svc.usage.recordN(t.ID, o, n, now)
				}
			}
		}
	}
	return out, nil
}

func validateReports(reports []UsageReport) error {
	var fe FieldErrors
	if len(reports) > MaxUsageReports {
		fe.Add("reports", fmt.Sprintf("has too many tokens (maximum is %d a report)", MaxUsageReports))
		return &Error{Code: EINVALID, Message: "Validation failed", Fields: fe}
	}
	seen := make(map[[32]byte]bool, len(reports))
	for i, r := range reports {
		at := "reports[" + strconv.Itoa(i) + "]"
		if seen[r.TokenHash] {
			fe.Add(at+".token_sha256", "names a token already in this report")
		}
		seen[r.TokenHash] = true
		if r.Want < 0 || r.Want > MaxLease {
			fe.Add(at+".want", fmt.Sprintf("must be between 0 and %d", MaxLease))
		}
		for o, n := range r.Requests {
			if !reportedOutcomes[o] {
				fe.Add(at+".requests", fmt.Sprintf("%q is not an outcome: use success, client_error, rate_limited or server_error", o))
			} else if n < 0 || n > MaxReportedRequests {
				fe.Add(at+".requests."+string(o), fmt.Sprintf("must be between 0 and %d", MaxReportedRequests))
			}
		}
	}
	if fe != nil {
		return &Error{Code: EINVALID, Message: "Validation failed", Fields: fe}
	}
	return nil
}

// lease spends up to want requests of t's limits at once, in the order
// charge spends one: its own rate limit, its quota of requests, its plan
// limit. Each grants what it can; what a later one cannot grant is given
// back to the earlier ones, so that all three spend the same number, which
// lease returns. d records the plan limit after the grant, and, when fewer
// than want were granted, the refusal of the limit that bounded it; an
// error of the limits or the store is d.Err with Outcome VerifyError.
func (v *Verifier) lease(ctx context.Context, t *Token, want int) (int, Decision) {
	d := Decision{Token: t}
	n := want
	// The last limit that cuts the grant says why: when it grants none,
	// it is the one that refuses.
	bounded := func(err error, retry time.Duration) {
		d.Err, d.Outcome, d.RetryAfter = err, VerifyRateLimited, retry
	}
	if t.RateLimit != nil {
		got, ld, err := takeUpTo(ctx, v.limits, tokenKey(t), *t.RateLimit, n)
		if err != nil {
			return 0, Decision{Err: ErrLimitsUnavailable, Outcome: VerifyError}
		}
		if got < n {
			bounded(ErrTokenRateLimited, ld.RetryAfter)
			d.Limit, d.LimitSet = ld, true
		}
		n = got
	}
	giveBack := func(k int, quota bool) {
		if k <= 0 {
			return
		}
		if t.RateLimit != nil {
			_ = v.limits.RefundN(context.WithoutCancel(ctx), tokenKey(t), *t.RateLimit, k)
		}
		if quota {
			v.quotas.refund(ctx, t, int64(k), d.Quota)
		}
	}
	counted := t.Quota != nil && t.Quota.Unit == QuotaRequests
	if n > 0 && counted {
		state, got, err := v.quotas.spendUpTo(ctx, t, int64(n))
		if err != nil {
			giveBack(n, false)
			return 0, Decision{Err: err, Outcome: VerifyError}
		}
		d.Quota = &state
		if int(got) < n {
			giveBack(n-int(got), false)
			bounded(errQuotaExceeded(state), state.ResetsAt.Sub(v.opts.Now()))
		}
		n = int(got)
	}
	if n > 0 {
		key, rate := v.planRate(t)
		got, ld, err := takeUpTo(ctx, v.limits, key, rate, n)
		if err != nil {
			giveBack(n, counted)
			return 0, Decision{Err: ErrLimitsUnavailable, Outcome: VerifyError}
		}
		d.Limit, d.LimitSet = ld, true
		if got < n {
			giveBack(n-got, counted)
			bounded(ErrRateLimited, ld.RetryAfter)
		}
		n = got
	}
	if n > 0 && d.Err != nil {
		// Some were granted: asking again says which limit stops the rest.
		d.Err, d.Outcome, d.RetryAfter = nil, VerifiedOK, 0
	}
	return n, d
}

// unlease gives back n requests lease granted for t.
func (v *Verifier) unlease(ctx context.Context, t *Token, n int) {
	ctx = context.WithoutCancel(ctx)
	if t.RateLimit != nil {
		_ = v.limits.RefundN(ctx, tokenKey(t), *t.RateLimit, n)
	}
	if t.Quota != nil && t.Quota.Unit == QuotaRequests {
		v.quotas.refund(ctx, t, int64(n), nil)
	}
	key, rate := v.planRate(t)
	_ = v.limits.RefundN(ctx, key, rate, n)
}

// takeUpTo spends as many of n units of key's rate as conform now, all of
// them if they do. The decision is that of the last spend; when it spent
// none, its RetryAfter is how long until one unit conforms.
func takeUpTo(ctx context.Context, l Limits, key string, rate Rate, n int) (int, LimitDecision, error) {
	if rate.Limit > 0 {
		n = min(n, rate.Limit) // more never conforms
	}
	d, err := l.TakeN(ctx, key, rate, n)
	if err != nil || d.Allowed {
		return n, d, err
	}
	// Spend what is left; under concurrent spends, what is left may shrink
	// between the answer and the next spend, so try a few times.
	for range 3 {
		m := min(max(d.Remaining, 1), n)
		if d, err = l.TakeN(ctx, key, rate, m); err != nil {
			return 0, d, err
		}
		if d.Allowed {
			return m, d, nil
		}
		if m == 1 {
			break // d.RetryAfter is one unit's
		}
	}
	return 0, d, nil
}

// planRate is the key and rate of t's plan limit (test keys get their
// own, TestRateMultiplier times larger).
func (v *Verifier) planRate(t *Token) (string, Rate) {
	limit := t.AccountLimit
	if t.Environment == Test {
		limit *= v.opts.TestRateMultiplier
	}
	return t.planKey(), PerMinute(limit)
}

// spendUpTo spends as many of n units of t's quota as are left, all of them
// if they are, and returns how many it spent.
func (q *quotas) spendUpTo(ctx context.Context, t *Token, n int64) (QuotaState, int64, error) {
	var state QuotaState
	for range 3 {
		var err error
		state, err = q.spend(ctx, t, n)
		switch {
		case err == nil:
			return state, n, nil
		case ErrorCode(err) != ERATELIMITED:
			return state, 0, err
		case state.Remaining == 0:
			return state, 0, nil
		}
		n = min(n, state.Remaining)
	}
	return state, 0, nil
}
