package tokend

import (
	"context"
	"fmt"

	"github.com/tokend/tokend/apikey"
)

// Leaked tokens: a secret scanner (GitHub's, through its partner program)
// reports values it found published. Each value that is one of tokend's
// tokens is, by its account's leak policy, revoked at once (the default) or
// only reported: a token.leaked event goes to the audit log with where it
// was found, to the alert webhook and by email to the account's users. A
// report of the same value at the same place again changes nothing, and a
// value revoked for a leak is still recognised as a real token.

// ActionTokenLeaked is the audit action (and webhook type) of a leak.
const ActionTokenLeaked = "token.leaked"

// LeakReport is one value a scanner found published.
type LeakReport struct {
	Value  string
	Type   string // the scanner's name for the kind of secret
	URL    string // where it was found
	Source string // what it was found in (content, commit, issue, ...)
}

// ReportLeak handles one report and says whether the value is (or was) one
// of tokend's tokens: a true positive. It never says whose, and it is
// idempotent.
func (ev *TokenEvents) ReportLeak(ctx context.Context, r LeakReport) (bool, error) {
	if _, err := ev.svc.opts.Format.Parse(r.Value); err != nil {
		return false, nil // not even shaped like one, or its checksum fails
	}
	h := apikey.Hash(r.Value)
	t, err := ev.svc.store.TokenByHash(ctx, h[:])
	if ErrorCode(err) == ENOTFOUND {
		var known bool
		err = ev.svc.store.Read(ctx, func(tx Tx) error {
			var err error
			known, err = tx.LeakRecorded(ctx, h[:])
			return err
		})
		return known, err
	} else if err != nil {
		return false, fmt.Errorf("report leak: %w", err)
	}
	now := ev.svc.now()
	var change AuthChange
	var alerted, fresh, revoked bool
	err = ev.svc.store.Write(ctx, func(tx Tx) error {
		revoked, alerted, change = false, false, AuthChange{}
		var err error
		if fresh, err = tx.RecordLeak(ctx, h[:], r.URL, t.AccountID, t.ID, now); err != nil || !fresh {
			return err
		}
		a, err := tx.Account(ctx, t.AccountID)
		if err != nil {
			return err
		}
		policy := SettingsOf(a).LeakPolicy
		if policy == LeakRevoke {
			switch err := tx.DeleteToken(ctx, t.ID); {
			case err == nil:
				revoked = true
				change = AuthChange{TokenID: t.ID, AccountID: t.AccountID}
				if err := ev.svc.changed(ctx, tx, &change); err != nil {
					return err
				}
			case ErrorCode(err) != ENOTFOUND: // deleted meanwhile: nothing to revoke
				return err
			}
		}
		what := "It was revoked: every request made with it is now refused."
		if !revoked {
			what = "The account's leak policy is notify: it still works. Reset or delete it now."
		}
		e := &AuditEvent{AccountID: t.AccountID, At: now, Actor: "tokend", Action: ActionTokenLeaked,
			TargetType: "api_token", TargetID: t.ID, ClientAddr: "local", Details: map[string]any{
				"name": t.Name, "url": r.URL, "source": r.Source, "type": r.Type, "policy": string(policy), "revoked": revoked,
				"message": fmt.Sprintf("API token %d %q was found published at %s. %s", t.ID, t.Name, r.URL, what)}}
		alerted, err = ev.raise(ctx, tx, e, fmt.Sprintf("API token %q was found published", t.Name), leakText(t, r, what))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("report leak of token %d: %w", t.ID, err)
	}
	if revoked {
		ev.svc.evict(change)
	}
	if fresh {
		ev.alerted(alerted)
	}
	return true, nil
}

func leakText(t *Token, r LeakReport, what string) string {
	return fmt.Sprintf("The API token %q (id %d, ...%s) of account %d was found published at\r\n\r\n    %s\r\n\r\n"+
		"%s\r\n\r\nRemove it from where it was published, and check the account's audit log for what it did. "+
		"Services that used it need a new token.\r\n", t.Name, t.ID, t.Last4, t.AccountID, r.URL, what)
}
