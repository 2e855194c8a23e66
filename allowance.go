package tokend

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The message allowance: sending is counted against the plan in messages as
// well as in requests, so that recipients cannot multiply the request limit.
// Each recipient of an email (to, cc and bcc) is one message, whether it is
// delivered or captured into a sandbox. An account has an allowance per
// minute for its live keys and one for its test keys (TestRateMultiplier
// times larger), held like the plan limit: in this process, or across every
// instance through shared Limits. A send spends all its recipients at once
// or none, before anything is written; what the rules then refuse (a sender
// domain the token may not use, a sandbox it cannot write to) is given back.

// Allowance is a caller's message allowance as a send left it, for the
// adapter's headers: Limit messages a minute, Remaining of them now, Reset
// until it is whole again, and RetryAfter when the send was refused for it.
// Set is false when the send ended before the allowance was consulted.
type Allowance struct {
	LimitDecision
	Set bool
	// Quota is the token's quota of emails after the send; nil when it has
	// none (or one of requests).
	Quota *QuotaState
}

// Reasons of the allowance's errors, for adapters that name them.
const (
	// ReasonMessagesLimited: the allowance cannot cover the request now
	// (ERATELIMITED); it may later.
	ReasonMessagesLimited = "messages_limited"
	// ReasonOverMessageLimit: the request has more recipients than the whole
	// allowance (EINVALID); it can never pass as it is.
	ReasonOverMessageLimit = "over_message_limit"
)

// MessageLimit is t's message allowance in messages per minute: its
// account's, times TestRateMultiplier for test keys.
func (v *Verifier) MessageLimit(t *Token) int {
	if t.Environment == Test {
		return t.AccountMessageLimit * v.opts.TestRateMultiplier
	}
	return t.AccountMessageLimit
}

// spendMessages spends n messages of t's allowance, all or none. A request
// of more messages than the whole allowance is EINVALID with reason
// ReasonOverMessageLimit; one the allowance cannot cover now is ERATELIMITED
// with reason ReasonMessagesLimited and the allowance's RetryAfter; limits
// that cannot be checked are ErrLimitsUnavailable.
func (v *Verifier) spendMessages(ctx context.Context, t *Token, n int) (Allowance, error) {
	limit := v.MessageLimit(t)
	test := t.Environment == Test
	keys := "live keys"
	if test {
		keys = "test keys"
	}
	if n > limit {
		return Allowance{}, &Error{Code: EINVALID, Message: "Validation failed", Reason: ReasonOverMessageLimit,
			Fields: FieldErrors{"base": {fmt.Sprintf("This request has %s, more than the %d messages a minute this account's %s may send "+
				"(each recipient is one message): send them in smaller requests", recipientCount(n), limit, keys)}}}
	}
	d, err := v.limits.TakeN(ctx, messageKey(t.AccountID, test), PerMinute(limit), n)
	if err != nil {
		return Allowance{}, ErrLimitsUnavailable
	}
	a := Allowance{LimitDecision: d, Set: true}
	if !d.Allowed {
		return a, &Error{Code: ERATELIMITED, Reason: ReasonMessagesLimited,
			Message: fmt.Sprintf("Message allowance exceeded: this request has %s and %d of the %d messages a minute this account's %s may send are left; "+
				"retry in %d s, or send to fewer recipients at a time", recipientCount(n), d.Remaining, limit, keys, RetrySeconds(d.RetryAfter))}
	}
	if q := t.Quota; q != nil && q.Unit == QuotaEmails {
		state, err := v.quotas.spend(ctx, t, int64(n))
		if err != nil {
			_ = v.limits.RefundN(context.WithoutCancel(ctx), messageKey(t.AccountID, test), PerMinute(limit), n)
			a.Remaining = min(a.Remaining+n, a.Limit)
			if ErrorCode(err) == ERATELIMITED {
				a.Quota = &state
				a.RetryAfter = state.ResetsAt.Sub(v.opts.Now())
			}
			return a, err
		}
		a.Quota = &state
	}
	return a, nil
}

// RetrySeconds is a wait as a refusal states it: whole seconds, rounded up,
// at least 1.
func RetrySeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

func recipientCount(n int) string {
	if n == 1 {
		return "1 recipient"
	}
	return strconv.Itoa(n) + " recipients"
}

// refundMessages gives back n messages that spendMessages spent for t (and
// of its quota of emails), and counts them in a's Remaining.
func (v *Verifier) refundMessages(ctx context.Context, t *Token, n int, a *Allowance) {
	if n <= 0 {
		return
	}
	limit := v.MessageLimit(t)
	// At worst, when the limits cannot be reached, the account keeps n
	// messages spent for up to a minute.
	_ = v.limits.RefundN(context.WithoutCancel(ctx), messageKey(t.AccountID, t.Environment == Test), PerMinute(limit), n)
	a.Remaining = min(a.Remaining+n, a.Limit)
	if q := t.Quota; q != nil && q.Unit == QuotaEmails {
		v.quotas.refund(ctx, t, int64(n), a.Quota)
	}
}
