package tokend

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Expiry warnings: before a token's expires_at, at each of its account's
// warning days (7 and 1 by default), tokend raises one token.expiring event:
// in the audit log, on the alert webhook, and by email to the account's
// users. Each (token, day, expiry) is recorded when raised, in the same
// transaction, so no restart or second instance raises it again. When
// several days are crossed at once (a token created to expire in two days
// has crossed 7), only the nearest is raised. Tokens already reset, on
// their way out, are not warned about.

// ActionTokenExpiring is the audit action (and webhook type) of an expiry
// warning.
const ActionTokenExpiring = "token.expiring"

// CheckExpiring raises the expiry warnings due at now and returns how many
// it raised. The application runs it at start and hourly.
func (ev *TokenEvents) CheckExpiring(ctx context.Context) (int, error) {
	now := ev.svc.now()
	var accounts []Account
	var tokens []Token
	err := ev.svc.store.Read(ctx, func(tx Tx) error {
		var err error
		if accounts, err = tx.Accounts(ctx); err != nil {
			return err
		}
		horizon := 0
		for i := range accounts {
			if d := SettingsOf(&accounts[i]).ExpiryWarningDays; len(d) > 0 {
				horizon = max(horizon, slices.Max(d))
			}
		}
		if horizon == 0 {
			return nil
		}
		tokens, err = tx.TokensExpiringBetween(ctx, now, now.Add(time.Duration(horizon)*24*time.Hour))
		return err
	})
	if err != nil || len(tokens) == 0 {
		return 0, err
	}
	days := make(map[int64][]int, len(accounts))
	for i := range accounts {
		days[accounts[i].ID] = SettingsOf(&accounts[i]).ExpiryWarningDays
	}
	raised := 0
	for i := range tokens {
		t := &tokens[i]
		d, ok := nearestCrossed(days[t.AccountID], t.ExpiresAt.Sub(now))
		if !ok {
			continue
		}
		var alerted, fresh bool
		err := ev.svc.store.Write(ctx, func(tx Tx) error {
			var err error
			if fresh, err = tx.RecordExpiryWarning(ctx, t.ID, d, *t.ExpiresAt, now); err != nil || !fresh {
				return err
			}
			e := &AuditEvent{AccountID: t.AccountID, At: now, Actor: "tokend", Action: ActionTokenExpiring,
				TargetType: "api_token", TargetID: t.ID, ClientAddr: "local", Details: map[string]any{
					"name": t.Name, "expires_at": t.ExpiresAt.UTC(), "days": d,
					"message": fmt.Sprintf("API token %d %q expires on %s, in %s", t.ID, t.Name, t.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), dayWords(d))}}
			alerted, err = ev.raise(ctx, tx, e, fmt.Sprintf("API token %q expires in %s", t.Name, dayWords(d)), expiringText(t, d))
			return err
		})
		if err != nil {
			return raised, fmt.Errorf("expiry warning of token %d: %w", t.ID, err)
		}
		if fresh {
			raised++
			ev.alerted(alerted)
		}
	}
	return raised, nil
}

// nearestCrossed returns the smallest of days whose warning is due for a
// token that expires in left: left is at most that many days.
func nearestCrossed(days []int, left time.Duration) (int, bool) {
	best, ok := 0, false
	for _, d := range days {
		if left <= time.Duration(d)*24*time.Hour && (!ok || d < best) {
			best, ok = d, true
		}
	}
	return best, ok
}

func dayWords(d int) string {
	if d == 1 {
		return "1 day or less"
	}
	return fmt.Sprintf("%d days or less", d)
}

func expiringText(t *Token, d int) string {
	return fmt.Sprintf("The API token %q (id %d, ...%s) of account %d expires on %s, in %s.\r\n\r\n"+
		"When it expires, every request made with it is refused (401, expired_api_key). "+
		"To keep the service that uses it working, reset the token (a new value with the same permissions) "+
		"or create a new one, and put the new value in place before then.\r\n",
		t.Name, t.ID, t.Last4, t.AccountID, t.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), dayWords(d))
}
