package tokend

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Outcome classifies a request for usage counts.
type Outcome string

// Outcomes, by response status.
const (
	OutcomeSuccess     Outcome = "success"      // below 400
	OutcomeClientError Outcome = "client_error" // 4xx other than 429
	OutcomeRateLimited Outcome = "rate_limited" // 429
	OutcomeServerError Outcome = "server_error" // 5xx
)

// OutcomeOf classifies an HTTP status.
func OutcomeOf(status int) Outcome {
	switch {
	case status == 429:
		return OutcomeRateLimited
	case status >= 500:
		return OutcomeServerError
	case status >= 400:
		return OutcomeClientError
	}
	return OutcomeSuccess
}

// UsageCount is the number of requests a token made on one UTC day with one outcome.
type UsageCount struct {
	Day     string // YYYY-MM-DD
	Outcome Outcome
	Count   int64
}

// TokenUsage is what GET /api/api_tokens/{id}/usage reports.
type TokenUsage struct {
	TokenID    int64
	LastUsedAt *time.Time
	Counts     []UsageCount // by day, then outcome
}

// UsageDay is one UTC day of a token's requests, by outcome.
type UsageDay struct {
	Date                                           string // YYYY-MM-DD
	Success, ClientError, RateLimited, ServerError int64
	Total                                          int64 // every outcome
}

// Days folds the counts into one UsageDay per day that has any, in the
// counts' order (by day); a token never used has none.
func (u *TokenUsage) Days() []UsageDay {
	days := []UsageDay{}
	for _, c := range u.Counts {
		if len(days) == 0 || days[len(days)-1].Date != c.Day {
			days = append(days, UsageDay{Date: c.Day})
		}
		d := &days[len(days)-1]
		switch c.Outcome {
		case OutcomeSuccess:
			d.Success += c.Count
		case OutcomeClientError:
			d.ClientError += c.Count
		case OutcomeRateLimited:
			d.RateLimited += c.Count
		case OutcomeServerError:
			d.ServerError += c.Count
		}
		d.Total += c.Count
	}
	return days
}

const usageShards = 32

// usageRecorder aggregates request counts and last-use times in memory, in
// shards by token, so that recording costs no store write; Flush writes them
// in one transaction.
type usageRecorder struct {
	shards [usageShards]usageShard
}

type usageShard struct {
	mu     sync.Mutex
	tokens map[int64]*pendingUsage
}

type pendingUsage struct {
	lastUsed time.Time
	counts   map[dayOutcome]int64
}

type dayOutcome struct {
	day     int64 // days since the Unix epoch, UTC
	outcome Outcome
}

func (k dayOutcome) date() string {
	return time.Unix(k.day*86400, 0).UTC().Format(time.DateOnly)
}

func (u *usageRecorder) shard(tokenID int64) *usageShard {
	return &u.shards[uint64(tokenID)%usageShards]
}

func (u *usageRecorder) record(tokenID int64, outcome Outcome, at time.Time) {
	u.recordN(tokenID, outcome, 1, at)
}

// recordN counts n requests of tokenID that ended with outcome at at.
func (u *usageRecorder) recordN(tokenID int64, outcome Outcome, n int64, at time.Time) {
	s := u.shard(tokenID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = make(map[int64]*pendingUsage)
	}
	p := s.tokens[tokenID]
	if p == nil {
		p = &pendingUsage{counts: make(map[dayOutcome]int64, 1)}
		s.tokens[tokenID] = p
	}
	if at.After(p.lastUsed) {
		p.lastUsed = at
	}
	p.counts[dayOutcome{at.Unix() / 86400, outcome}] += n
}

// take removes and returns everything pending.
func (u *usageRecorder) take() map[int64]*pendingUsage {
	all := make(map[int64]*pendingUsage)
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		for id, p := range s.tokens {
			all[id] = p
		}
		s.tokens = nil
		s.mu.Unlock()
	}
	return all
}

// putBack merges pending usage that could not be written back into memory.
func (u *usageRecorder) putBack(all map[int64]*pendingUsage) {
	for id, p := range all {
		s := u.shard(id)
		s.mu.Lock()
		if s.tokens == nil {
			s.tokens = make(map[int64]*pendingUsage)
		}
		if q := s.tokens[id]; q == nil {
			s.tokens[id] = p
		} else {
			for k, n := range p.counts {
				q.counts[k] += n
			}
			if p.lastUsed.After(q.lastUsed) {
				q.lastUsed = p.lastUsed
			}
		}
		s.mu.Unlock()
	}
}

// pending returns a copy of what is pending for one token.
func (u *usageRecorder) pending(tokenID int64) (time.Time, map[dayOutcome]int64) {
	s := u.shard(tokenID)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.tokens[tokenID]
	if p == nil {
		return time.Time{}, nil
	}
	counts := make(map[dayOutcome]int64, len(p.counts))
	for k, n := range p.counts {
		counts[k] = n
	}
	return p.lastUsed, counts
}

// RecordOutcome counts one authenticated request by token tokenID that
// ended with outcome, made another way than HTTP (a message over SMTP).
func (s *Service) RecordOutcome(tokenID int64, outcome Outcome) {
	s.usage.record(tokenID, outcome, s.now())
}

