package tokend

import (
	"context"
	"errors"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokend/tokend/apikey"
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
	// ErrTokenRateLimited refuses a request over the token's own rate limit.
	ErrTokenRateLimited = &Error{Code: ERATELIMITED, Message: "This token's rate limit is exceeded", Reason: ReasonTokenRateLimited}
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
	VerifyRateLimited                      // authenticated, but the token's or the plan's limit or the token's quota is spent
	VerifyIPRefused                        // a token used from outside its allowed_ips
	VerifyError                            // the store failed
)

// Decision is the outcome of one verification. Token is set whenever the
// credential authenticated, even when Err is a spent limit; Limit is the
// state of the tighter of the token's own limit and its plan's once they
// were charged (the one the rate-limit headers report), and Quota the
// token's quota after a request that spent it.
type Decision struct {
	Token      *Token
	Err        error
	Outcome    VerifyOutcome
	Limit      LimitDecision
	LimitSet   bool          // Limit was charged and its headers apply
	RetryAfter time.Duration // with ERATELIMITED errors
	Quota      *QuotaState
	// Plan is the plan limit's state once it was charged (PlanSet), when
	// Limit may be the token's own.
	Plan    LimitDecision
	PlanSet bool
}

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
	// Limits hold the plan limits, the message allowances and the
	// failed-authentication throttle: shared by every instance (Redis), or
	// nil for LocalLimits in this process.
	Limits Limits
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
	limits   Limits
	throttle *Throttle
	gate     *Gate[found]
	quotas   *quotas
	finds    singleflight.Group // store reads of VerifyToken's values, shared
}

// found is what a lookup of a well-formed credential found: the token (an
// expired one too) and how the verification ends.
type found struct {
	t *Token
	d Decision
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
	if opts.Limits == nil {
		opts.Limits = NewLocalLimits(opts.Now)
	}
	throttle := &Throttle{Limits: opts.Limits, Limit: opts.AuthFailureLimit}
	return &Verifier{svc: svc, opts: opts, limits: opts.Limits, throttle: throttle, gate: NewGate[found](throttle),
		quotas: &quotas{store: svc.store, now: opts.Now}}
}

// Throttle is the failed-authentication budget of client addresses that
// the verifier spends: a way in that refuses a credential before asking the
// verifier (a wrong SMTP username) spends it too.
func (v *Verifier) Throttle() *Throttle { return v.throttle }

