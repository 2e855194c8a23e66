package tokend

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/ratelimit"
)

// Credential is what a request presents to prove who it is: every value of
// its Api-Token headers and of its Authorization headers, as received.
type Credential struct {
	APIToken      []string
	Authorization []string
}

// Errors of credential parsing and verification. Each adapter maps them to
// its own wire format by Code and Reason.
var (
	ErrNoCredentials = &Error{Code: EUNAUTHORIZED, Message: "Missing API token: send it as Api-Token or Authorization: Bearer", Reason: "missing_api_key"}
	ErrBadScheme     = &Error{Code: EUNAUTHORIZED, Message: "The Authorization header must use the Bearer scheme", Reason: "invalid_api_key"}
	ErrTwoTokens     = &Error{Code: EUNAUTHORIZED, Message: "Every Api-Token and Authorization header must carry the same token", Reason: "invalid_api_key"}
	ErrRateLimited   = &Error{Code: ERATELIMITED, Message: "Rate limit exceeded", Reason: "rate_limited"}
	ErrThrottled     = &Error{Code: ERATELIMITED, Message: "Too many failed authentications from your address; retry later", Reason: "auth_throttled"}
)

// Value returns the one token value c presents. Every value of every header
// must name the same token, so that a proxy reading another header than
// tokend never sees another caller. An Authorization header with another
// scheme (Basic for a proxy, say) is allowed only beside Api-Token, and
// carries no token.
func (c Credential) Value() (string, error) {
	var value string
	apiToken := false
	for _, v := range c.APIToken {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if value != "" && v != value {
			return "", ErrTwoTokens
		}
		value, apiToken = v, true
	}
	for _, auth := range c.Authorization {
		scheme, v, ok := strings.Cut(strings.TrimSpace(auth), " ")
		if v = strings.TrimSpace(v); !ok || !strings.EqualFold(scheme, "Bearer") || v == "" {
			if !apiToken {
				return "", ErrBadScheme
			}
			continue
		}
		if value != "" && v != value {
			return "", ErrTwoTokens
		}
		value = v
	}
	if value == "" {
		return "", ErrNoCredentials
	}
	return value, nil
}

// VerifyOutcome says how a verification ended, for metrics.
type VerifyOutcome uint8

// Verification outcomes.
const (
	VerifiedOK        VerifyOutcome = iota // authenticated and within the plan limit
	VerifyMissing                          // no credential
	VerifyInvalid                          // malformed, forged, unknown or deleted token
	VerifyExpired                          // a token past its expiry
	VerifyThrottled                        // the client address spent its failed-authentication budget
	VerifyRateLimited                      // authenticated, but the account's plan limit is spent
	VerifyError                            // the store failed
)

// Decision is the outcome of one verification. Token is set whenever the
// credential authenticated, even when Err is a spent plan limit; Limit is
// the plan limit's state once it was charged.
type Decision struct {
	Token      *Token
	Err        error
	Outcome    VerifyOutcome
	Limit      ratelimit.Decision
	LimitSet   bool          // Limit was charged and its headers apply
	RetryAfter time.Duration // with ERATELIMITED errors
}

// SharedLimits counts requests against limits across every instance (in
// Redis, say); without one, a Verifier counts in this process's memory.
// Take spends one request of key's limit per period (a minute) if it
// conforms; Refund gives one back. TakeN and RefundN do the same with n units
// at once, all or none (the recipients of a send). An error means the limits
// could not be checked: the implementation has already applied its failure
// policy, so the request is refused as unavailable.
type SharedLimits interface {
	Take(ctx context.Context, key string, limit int) (ratelimit.Decision, error)
	Refund(ctx context.Context, key string, limit int) error
	TakeN(ctx context.Context, key string, limit, n int) (ratelimit.Decision, error)
	RefundN(ctx context.Context, key string, limit, n int) error
}

// ErrLimitsUnavailable refuses a request whose limits cannot be checked.
var ErrLimitsUnavailable = Errorf(EUNAVAILABLE, "Rate limits cannot be checked right now; retry in a moment")

// Defaults of the verification policy.
const (
	// DefaultTestRateMultiplier is how many times its plan's limit a test
	// key may make.
	DefaultTestRateMultiplier = 5
	// DefaultAuthFailureLimit is how many failed authentications a client
	// address may make a minute.
	DefaultAuthFailureLimit = 20
)

