package tokend

import (
	"context"
	"strconv"
	"time"
)

// DefaultUnusedDays is how long a token must have gone without a request
// to count as unused, unless the caller says otherwise.
const DefaultUnusedDays = 90

// MaxUnusedDays bounds the days a caller may ask about.
const MaxUnusedDays = 3650

// UnusedTokens returns the tokens the caller can see that have made no
// request in the last days days: used last before then, or never used and
// created before then; never the caller, which is in use. They are the ones
// to review and delete. days out of 1..MaxUnusedDays is EINVALID.
func (s *Service) UnusedTokens(ctx context.Context, caller *Token, days int) ([]Token, error) {
	if err := validUnusedDays(days); err != nil {
		return nil, err
	}
	list, err := s.ListTokens(ctx, caller)
	if err != nil {
		return nil, err
	}
	return s.unused(list, days, caller.ID), nil
}

// UnusedTokensOf is UnusedTokens for an operator: every token of account
// accountID (ENOTFOUND when there is no such account).
func (s *Service) UnusedTokensOf(ctx context.Context, accountID int64, days int) ([]Token, error) {
	if err := validUnusedDays(days); err != nil {
		return nil, err
	}
	var list []Token
	err := s.store.Read(ctx, func(tx Tx) error {
		if _, err := tx.Account(ctx, accountID); err != nil {
			return err
		}
		var err error
		list, err = tx.Tokens(ctx, accountID)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range list {
		s.withLastUsed(&list[i])
	}
	return s.unused(list, days, 0), nil
}

// ParseUnusedDays reads the days of an unused-token listing as a caller
// typed them ("" for DefaultUnusedDays); anything but a whole number from 1
// to MaxUnusedDays is EINVALID on "days".
func ParseUnusedDays(s string) (int, error) {
	if s == "" {
		return DefaultUnusedDays, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errUnusedDays
	}
	return n, validUnusedDays(n)
}

var errUnusedDays = Invalid("days", "must be a whole number of days from 1 to 3650")

func validUnusedDays(days int) error {
	if days < 1 || days > MaxUnusedDays {
		return errUnusedDays
	}
	return nil
}

// unused keeps the tokens of list, but skip, whose last request (or,
// never used, whose creation) is more than days days ago.
func (s *Service) unused(list []Token, days int, skip int64) []Token {
	cutoff := s.now().Add(-time.Duration(days) * 24 * time.Hour)
	out := list[:0]
	for _, t := range list {
		if skip != 0 && t.ID == skip {
			continue
		}
		last := t.CreatedAt
		if t.LastUsedAt != nil {
			last = *t.LastUsedAt
		}
		if last.Before(cutoff) {
			out = append(out, t)
		}
	}
	return out
}
