package tokend

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tokend/tokend/apikey"
)

// VerifyCode is the outcome of a service asking tokend about a token.
type VerifyCode string

// Verification outcomes, as the verify API names them.
const (
	CodeValid                   VerifyCode = "VALID"
	CodeNotFound                VerifyCode = "NOT_FOUND"
	CodeExpired                 VerifyCode = "EXPIRED"
	CodeRateLimited             VerifyCode = "RATE_LIMITED"
	CodeInsufficientPermissions VerifyCode = "INSUFFICIENT_PERMISSIONS"
	CodeIPNotAllowed            VerifyCode = "IP_NOT_ALLOWED"
	CodeUsageExceeded           VerifyCode = "USAGE_EXCEEDED"
)

// Verification is what a service learns about a token it was handed.
type Verification struct {
	Code VerifyCode
	// Reason names the rule behind a refusal among VALID's neighbours:
	// ip_not_allowed, token_rate_limited, rate_limited, quota_exceeded;
	// "" otherwise.
	Reason string
	// Token is the verified token whenever it belongs to the asking service's
	// account (every code but NOT_FOUND); nil otherwise.
	Token *Token
	// Limit is the verified token's plan limit after this request (its own
	// limit when that refused it before the plan was charged); LimitSet
	// with VALID, RATE_LIMITED and INSUFFICIENT_PERMISSIONS. Spent is the
	// tighter of the two, for the headers.
	Limit    LimitDecision
	LimitSet bool
	// Spent is the plan limit this verification spent, for rate-limit
	// headers: the verified token's when it authenticated, otherwise the
	// asking service's own.
	Spent LimitDecision
	// Quota is the verified token's quota after this request (nil when it
	// has none).
	Quota *QuotaState
}

// MaxRequiredPermissions bounds the permissions one verification may ask about.
const MaxRequiredPermissions = 20

// VerifyToken verifies value, a token a service was handed, on behalf of
// caller, that service's own token. The caller needs at least viewer on its
// account (EFORBIDDEN otherwise); a token of another account is NOT_FOUND,
// so nothing about other accounts shows. required lists permissions the
// token must hold, by containment (INSUFFICIENT_PERMISSIONS otherwise);
// invalid entries are EINVALID.
//
// ip is the address the token's holder called the service from, checked
// against the token's allowed_ips (IP_NOT_ALLOWED outside them, and for a
// token that has them when ip is empty: the service cannot vouch for where
// it came from).
//
// Each verification spends one request, once: of the verified token's
// limits when it authenticates (the request is the token's, and counts in
// its usage): its own rate limit (RATE_LIMITED), its quota of requests
// (USAGE_EXCEEDED) and its plan limit (RATE_LIMITED); otherwise of the
// caller's allowance of verifications that find no valid token (a bucket
// the size of the plan limit beside it, so that made-up tokens cannot spend
// the account's real limit). When that allowance is spent the error is
// ErrRateLimited.
func (v *Verifier) VerifyToken(ctx context.Context, caller *Token, value, ip string, required []Permission) (Verification, error) {
	if err := MayVerify(caller); err != nil {
		return Verification{}, err
	}
	if err := validateRequired(required); err != nil {
		return Verification{}, err
	}
	t, err := v.find(ctx, value)
	if t == nil || t.AccountID != caller.AccountID || err != nil && err != errExpiredToken {
		if err != nil && ErrorCode(err) != EUNAUTHORIZED {
			return Verification{}, err
		}
		return v.chargeCaller(ctx, caller, Verification{Code: CodeNotFound})
	}
	if err == errExpiredToken {
		return v.chargeCaller(ctx, caller, Verification{Code: CodeExpired, Token: t})
	}
	if !t.Guards().AllowsIP(ip) {
		return v.chargeCaller(ctx, caller, Verification{Code: CodeIPNotAllowed, Reason: ReasonIPNotAllowed, Token: t})
	}
	d := Decision{Token: t}
	v.charge(ctx, &d)
	switch {
	case d.Err == nil, d.Outcome == VerifyRateLimited:
	default:
		return Verification{}, d.Err // the limits or the store cannot be reached
	}
	out := Verification{Code: CodeValid, Token: t, Limit: d.Limit, LimitSet: d.LimitSet, Spent: d.Limit, Quota: d.Quota}
	if d.PlanSet {
		out.Limit = d.Plan
	}
	outcome := OutcomeSuccess
	if d.Err != nil && !d.LimitSet {
		// The quota refused it before any rate limit was charged: the
		// headers report what the caller's own request spent.
		out.Code, out.Reason = CodeUsageExceeded, ReasonQuotaExceeded
		return v.chargeCaller(ctx, caller, out)
	}
	if d.Err != nil {
		out.Code, out.Reason, outcome = CodeRateLimited, reason(d.Err), OutcomeRateLimited
	} else if ok, err := v.svc.holds(ctx, t, required); err != nil {
		return Verification{}, err
	} else if !ok {
		out.Code, outcome = CodeInsufficientPermissions, OutcomeClientError
	}
	v.svc.usage.record(t.ID, outcome, v.svc.now())
	return out, nil
}

// MayVerify is the rule for services that verify an account's tokens,
// report their usage and follow the account's change stream: caller must be
// a service token (see IsServiceToken), a live token with at least viewer on
// its account. A test key is EFORBIDDEN with reason environment_not_allowed
// (it is for code under test, and must not verify, charge or follow live
// tokens), any other token without viewer on its account EFORBIDDEN.
func MayVerify(caller *Token) error {
	if caller.Environment != Live {
		return errTestKeyNotService
	}
	if caller.LevelOn(accountResource(caller.AccountID)) < Viewer {
		return Errorf(EFORBIDDEN, "Verifying tokens needs at least viewer access to the account")
	}
	return nil
}