// Limits are the limits the verifier counts in.
func (v *Verifier) Limits() Limits { return v.limits }

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
	t, d := v.authenticate(ctx, cred, client)
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
	t, d := v.authenticate(ctx, cred, client)
	if t != nil && t.AccountID != account {
		// An expired token, or one used from outside its allowed_ips,
		// already spent its failure, as an unknown one does; a valid one
		// was given its reservation back (or, verified before, never took
		// one).
		if d.Err == nil {
			if fd, err := v.throttle.Fail(ctx, client); err != nil {
				return refused(fd, err)
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

// refused is the decision of a request the throttle refused, or whose
// limits could not be checked.
func refused(d LimitDecision, err error) Decision {
	if err == ErrThrottled {
		return Decision{Err: err, Outcome: VerifyThrottled, RetryAfter: d.RetryAfter}
	}
	return Decision{Err: err, Outcome: VerifyError}
}

// charge spends one request of d.Token's limits in the guards' order: its
// own rate limit, its quota when it counts requests, then its account's
// plan limit (test keys count against their own, larger one). A request
// one of them refuses spends none of them; the decision records the
// refusal, or the tighter of the two rate limits for the headers.
func (v *Verifier) charge(ctx context.Context, d *Decision) {
	t := d.Token
	var own LimitDecision
	if t.RateLimit != nil {
		var err error
		if own, err = v.limits.TakeN(ctx, tokenKey(t), *t.RateLimit, 1); err != nil {
			d.Err, d.Outcome = ErrLimitsUnavailable, VerifyError
			return
		}
		if !own.Allowed {
			d.Limit, d.LimitSet = own, true
			d.Err, d.Outcome, d.RetryAfter = ErrTokenRateLimited, VerifyRateLimited, own.RetryAfter
			return
		}
	}
	refundOwn := func() {
		if t.RateLimit != nil {
			_ = v.limits.RefundN(context.WithoutCancel(ctx), tokenKey(t), *t.RateLimit, 1)
		}
	}
	if q := t.Quota; q != nil && q.Unit == QuotaRequests {
		state, err := v.quotas.spend(ctx, t, 1)
		if err != nil {
			refundOwn()
			d.Err, d.Outcome = err, VerifyError
			if ErrorCode(err) == ERATELIMITED {
				d.Outcome, d.RetryAfter, d.Quota = VerifyRateLimited, state.ResetsAt.Sub(v.opts.Now()), &state
			}
			return
		}
		d.Quota = &state
	}
	v.chargeKey(ctx, d, false)
	d.Plan, d.PlanSet = d.Limit, d.LimitSet
	switch {
	case d.Err != nil:
		refundOwn()
		if d.Quota != nil && t.Quota.Unit == QuotaRequests {
			v.quotas.refund(ctx, t, 1, d.Quota)
		}
	case t.RateLimit != nil && own.Remaining < d.Limit.Remaining:
		d.Limit = own
	}
}

// chargeKey spends one request of d.Token's plan limit; with miss set it
// spends from the allowance of verifications that found no valid token, a
// bucket of the same size beside the plan limit, so that made-up tokens
// cannot spend the real one.
func (v *Verifier) chargeKey(ctx context.Context, d *Decision, miss bool) {
	key, rate := v.planRate(d.Token)
	if miss {
		key += ":verify-miss"
	}
	var err error
	if d.Limit, err = v.limits.TakeN(ctx, key, rate, 1); err != nil {
		d.Err, d.Outcome = ErrLimitsUnavailable, VerifyError
		return
	}
	d.LimitSet = true
	if !d.Limit.Allowed {
		d.Err, d.Outcome, d.RetryAfter = ErrRateLimited, VerifyRateLimited, d.Limit.RetryAfter
	}
}

// authenticate returns the token cred presents (an expired one, or one
// used from outside its allowed_ips, too, with d.Err saying so; nil on any
// other failure) and the decision, whose Token is left for the caller to
// set. A token this process has verified passes at once; a malformed
// credential spends one failure of client's budget; anything else is
// looked up through the gate. A token refused for client's address spends
// one failure too.
func (v *Verifier) authenticate(ctx context.Context, cred Credential, client string) (*Token, Decision) {
	value, err := cred.Value()
	switch {
	case err == ErrNoCredentials:
		return nil, Decision{Err: err, Outcome: VerifyMissing}
	case err != nil:
		if fd, ferr := v.throttle.Fail(ctx, client); ferr != nil {
			return nil, refused(fd, ferr)
		}
		return nil, Decision{Err: err, Outcome: VerifyInvalid}
	}
	if t := v.svc.AuthenticateCached(value); t != nil {
		return t, v.admitFrom(ctx, t, client)
	}
	h := apikey.Hash(value)
	f, fd, err := v.gate.Lookup(ctx, string(h[:]), client, func(ctx context.Context) (found, bool) {
		t, err := v.svc.find(ctx, value)
		var e *Error
		switch {
		case err == nil:
			return found{t: t}, false
		case !errors.As(err, &e) || e.Code != EUNAUTHORIZED:
			return found{d: Decision{Err: err, Outcome: VerifyError}}, false // the store failed, not the client
		case err == errExpiredToken:
			return found{t: t, d: Decision{Err: err, Outcome: VerifyExpired}}, true
		}
		return found{d: Decision{Err: err, Outcome: VerifyInvalid}}, true
	})
	if err != nil {
		return nil, refused(fd, err)
	}
	if f.t != nil && f.d.Err == nil {
		return f.t, v.admitFrom(ctx, f.t, client)
	}
	return f.t, f.d
}

// admitFrom checks that t may be used from client; a refusal spends one
// failure of client's budget (ErrThrottled once it is spent).
func (v *Verifier) admitFrom(ctx context.Context, t *Token, client string) Decision {
	if len(t.AllowedIPs) == 0 || t.Guards().AllowsIP(client) {
		return Decision{}
	}
	if fd, err := v.throttle.Fail(ctx, client); err != nil {
		return refused(fd, err)
	}
	return Decision{Err: ErrIPNotAllowed, Outcome: VerifyIPRefused}
}
