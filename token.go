package tokend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tokend/tokend/apikey"
)

// IssuedToken is a token together with its value, which exists only in the
// response that created it.
type IssuedToken struct {
	Token
	Value string
}

// Expiry is an optional expires_at input: when Set is false the server default
// applies; when At is nil the token never expires.
type Expiry struct {
	Set bool
	At  *time.Time
}

// TokenInput is what a caller asks for when creating a token.
type TokenInput struct {
	Name        string
	Permissions []Permission
	Environment Environment // "" means live
	Expiry      Expiry
	Guards      GuardsInput // allowed IPs, rate limit, quota: account admins only
}

// TokenPatch changes a token's name, its permissions, its guards, or any of
// them.
type TokenPatch struct {
	Name        *string
	Permissions *[]Permission
	Guards      GuardsInput
}

// mayGuard is the rule for setting, relaxing or removing a token's guards:
// only an account admin may, and never on itself (target 0: a new token),
// so that a token restricted to some addresses or limits cannot lift them.
func (t *Token) mayGuard(target int64) error {
	if t.LevelOn(accountResource(t.AccountID)) < Admin {
		return &Error{Code: EFORBIDDEN, Reason: "insufficient_permissions",
			Message: "Only an account admin may set a token's allowed_ips, rate_limit or quota"}
	}
	if t.ID != 0 && t.ID == target {
		return &Error{Code: EFORBIDDEN, Reason: "insufficient_permissions",
			Message: "A token cannot change its own allowed_ips, rate_limit or quota: use another account admin token or the dashboard"}
	}
	return nil
}

// ListTokens returns the tokens the caller can see, in ID order.
func (s *Service) ListTokens(ctx context.Context, caller *Token) ([]Token, error) {
	var out []Token
	err := s.store.Read(ctx, func(tx Tx) error {
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		tokens, err := tx.Tokens(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		out = make([]Token, 0, len(tokens))
		for i := range tokens {
			if c.canSee(caller, &tokens[i]) {
				s.withLastUsed(&tokens[i])
				out = append(out, tokens[i])
			}
		}
		return nil
	})
	return out, err
}

// GetToken returns one token the caller can see, or ENOTFOUND.
func (s *Service) GetToken(ctx context.Context, caller *Token, id int64) (*Token, error) {
	var out *Token
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		out, _, err = visibleToken(ctx, tx, caller, id)
		if err == nil {
			s.withLastUsed(out)
		}
		return err
	})
	return out, err
}

// CreateToken creates a token in the caller's account. The caller must be admin
// on every resource granted (account admin for a token with none): EFORBIDDEN
// otherwise. Resources that do not exist in the caller's account are EINVALID.
func (s *Service) CreateToken(ctx context.Context, caller *Token, in TokenInput) (*IssuedToken, error) {
	now := s.now()
	var fe FieldErrors
	name := validateName(&fe, "name", in.Name)
	env := in.Environment
	if env == "" {
		env = Live
		if caller.Environment == Test {
			env = Test // a test key's tokens are test keys unless it says otherwise (and it may not)
		}
	} else if env != Live && env != Test {
		fe.Add("environment", "must be live or test")
	}
	validatePermissions(&fe, in.Permissions)
	validateGuards(&fe, in.Guards)
	expiresAt := s.expiry(&fe, in.Expiry, now)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	var out *IssuedToken
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		if err := caller.mayMint(env); err != nil {
			return err
		}
		if in.Guards.set() {
			if err := caller.mayGuard(0); err != nil {
				return err
			}
		}
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		if err := c.checkGrant(caller, in.Permissions, nil); err != nil {
			return err
		}
		t := &Token{
			AccountID:   caller.AccountID,
			Name:        name,
			Environment: env,
			CreatedBy:   caller.Name,
			ExpiresAt:   expiresAt,
			Permissions: in.Permissions,
		}
		in.Guards.apply(t, map[string]any{})
		out, err = s.issue(ctx, tx, t, now, "")
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenCreated, "api_token", out.ID, tokenDetails(&out.Token))
	})
	if err != nil {
		return nil, err
	}
	s.issued(out)
	return out, nil
}