// errTestKeyNotService refuses a test key where a service token is needed.
var errTestKeyNotService = &Error{Code: EFORBIDDEN, Reason: ReasonEnvironmentNotAllowed,
	Message: "A test key is never a service token: verifying tokens, usage reports and the change stream need a live token with at least viewer on the account"}

// chargeCaller spends a request of the caller's allowance of verifications
// that found no valid token to charge.
func (v *Verifier) chargeCaller(ctx context.Context, caller *Token, out Verification) (Verification, error) {
	d := Decision{Token: caller}
	v.chargeKey(ctx, &d, true)
	out.Spent = d.Limit
	return out, d.Err
}

// find looks value up like Authenticate (an expired token comes back with
// its error), sharing one store read among concurrent verifications of it.
func (v *Verifier) find(ctx context.Context, value string) (*Token, error) {
	if t := v.svc.AuthenticateCached(value); t != nil {
		return t, nil
	}
	if _, err := v.svc.opts.Format.Parse(value); err != nil {
		return nil, errBadToken
	}
	h := apikey.Hash(value)
	shared := context.WithoutCancel(ctx) // the first caller going must not fail the others
	r, err, _ := v.finds.Do(string(h[:]), func() (any, error) {
		return v.svc.find(shared, value)
	})
	t, _ := r.(*Token)
	return t, err
}

// Holds reports whether t holds every permission in required, counting
// containment (account admin is admin on every project; a project's level
// applies to its sandboxes). A resource that does not exist in t's account
// is held by no one.
func (v *Verifier) Holds(ctx context.Context, t *Token, required []Permission) (bool, error) {
	return v.svc.holds(ctx, t, required)
}

func (s *Service) holds(ctx context.Context, t *Token, required []Permission) (bool, error) {
	for _, p := range required {
		r, ok, err := s.resourceIn(ctx, t.AccountID, p.ResourceType, p.ResourceID)
		if err != nil {
			return false, err
		}
		if !ok || LevelOn(t.Permissions, r) < p.Level {
			return false, nil
		}
	}
	return true, nil
}

// resourceIn returns the resource typ id if it exists in account accountID.
// Resources that exist are cached until their account changes.
func (s *Service) resourceIn(ctx context.Context, accountID int64, typ ResourceType, id int64) (Resource, bool, error) {
	if typ == ResourceAccount {
		return accountResource(accountID), id == accountID, nil
	}
	k := resourceKey{typ, id}
	var gen uint64
	if s.cache != nil {
		if r, ok := s.cache.resource(k); ok {
			return r, r.AccountID == accountID, nil
		}
		gen = s.cache.Gen()
	}
	var r *Resource
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		r, err = tx.Resource(ctx, typ, id)
		return err
	})
	if ErrorCode(err) == ENOTFOUND {
		return Resource{}, false, nil
	} else if err != nil {
		return Resource{}, false, fmt.Errorf("resource of a permission check: %w", err)
	}
	if s.cache != nil {
		s.cache.putResource(*r, gen)
	}
	return *r, r.AccountID == accountID, nil
}

// validateRequired checks the permissions a verification asks about.
func validateRequired(required []Permission) error {
	var fe FieldErrors
	if len(required) > MaxRequiredPermissions {
		fe.Add("permissions", fmt.Sprintf("at most %d permissions may be checked at once", MaxRequiredPermissions))
	}
	for _, p := range required {
		if _, ok := ParseResourceType(string(p.ResourceType)); !ok {
			fe.Add("permissions", fmt.Sprintf("resource_type %q is not one of account, project, sandbox, domain", p.ResourceType))
		} else if p.ResourceID <= 0 {
			fe.Add("permissions", "resource_id must be a positive integer")
		}
		if !p.Level.Valid() {
			fe.Add("permissions", "access_level must be 10 (viewer) or 100 (admin)")
		}
	}
	return fe.Err()
}

// ParsePermission reads a permission requirement written as
// "<resource_type>:<resource_id>:<level>", such as "project:3:viewer" or
// "account:1:100": the form GET /api/verify, the gateway's routes file and
// the middleware use. Levels are viewer, admin, 10 or 100.
func ParsePermission(s string) (Permission, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return Permission{}, fmt.Errorf("permission %q: want <resource_type>:<resource_id>:<level>, such as project:3:viewer", s)
	}
	typ, ok := ParseResourceType(parts[0])
	if !ok {
		return Permission{}, fmt.Errorf("permission %q: resource type %q is not one of account, project, sandbox, domain", s, parts[0])
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || id <= 0 {
		return Permission{}, fmt.Errorf("permission %q: resource id %q is not a positive integer", s, parts[1])
	}
	level, ok := ParseAccessLevel(parts[2])
	if !ok {
		return Permission{}, fmt.Errorf("permission %q: level %q is not viewer, admin, 10 or 100", s, parts[2])
	}
	return Permission{ResourceType: typ, ResourceID: id, Level: level}, nil
}

// ParseAccessLevel reads a level by name (viewer, admin) or number (10, 100).
func ParseAccessLevel(s string) (AccessLevel, bool) {
	switch s {
	case "viewer", "10":
		return Viewer, true
	case "admin", "100":
		return Admin, true
	}
	return NoAccess, false
}
