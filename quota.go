package tokend

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Quotas are spent in the store, one statement per spend, so that no
// interleaving of requests on any number of instances takes a quota below
// zero, and a restart forgets nothing of a month's budget. Only tokens that
// have a quota pay for the write.

// quotas spends and gives back tokens' quotas.
type quotas struct {
	store Store
	now   func() time.Time
}

// ErrQuotaExceeded is the refusal of a request over its token's quota; its
// message says when the quota refills.
func errQuotaExceeded(s QuotaState) *Error {
	return &Error{Code: ERATELIMITED, Reason: ReasonQuotaExceeded,
		Message: fmt.Sprintf("This token's quota of %s a %s is used up; it refills at %s",
			quotaAmount(s.Limit, s.Unit), s.Period, s.ResetsAt.Format(time.RFC3339))}
}

func quotaAmount(n int64, unit QuotaUnit) string {
	if n == 1 {
		return "1 " + string(unit[:len(unit)-1])
	}
	return strconv.FormatInt(n, 10) + " " + string(unit)
}

// spend spends n units of t's quota. Over the quota it spends nothing and
// returns the state with an ERATELIMITED error (reason quota_exceeded);
// when the store fails, an error of its own.
func (q *quotas) spend(ctx context.Context, t *Token, n int64) (QuotaState, error) {
	now := q.now()
	start, end := t.Quota.Window(now)
	state := QuotaState{Quota: *t.Quota, ResetsAt: end}
	used, ok, err := q.store.SpendQuota(ctx, t.ID, start, t.Quota.Limit, n)
	if err != nil {
		return state, fmt.Errorf("spend quota of token %d: %w", t.ID, err)
	}
	state.Remaining = max(t.Quota.Limit-used, 0)
	if !ok {
		return state, errQuotaExceeded(state)
	}
	return state, nil
}

// refund gives back n units spend spent for t, and counts them in s. At
// worst, when the store cannot be reached, they stay spent.
func (q *quotas) refund(ctx context.Context, t *Token, n int64, s *QuotaState) {
	if n <= 0 {
		return
	}
	start, _ := t.Quota.Window(q.now())
	if err := q.store.RefundQuota(context.WithoutCancel(ctx), t.ID, start, n); err == nil && s != nil {
		s.Remaining = min(s.Remaining+n, s.Limit)
	}
}

// QuotaOf returns t's quota as of now, from what the store last loaded
// with it (Tx.Token and Tx.Tokens load it); nil when t has none.
func QuotaOf(t *Token, now time.Time) *QuotaState {
	if t.Quota == nil {
		return nil
	}
	s := t.Quota.StateAt(now, t.QuotaUsed)
	return &s
}