// UpdateToken renames a token or replaces its permissions. The caller must see
// the token (ENOTFOUND otherwise) and grant nothing it is not admin on. Taking
// admin on a domain away from its last active token is EFORBIDDEN.
func (s *Service) UpdateToken(ctx context.Context, caller *Token, id int64, p TokenPatch) (*Token, error) {
	now := s.now()
	var fe FieldErrors
	var name string
	if p.Name != nil {
		name = validateName(&fe, "name", *p.Name)
	}
	if p.Permissions != nil {
		validatePermissions(&fe, *p.Permissions)
	}
	validateGuards(&fe, p.Guards)
	var out *Token
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		t, c, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		if err := fe.Err(); err != nil {
			return err
		}
		if p.Guards.set() {
			if err := caller.mayGuard(t.ID); err != nil {
				return err
			}
		}
		details := map[string]any{}
		p.Guards.apply(t, details)
		if p.Name != nil {
			details["name"] = map[string]any{"from": t.Name, "to": name}
			t.Name = name
		}
		if p.Permissions != nil {
			details["resources"] = map[string]any{"from": permissionDetails(t.Permissions), "to": permissionDetails(*p.Permissions)}
			if err := c.checkGrant(caller, *p.Permissions, t.Permissions); err != nil {
				return err
			}
			if err := s.guardDomains(ctx, tx, c, t, *p.Permissions, now, "remove admin access to"); err != nil {
				return err
			}
			t.Permissions = *p.Permissions
		}
		if err := tx.UpdateToken(ctx, t); err != nil {
			return err
		}
		s.withLastUsed(t)
		out = t
		change = AuthChange{TokenID: t.ID, AccountID: t.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenUpdated, "api_token", t.ID, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	return out, nil
}

// DeleteToken deletes a token the caller can see (ENOTFOUND otherwise). The last
// active token with admin on a domain cannot be deleted: EFORBIDDEN.
func (s *Service) DeleteToken(ctx context.Context, caller *Token, id int64) error {
	now := s.now()
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		t, c, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		if err := s.guardDomains(ctx, tx, c, t, nil, now, "delete"); err != nil {
			return err
		}
		if err := tx.DeleteToken(ctx, id); err != nil {
			return err
		}
		change = AuthChange{TokenID: id, AccountID: caller.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenDeleted, "api_token", id, tokenDetails(t))
	})
	if err != nil {
		return err
	}
	s.evict(change)
	return nil
}

