package tokend

import (
	"context"
	"fmt"
	"slices"
)

// LeakPolicy is what tokend does with a token a secret scanner reports
// as published: revoke it at once (the default), or only notify.
type LeakPolicy string

// Leak policies.
const (
	LeakRevoke LeakPolicy = "revoke"
	LeakNotify LeakPolicy = "notify"
)

// DefaultExpiryWarningDays are the days before a token's expiry when
// tokend warns, unless its account says otherwise.
var DefaultExpiryWarningDays = []int{7, 1}

// Bounds of the expiry warnings an account may ask for.
const (
	MaxExpiryWarnings    = 5
	MaxExpiryWarningDays = 365
)

// TokenSettings are an account's settings for its tokens.
type TokenSettings struct {
	// ExpiryWarningDays are the days before a token expires when tokend
	// raises a token.expiring event, largest first; empty for none.
	ExpiryWarningDays []int
	LeakPolicy        LeakPolicy
}

// SettingsOf returns a's token settings, with the defaults filled in.
func SettingsOf(a *Account) TokenSettings {
	s := TokenSettings{ExpiryWarningDays: a.ExpiryWarningDays, LeakPolicy: a.LeakPolicy}
	if s.ExpiryWarningDays == nil {
		s.ExpiryWarningDays = DefaultExpiryWarningDays
	}
	if s.LeakPolicy == "" {
		s.LeakPolicy = LeakRevoke
	}
	return s
}

// TokenSettingsPatch changes an account's token settings: each field left
// nil stays as it is.
type TokenSettingsPatch struct {
	ExpiryWarningDays *[]int
	LeakPolicy        *LeakPolicy
}

// ActionSettingsChanged is the audit action of a change to an account's
// token settings.
const ActionSettingsChanged = "account.token_settings_changed"

// TokenSettings returns the caller's account's token settings; any token
// of the account may read them.
func (s *Service) TokenSettings(ctx context.Context, caller *Token) (TokenSettings, error) {
	var out TokenSettings
	err := s.store.Read(ctx, func(tx Tx) error {
		a, err := tx.Account(ctx, caller.AccountID)
		if err == nil {
			out = SettingsOf(a)
		}
		return err
	})
	return out, err
}

// SetTokenSettings changes the caller's account's token settings: account
// admins only (EFORBIDDEN otherwise). Warning days are whole days from 1 to
// 365, at most five, in any order (kept largest first, without repeats).
func (s *Service) SetTokenSettings(ctx context.Context, caller *Token, p TokenSettingsPatch) (TokenSettings, error) {
	if err := p.validate(); err != nil {
		return TokenSettings{}, err
	}
	if !caller.IsAccountAdmin() {
		return TokenSettings{}, Errorf(EFORBIDDEN, "Only an account admin can change the account's token settings")
	}
	var out TokenSettings
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		var err error
		out, err = s.setTokenSettings(ctx, tx, caller.AccountID, p, caller, "")
		return err
	})
	return out, err
}

// SetTokenSettingsOf is SetTokenSettings on an operator's behalf, for
// account accountID (ENOTFOUND when there is none).
func (s *Service) SetTokenSettingsOf(ctx context.Context, accountID int64, p TokenSettingsPatch, operator string) (TokenSettings, error) {
	if err := p.validate(); err != nil {
		return TokenSettings{}, err
	}
	var out TokenSettings
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		out, err = s.setTokenSettings(ctx, tx, accountID, p, nil, operator)
		return err
	})
	return out, err
}

func (p TokenSettingsPatch) validate() error {
	var fe FieldErrors
	if d := p.ExpiryWarningDays; d != nil {
		if len(*d) > MaxExpiryWarnings {
			fe.Add("expiry_warning_days", fmt.Sprintf("may list at most %d days", MaxExpiryWarnings))
		}
		for _, n := range *d {
			if n < 1 || n > MaxExpiryWarningDays {
				fe.Add("expiry_warning_days", fmt.Sprintf("must be whole days from 1 to %d, not %d", MaxExpiryWarningDays, n))
				break
			}
		}
	}
	if p.LeakPolicy != nil && *p.LeakPolicy != LeakRevoke && *p.LeakPolicy != LeakNotify {
		fe.Add("leak_policy", "must be revoke or notify")
	}
	return fe.Err()
}

func (s *Service) setTokenSettings(ctx context.Context, tx Tx, accountID int64, p TokenSettingsPatch, caller *Token, operator string) (TokenSettings, error) {
	a, err := tx.Account(ctx, accountID)
	if err != nil {
		return TokenSettings{}, err
	}
	before := SettingsOf(a)
	after := before
	if d := p.ExpiryWarningDays; d != nil {
		days := slices.Clone(*d)
		slices.Sort(days)
		slices.Reverse(days)
		after.ExpiryWarningDays = slices.Compact(days)
	}
	if p.LeakPolicy != nil {
		after.LeakPolicy = *p.LeakPolicy
	}
	if err := tx.SetTokenSettings(ctx, a.ID, after.ExpiryWarningDays, after.LeakPolicy); err != nil {
		return TokenSettings{}, err
	}
	return after, s.audit(ctx, tx, a.ID, caller, operator, ActionSettingsChanged, "account", a.ID, map[string]any{
		"expiry_warning_days": map[string]any{"from": before.ExpiryWarningDays, "to": after.ExpiryWarningDays},
		"leak_policy":         map[string]any{"from": before.LeakPolicy, "to": after.LeakPolicy}})
}

// TokenSettingsOf returns account accountID's token settings, for an
// operator (ENOTFOUND when there is no such account).
func (s *Service) TokenSettingsOf(ctx context.Context, accountID int64) (TokenSettings, error) {
	var out TokenSettings
	err := s.store.Read(ctx, func(tx Tx) error {
		a, err := tx.Account(ctx, accountID)
		if err == nil {
			out = SettingsOf(a)
		}
		return err
	})
	return out, err
}
