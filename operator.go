package tokend

import (
	"context"
	"fmt"
)

// Operators run tokend: the command line acts as them, outside any token's
// permissions, and every change they make is audit-logged under their name.

// OperatorPrincipal is an operator acting on one account as its admin,
// through the same services (and rules) as the account's own admins: the
// audit log names the operator, with "via": "cli". It is never stored, and
// authenticates nothing.
func OperatorPrincipal(accountID int64, operator string) *Token {
	return &Token{AccountID: accountID, Name: operator, Operator: operator, Environment: Live,
		Permissions: []Permission{{ResourceType: ResourceAccount, ResourceID: accountID, Level: Admin}}}
}

// CreateAdminToken mints a live token with admin on an existing account, the
// recovery when an account's only admin token is lost. operator is recorded
// as its creator and in the audit log. An unknown account is ENOTFOUND.
func (s *Service) CreateAdminToken(ctx context.Context, accountID int64, name, operator string) (*IssuedToken, error) {
	var fe FieldErrors
	name = validateName(&fe, "name", name)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	var out *IssuedToken
	err := s.store.Write(ctx, func(tx Tx) error {
		if _, err := tx.Account(ctx, accountID); err != nil {
			return err
		}
		var err error
		out, err = s.issue(ctx, tx, &Token{
			AccountID:   accountID,
			Name:        name,
			Environment: Live,
			CreatedBy:   operator,
			Permissions: []Permission{{ResourceType: ResourceAccount, ResourceID: accountID, Level: Admin}},
		}, now, "")
		if err != nil {
			return err
		}
		details := tokenDetails(&out.Token)
		details["via"] = "cli"
		return s.audit(ctx, tx, accountID, nil, operator, ActionTokenCreated, "api_token", out.ID, details)
	})
	if err != nil {
		return nil, err
	}
	s.issued(out)
	return out, nil
}

// RevokeToken deletes token id on an operator's behalf and records the change
// for every process, so running servers refuse the token within their sync
// interval. Deleting the last active admin token of a domain is EFORBIDDEN
// unless force is set; the audit log says when it was. An unknown token is
// ENOTFOUND. It returns the token as it was.
func (s *Service) RevokeToken(ctx context.Context, id int64, operator string, force bool) (*Token, error) {
	now := s.now()
	var out *Token
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.store.Write(ctx, func(tx Tx) error {
		t, err := tx.Token(ctx, id)
		if err != nil {
			return err
		}
		if !force {
			c, err := loadCatalog(ctx, tx, t.AccountID)
			if err != nil {
				return err
			}
			if err := s.guardDomains(ctx, tx, c, t, nil, now, "revoke"); err != nil {
				return fmt.Errorf("%w (--force revokes it anyway)", err)
			}
		}
		if err := tx.DeleteToken(ctx, id); err != nil {
			return err
		}
		change = AuthChange{TokenID: id, AccountID: t.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		details := tokenDetails(t)
		details["via"], details["force"] = "cli", force
		out = t
		return s.audit(ctx, tx, t.AccountID, nil, operator, ActionTokenDeleted, "api_token", id, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	return out, nil
}

// GuardToken changes token id's guards (allowed IPs, rate limit, quota) on
// an operator's behalf, as an account admin may through the API, and
// records the change for every process. An unknown token is ENOTFOUND. It
// returns the token as it now is.
func (s *Service) GuardToken(ctx context.Context, id int64, in GuardsInput, operator string) (*Token, error) {
	var fe FieldErrors
	validateGuards(&fe, in)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	var out *Token
	var change AuthChange
	err := s.store.Write(ctx, func(tx Tx) error {
		t, err := tx.Token(ctx, id)
		if err != nil {
			return err
		}
		details := map[string]any{"via": "cli"}
		in.apply(t, details)
		if err := tx.UpdateToken(ctx, t); err != nil {
			return err
		}
		change = AuthChange{TokenID: id, AccountID: t.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		out = t
		return s.audit(ctx, tx, t.AccountID, nil, operator, ActionTokenUpdated, "api_token", id, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	return out, nil
}