// ResetToken replaces a token the caller can see with a new one holding the
// same permissions, environment and guards (its quota as spent so far), in
// one transaction. The old token keeps
// working for the reset grace period (or until its own earlier expiry). A token
// already reset or expired is EINVALID.
func (s *Service) ResetToken(ctx context.Context, caller *Token, id int64, expiry Expiry) (*IssuedToken, error) {
	now := s.now()
	var fe FieldErrors
	expiresAt := s.expiry(&fe, expiry, now)
	var out *IssuedToken
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		old, _, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		switch {
		case old.ResetAt != nil:
			fe.Add("base", "API token has already been reset")
		case old.ExpiredAt(now):
			fe.Add("base", "API token has expired")
		}
		if err := fe.Err(); err != nil {
			return err
		}
		if err := caller.mayMint(old.Environment); err != nil {
			return err
		}
		out, err = s.issue(ctx, tx, &Token{
			AccountID:   old.AccountID,
			Environment: old.Environment,
			CreatedBy:   caller.Name,
			ExpiresAt:   expiresAt,
			Permissions: old.Permissions,
			AllowedIPs:  old.AllowedIPs,
			RateLimit:   old.RateLimit,
			Quota:       old.Quota,
		}, now, baseName(old.Name))
		if err != nil {
			return err
		}
		if old.Quota != nil {
			// The new token goes on from what the old one spent: a reset
			// does not refill a quota.
			if err := tx.CopyQuotaUsage(ctx, old.ID, out.ID); err != nil {
				return err
			}
		}
		graceEnd := now.Add(s.opts.ResetGrace)
		if old.ExpiresAt == nil || old.ExpiresAt.After(graceEnd) {
			old.ExpiresAt = &graceEnd
		}
		old.ResetAt = &now
		if err := tx.UpdateToken(ctx, old); err != nil {
			return err
		}
		change = AuthChange{TokenID: old.ID, AccountID: old.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		details := tokenDetails(&out.Token)
		details["new_token_id"], details["old_token_expires_at"] = out.ID, old.ExpiresAt
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenReset, "api_token", old.ID, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	s.issued(out)
	return out, nil
}

// ReasonEnvironmentNotAllowed is the reason of the EFORBIDDEN error of a
// test key used where only a live key may act: minting a live key, or
// serving as a service token.
const ReasonEnvironmentNotAllowed = "environment_not_allowed"

// mayMint says whether t may create (or reset) a token of environment env: a
// test key makes test keys only, so that code holding a test key can never
// come by a key that delivers real mail. Live keys, and people and operators
// acting through the dashboard and CLI, make both.
func (t *Token) mayMint(env Environment) error {
	if t.Environment == Test && env != Test {
		return &Error{Code: EFORBIDDEN, Reason: ReasonEnvironmentNotAllowed,
			Message: "A test key can create and reset test keys only: use a live key, the dashboard or the CLI to make a live key"}
	}
	return nil
}

// PurgeExpired deletes the tokens that have been expired for long enough that
// waiting for the next run would keep them past PurgeAfter.
func (s *Service) PurgeExpired(ctx context.Context) (int64, error) {
	now := s.now()
	cutoff := now.Add(-max(s.opts.PurgeAfter-s.PurgeInterval(), 0))
	var n int64
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.DeleteTokensExpiredBefore(ctx, cutoff)
		if err != nil {
			return err
		}
		if _, err := tx.DeleteJobsFinishedBefore(ctx, now.Add(-jobRetention)); err != nil {
			return err
		}
		if _, err := tx.DeleteWebhookDeliveriesBefore(ctx, now.Add(-jobRetention)); err != nil {
			return err
		}
		if _, err := tx.DeleteIdempotentSendsBefore(ctx, now.Add(-IdempotencyWindow)); err != nil {
			return err
		}
		if err := tx.DeleteSessionsBefore(ctx, now, SessionIdle); err != nil {
			return err
		}
		// Every process polls the change log every second or so; an hour is ample.
		return tx.DeleteAuthChangesBefore(ctx, now.Add(-time.Hour))
	})
	return n, err
}

// tokenDetails describes a token for the audit log: never its value or hash.
func tokenDetails(t *Token) map[string]any {
	d := map[string]any{"name": t.Name, "environment": t.Environment, "resources": permissionDetails(t.Permissions)}
	if len(t.AllowedIPs) > 0 {
		d["allowed_ips"] = ipStrings(t.AllowedIPs)
	}
	if t.RateLimit != nil {
		d["rate_limit"] = rateDetails(t.RateLimit)
	}
	if t.Quota != nil {
		d["quota"] = quotaDetails(t.Quota)
	}
	return d
}

func permissionDetails(perms []Permission) []map[string]any {
	out := make([]map[string]any, len(perms))
	for i, p := range perms {
		out[i] = map[string]any{"resource_type": p.ResourceType, "resource_id": p.ResourceID, "access_level": p.Level}
	}
	return out
}

// issue stores t with a fresh value. With a non-empty base, the token is named
// "<base> token <id>" once its ID is known.
func (s *Service) issue(ctx context.Context, tx Tx, t *Token, now time.Time, base string) (*IssuedToken, error) {
	value, err := s.opts.Format.Generate(string(t.Environment))
	if err != nil {
		return nil, err
	}
	h := apikey.Hash(value)
	t.Hash = h[:]
	t.Last4 = apikey.Last4(value)
	t.CreatedAt = now
	if base != "" {
		t.Name = base
	}
	if err := tx.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	if base != "" {
		t.Name = base + " token " + strconv.FormatInt(t.ID, 10)
		if err := tx.UpdateToken(ctx, t); err != nil {
			return nil, err
		}
	}
	return &IssuedToken{Token: *t, Value: value}, nil
}

