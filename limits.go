package tokend

import (
	"context"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/ratelimit"
)

// Every limit tokend keeps counts per minute, as a sliding limit (GCRA): a
// rested key may spend its whole limit at once, then one unit every
// minute/limit. The plan limits, message allowances, failed-authentication
// throttle and sign-in throttle all go through one Limits: LocalLimits in
// this process's memory, or an implementation shared by every instance
// (internal/redis).

// LimitPeriod is the window every limit counts in.
const LimitPeriod = time.Minute

// Rate is a limit of Limit units per Per, spent as a sliding limit: a
// rested key may spend Limit at once, then one unit every Per/Limit.
type Rate struct {
	Limit int
	Per   time.Duration
}

// PerMinute is a limit of n units a minute, the window of every limit
// tokend keeps but the ones a token sets on itself.
func PerMinute(n int) Rate { return Rate{Limit: n, Per: LimitPeriod} }

// LimitDecision is the outcome of spending units of a limit.
type LimitDecision struct {
	Allowed bool
	Limit   int
	// Remaining is how many more units the key could spend right now; when
	// a spend is refused, the units left, fewer than it asked for.
	Remaining int
	// RetryAfter is how long to wait before the spend would be allowed (0
	// when it was).
	RetryAfter time.Duration
	// Reset is how long until the key is back to its whole limit.
	Reset time.Duration
}

// Limits counts units (requests, messages, failed attempts) against rates
// by key. TakeN spends n units of key's rate if all of them conform, or
// none; n above the rate's Limit never conforms. RefundN gives back n units
// a TakeN spent, never beyond a rested key. A key is always spent with the
// same Per (its Limit may change). An error means the limit
// could not be checked: the implementation has already applied its failure
// policy, and the caller refuses the request as unavailable
// (ErrLimitsUnavailable).
//
// Keys name what they count, with a prefix per kind ("plan:", "fail:",
// "messages:", "signin:", "token:"), so that one Limits holds every kind.
type Limits interface {
	TakeN(ctx context.Context, key string, rate Rate, n int) (LimitDecision, error)
	RefundN(ctx context.Context, key string, rate Rate, n int) error
}

// ErrLimitsUnavailable refuses a request whose limits cannot be checked.
var ErrLimitsUnavailable = Errorf(EUNAVAILABLE, "Rate limits cannot be checked right now; retry in a moment")

// LocalLimits are Limits in this process's memory: each process that holds
// its own allows the whole limit. Its memory is bounded by the keys of the
// last minute once Sweep runs about once a minute (the application does).
type LocalLimits struct {
	l   *ratelimit.Limiter[string]
	now func() time.Time
}

// NewLocalLimits returns limits counted on the clock now (time.Now if nil).
func NewLocalLimits(now func() time.Time) *LocalLimits {
	if now == nil {
		now = time.Now
	}
	return &LocalLimits{l: ratelimit.New[string](LimitPeriod), now: now}
}

// TakeN spends n units of key's limit, all or none. It never fails.
func (l *LocalLimits) TakeN(_ context.Context, key string, rate Rate, n int) (LimitDecision, error) {
	return LimitDecision(l.l.TakeNPer(key, rate.Limit, n, rate.Per, l.now())), nil
}

// TakeNAt is TakeN at now, for a caller that has just read the clock.
func (l *LocalLimits) TakeNAt(key string, rate Rate, n int, now time.Time) LimitDecision {
	return LimitDecision(l.l.TakeNPer(key, rate.Limit, n, rate.Per, now))
}

// RefundN gives back n units of key's limit. It never fails.
func (l *LocalLimits) RefundN(_ context.Context, key string, rate Rate, n int) error {
	l.l.RefundNPer(key, rate.Limit, n, rate.Per, l.now())
	return nil
}

// Sweep forgets keys that have rested for a whole period.
func (l *LocalLimits) Sweep(now time.Time) { l.l.Sweep(now) }

// take spends one unit of key's limit.
func take(ctx context.Context, l Limits, key string, limit int) (LimitDecision, error) {
	return l.TakeN(ctx, key, PerMinute(limit), 1)
}

// Keys of the limits tokend keeps.

// planKey names an account's plan limit for live or test keys.
func planKey(account int64, test bool) string {
	return "plan:" + accountEnv(account, test)
}

// messageKey names an account's message allowance for live or test keys.
func messageKey(account int64, test bool) string {
	return "messages:" + accountEnv(account, test)
}

// tokenKey names a token's own rate limit.
func tokenKey(t *Token) string {
	if t.own != "" {
		return t.own
	}
	return "token:" + strconv.FormatInt(t.ID, 10)
}

// failureKey names a client address's failed-authentication budget; client
// is a ThrottleKey.
func failureKey(client string) string { return "fail:" + client }

func accountEnv(account int64, test bool) string {
	if test {
		return strconv.FormatInt(account, 10) + ":test"
	}
	return strconv.FormatInt(account, 10) + ":live"
}