// VerifierOptions configure a Verifier. Zero values take the defaults.
type VerifierOptions struct {
	// Shared, when set, holds the plan limits, the message allowances and
	// the failed-authentication throttle across instances; nil counts in
	// this process.
	Shared SharedLimits
	// TestRateMultiplier multiplies the plan limit and the message allowance
	// for test keys (default 5).
	TestRateMultiplier int
	// AuthFailureLimit is how many failed authentications a client address may
	// make per minute before it is throttled (default 20).
	AuthFailureLimit int
	Now              func() time.Time // the clock; time.Now if nil
}

// Verifier is the one authentication policy of every entry point (the
// management API, sending, verification): it turns a credential and the
// client's address into a Decision. A token this process has already verified
// passes at once. Anything else is a possible guess and reserves one failure
// of the address's budget before the store is asked, so no interleaving of
// parallel guesses gets more answers than the budget; a lookup that succeeds
// gives the reservation back. An authenticated caller then spends one request
// of its account's plan limit (test keys have their own, larger one).
type Verifier struct {
	svc      *Service
	opts     VerifierOptions
	limits   *ratelimit.Limiter[limitKey]
	messages *ratelimit.Limiter[limitKey] // message allowances (see SpendMessages)
	failures *ratelimit.Limiter[string]
	flights  singleflight.Group
}

// limitKey is what a plan limit counts: one account's live or test traffic.
type limitKey struct {
	account int64
	test    bool
	miss    bool // verifications that found no valid token (see chargeKey)
}