// guardDomains refuses a change that leaves a domain without an active admin
// token: target's permissions become after, and every domain target
// administered but no longer would must still have another active admin.
func (s *Service) guardDomains(ctx context.Context, tx Tx, c *catalog, target *Token, after []Permission, now time.Time, verb string) error {
	if !target.activeAt(now) {
		return nil
	}
	var lost []Resource
	for _, d := range c.domainsAdministered(target.Permissions) {
		if LevelOn(after, d) != Admin {
			lost = append(lost, d)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	tokens, err := tx.Tokens(ctx, target.AccountID)
	if err != nil {
		return err
	}
	for _, d := range lost {
		covered := false
		for i := range tokens {
			t := &tokens[i]
			if t.ID != target.ID && t.activeAt(now) && LevelOn(t.Permissions, d) == Admin {
				covered = true
				break
			}
		}
		if !covered {
			return Errorf(EFORBIDDEN, "Cannot %s the last active API token with admin access to domain %s; give another token admin access to the domain first", verb, d.Name)
		}
	}
	return nil
}

// checkGrant decides whether caller may give perms to a token that now holds
// had. Every resource must exist in the caller's account and be readable by
// the caller (EINVALID, with the same message for both, so that nothing tells
// a resource the caller cannot see from one that does not exist); the caller
// must be admin on each resource it grants beyond what the token already had,
// and account admin to leave a token with no permissions (EFORBIDDEN).
func (c *catalog) checkGrant(caller *Token, perms, had []Permission) error {
	var fe FieldErrors
	for _, p := range perms {
		r, ok := c.resolve(p.ResourceType, p.ResourceID)
		readable := r.Type == ResourceAccount || caller.LevelOn(r) >= Viewer || alreadyHeld(had, p) // every token knows its account
		if !ok || !readable {
			fe.Add("resources", fmt.Sprintf("%s %d does not exist", p.ResourceType, p.ResourceID))
		}
	}
	if err := fe.Err(); err != nil {
		return err
	}
	if len(perms) == 0 && !caller.IsAccountAdmin() {
		return Errorf(EFORBIDDEN, "Only an account admin can manage a token without resources")
	}
	for _, p := range perms {
		if alreadyHeld(had, p) {
			continue
		}
		r, _ := c.resolve(p.ResourceType, p.ResourceID)
		if caller.LevelOn(r) != Admin {
			return Errorf(EFORBIDDEN, "You need admin access to %s %d to grant permissions on it", p.ResourceType, p.ResourceID)
		}
	}
	return nil
}

func alreadyHeld(had []Permission, p Permission) bool {
	for _, h := range had {
		if h.ResourceType == p.ResourceType && h.ResourceID == p.ResourceID && h.Level >= p.Level {
			return true
		}
	}
	return false
}

func loadCatalog(ctx context.Context, tx Tx, accountID int64) (*catalog, error) {
	rs, err := tx.Resources(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return newCatalog(accountID, rs), nil
}

// visibleToken loads token id if the caller can see it; ENOTFOUND otherwise, so
// that nothing reveals the existence of tokens the caller cannot see.
func visibleToken(ctx context.Context, tx Tx, caller *Token, id int64) (*Token, *catalog, error) {
	t, err := tx.Token(ctx, id)
	if ErrorCode(err) == ENOTFOUND || err == nil && t.AccountID != caller.AccountID {
		return nil, nil, errNotFound
	} else if err != nil {
		return nil, nil, err
	}
	c, err := loadCatalog(ctx, tx, caller.AccountID)
	if err != nil {
		return nil, nil, err
	}
	if !c.canSee(caller, t) {
		return nil, nil, errNotFound
	}
	return t, c, nil
}