// RecordRequest counts one authenticated request by token tokenID that
// answered status. It only touches memory; FlushUsage persists it.
func (s *Service) RecordRequest(tokenID int64, status int) {
	s.usage.record(tokenID, OutcomeOf(status), s.now())
}

// FlushUsage writes every pending count and last-use time in one
// transaction. On failure the counts stay pending for the next flush.
func (s *Service) FlushUsage(ctx context.Context) error {
	all := s.usage.take()
	if len(all) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	err := s.store.Write(ctx, func(tx Tx) error {
		for _, id := range ids {
			p := all[id]
			counts := make([]UsageCount, 0, len(p.counts))
			for k, n := range p.counts {
				counts = append(counts, UsageCount{Day: k.date(), Outcome: k.outcome, Count: n})
			}
			if err := tx.AddUsage(ctx, id, p.lastUsed, counts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.usage.putBack(all)
		return fmt.Errorf("flush usage: %w", err)
	}
	return nil
}

// withLastUsed sets t.LastUsedAt to the later of the stored and pending values.
func (s *Service) withLastUsed(t *Token) {
	if at, _ := s.usage.pending(t.ID); !at.IsZero() && (t.LastUsedAt == nil || at.After(*t.LastUsedAt)) {
		t.LastUsedAt = &at
	}
}

// Usage returns the per-day request counts of a token the caller can see
// (ENOTFOUND otherwise), including counts not yet flushed.
func (s *Service) Usage(ctx context.Context, caller *Token, id int64) (*TokenUsage, error) {
	out := &TokenUsage{TokenID: id}
	var stored []UsageCount
	err := s.store.Read(ctx, func(tx Tx) error {
		t, _, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		s.withLastUsed(t)
		out.LastUsedAt = t.LastUsedAt
		stored, err = tx.Usage(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	merged := map[[2]string]int64{}
	for _, c := range stored {
		merged[[2]string{c.Day, string(c.Outcome)}] += c.Count
	}
	_, pending := s.usage.pending(id)
	for k, n := range pending {
		merged[[2]string{k.date(), string(k.outcome)}] += n
	}
	for k, n := range merged {
		out.Counts = append(out.Counts, UsageCount{Day: k[0], Outcome: Outcome(k[1]), Count: n})
	}
	sort.Slice(out.Counts, func(i, j int) bool {
		a, b := out.Counts[i], out.Counts[j]
		return a.Day < b.Day || a.Day == b.Day && a.Outcome < b.Outcome
	})
	return out, nil
}

// SetPlan changes an account's plan, with limit as its requests per minute
// (0: the plan's default; required for enterprise) and messageLimit as its
// message allowance, messages per minute (0: the plan's default, or for an
// account that is and stays enterprise, the allowance it has). Custom values
// are for enterprise only. For operators.
func (s *Service) SetPlan(ctx context.Context, accountID int64, plan Plan, limit, messageLimit int, operator string) (*Account, error) {
	if _, ok := ParsePlan(string(plan)); !ok {
		return nil, Invalid("plan", "must be free, pro or enterprise")
	}
	switch {
	case limit < 0:
		return nil, Invalid("rate_limit", "must be positive")
	case limit == 0 && plan == PlanEnterprise:
		return nil, Invalid("rate_limit", "is required for the enterprise plan")
	case limit == 0:
		limit = plan.DefaultRateLimit()
	case plan != PlanEnterprise && limit != plan.DefaultRateLimit():
		return nil, Invalid("rate_limit", fmt.Sprintf("can only be set for the enterprise plan (%s is %d/min)", plan, plan.DefaultRateLimit()))
	}
	switch {
	case messageLimit < 0:
		return nil, Invalid("message_limit", "must be positive")
	case plan != PlanEnterprise && messageLimit != 0 && messageLimit != plan.DefaultMessageLimit():
		return nil, Invalid("message_limit", fmt.Sprintf("can only be set for the enterprise plan (%s is %d messages/min)", plan, plan.DefaultMessageLimit()))
	}
	var out *Account
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.store.Write(ctx, func(tx Tx) error {
		a, err := tx.Account(ctx, accountID)
		if err != nil {
			return err
		}
		messages := messageLimit
		switch {
		case messages != 0:
		case plan == PlanEnterprise && a.Plan == PlanEnterprise && a.MessageLimit > 0:
			messages = a.MessageLimit
		default:
			messages = plan.DefaultMessageLimit()
		}
		if err := tx.SetPlan(ctx, accountID, plan, limit, messages); err != nil {
			return err
		}
		details := map[string]any{"from_plan": a.Plan, "from_rate_limit": a.RateLimit, "from_message_limit": a.MessageLimit,
			"plan": plan, "rate_limit": limit, "message_limit": messages}
		a.Plan, a.RateLimit, a.MessageLimit = plan, limit, messages
		out = a
		change = AuthChange{AccountID: accountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err // cached tokens carry the old limits
		}
		return s.audit(ctx, tx, accountID, nil, operator, ActionPlanChanged, "account", accountID, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	return out, nil
}