// NewVerifier returns the verifier of svc's tokens.
func NewVerifier(svc *Service, opts VerifierOptions) *Verifier {
	if opts.TestRateMultiplier <= 0 {
		opts.TestRateMultiplier = DefaultTestRateMultiplier
	}
	if opts.AuthFailureLimit <= 0 {
		opts.AuthFailureLimit = DefaultAuthFailureLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Verifier{svc: svc, opts: opts, limits: ratelimit.New[limitKey](time.Minute),
		messages: ratelimit.New[limitKey](time.Minute), failures: ratelimit.New[string](time.Minute)}
}

// Verify decides whether the holder of cred, calling from client (an IP
// address), may make one request now.
func (v *Verifier) Verify(ctx context.Context, cred Credential, client string) Decision {
	d := v.Authenticate(ctx, cred, client)
	if d.Token != nil {
		v.charge(ctx, &d)
	}
	return d
}

// Authenticate is Verify without spending the plan limit: for a request that
// is charged to another token (see VerifyToken).
func (v *Verifier) Authenticate(ctx context.Context, cred Credential, client string) Decision {
	now := v.opts.Now()
	t, d := v.authenticate(ctx, cred, client, now)
	if d.Err == nil {
		d.Token = t
	}
	return d
}

// VerifyIn is Verify for a request that only tokens of account may make (a
// reverse proxy's GET /api/verify?account_id=N). A token of another account,
// valid or expired, is refused exactly as a token that does not exist is:
// "Incorrect API token" (invalid_api_key), one failure of the client
// address's budget (so ErrThrottled once that is spent), and no plan limit
// spent, so that the answer says nothing about other accounts' tokens.
func (v *Verifier) VerifyIn(ctx context.Context, cred Credential, client string, account int64) Decision {
	now := v.opts.Now()
	t, d := v.authenticate(ctx, cred, client, now)
	if t != nil && t.AccountID != account {
		// An expired token already spent its failure, as an unknown one
		// does; a valid one was given its reservation back (or, verified
		// before, never took one).
		if d.Err == nil {
			key := ThrottleKey(client)
			if fd, err := v.takeFailure(ctx, key, v.opts.AuthFailureLimit, now); err != nil {
				return Decision{Err: ErrLimitsUnavailable, Outcome: VerifyError}
			} else if !fd.Allowed {
				return Decision{Err: ErrThrottled, Outcome: VerifyThrottled, RetryAfter: fd.RetryAfter}
			}
		}
		return Decision{Err: errBadToken, Outcome: VerifyInvalid}
	}
	if d.Err == nil {
		d.Token = t
		v.charge(ctx, &d)
	}
	return d
}

// charge spends one request of d.Token's plan limit (test keys count
// against their own, larger one) and records the outcome in d.
func (v *Verifier) charge(ctx context.Context, d *Decision) { v.chargeKey(ctx, d, false) }

// chargeKey is charge; with miss set it spends from the allowance of
// verifications that found no valid token, a bucket of the same size beside
// the plan limit, so that made-up tokens cannot spend the real one.
func (v *Verifier) chargeKey(ctx context.Context, d *Decision, miss bool) {
	t := d.Token
	limit := t.AccountLimit
	test := t.Environment == Test
	if test {
		limit *= v.opts.TestRateMultiplier
	}
	if v.opts.Shared != nil {
		key := planKey(t.AccountID, test)
		if miss {
			key += ":verify-miss"
		}
		var err error
		if d.Limit, err = v.opts.Shared.Take(ctx, key, limit); err != nil {
			d.Err, d.Outcome = ErrLimitsUnavailable, VerifyError
			return
		}
	} else {
		d.Limit = v.limits.Take(limitKey{t.AccountID, test, miss}, limit, v.opts.Now())
	}
	d.LimitSet = true
	if !d.Limit.Allowed {
		d.Err, d.Outcome, d.RetryAfter = ErrRateLimited, VerifyRateLimited, d.Limit.RetryAfter
	}
}

// authenticate returns the token cred presents (an expired one too, with
// d.Err saying so; nil on any other failure) and the decision, whose Token
// is left for the caller to set.
func (v *Verifier) authenticate(ctx context.Context, cred Credential, client string, now time.Time) (*Token, Decision) {
	value, err := cred.Value()
	if err == ErrNoCredentials {
		return nil, Decision{Err: err, Outcome: VerifyMissing}
	}
	if err == nil {
		if t := v.svc.AuthenticateCached(value); t != nil {
			return t, Decision{}
		}
		// Requests presenting the same value at once share one lookup and
		// one reservation: a burst of a valid token just evicted (its plan
		// changed, say) must not spend the address's budget.
		h := apikey.Hash(value)
		// The shared lookup must not fail for all when its first caller goes.
		shared := context.WithoutCancel(ctx)
		r, _, _ := v.flights.Do(string(h[:]), func() (any, error) {
			t, d := v.lookup(shared, value, nil, client, now)
			return lookupResult{t, d}, nil
		})
		res := r.(lookupResult)
		return res.t, res.d
	}
	return v.lookup(ctx, value, err, client, now)
}

type lookupResult struct {
	t *Token
	d Decision
}

// lookup charges the address's failure budget, then (for a well-formed value,
// credErr nil) asks the store, giving the charge back when the token is valid.
// An expired token comes back with its error.
func (v *Verifier) lookup(ctx context.Context, value string, credErr error, client string, now time.Time) (*Token, Decision) {
	err := credErr
	key := ThrottleKey(client)
	limit := v.opts.AuthFailureLimit
	if d, err := v.takeFailure(ctx, key, limit, now); err != nil {
		return nil, Decision{Err: ErrLimitsUnavailable, Outcome: VerifyError}
	} else if !d.Allowed {
		return nil, Decision{Err: ErrThrottled, Outcome: VerifyThrottled, RetryAfter: d.RetryAfter}
	}
	var t *Token
	if err == nil {
		t, err = v.svc.find(ctx, value)
	}
	if err != nil {
		var e *Error
		switch {
		case !errors.As(err, &e) || e.Code != EUNAUTHORIZED:
			v.refundFailure(ctx, key, limit, now) // the store failed, not the client
			return nil, Decision{Err: err, Outcome: VerifyError}
		case err == errExpiredToken:
			return t, Decision{Err: err, Outcome: VerifyExpired}
		}
		return nil, Decision{Err: err, Outcome: VerifyInvalid}
	}
	v.refundFailure(ctx, key, limit, now)
	return t, Decision{}
}

func (v *Verifier) takeFailure(ctx context.Context, key string, limit int, now time.Time) (ratelimit.Decision, error) {
	if v.opts.Shared != nil {
		return v.opts.Shared.Take(ctx, "fail:"+key, limit)
	}
	return v.failures.Take(key, limit, now), nil
}

func (v *Verifier) refundFailure(ctx context.Context, key string, limit int, now time.Time) {
	if v.opts.Shared != nil {
		v.opts.Shared.Refund(ctx, "fail:"+key, limit) // at worst the address keeps one failure
		return
	}
	v.failures.Refund(key, limit, now)
}

// planKey names an account's plan limit for live or test keys in shared limits.
func planKey(account int64, test bool) string {
	if test {
		return "plan:" + strconv.FormatInt(account, 10) + ":test"
	}
	return "plan:" + strconv.FormatInt(account, 10) + ":live"
}

// ThrottleKey is what a failed-authentication throttle counts for a client
// address: the IPv4 address, or the IPv6 /64, since one IPv6 client usually
// holds a whole /64 and could otherwise guess from a fresh address each time.
func ThrottleKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Unmap().Is4() {
		return addr
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

// Sweep forgets limiter keys that have rested for a minute, so that memory
// stays bounded by the clients of the last minute. The application calls it
// about once a minute.
func (v *Verifier) Sweep(now time.Time) {
	v.failures.Sweep(now)
	v.limits.Sweep(now)
	v.messages.Sweep(now)
}
