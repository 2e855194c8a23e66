package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/app"
)

type accountJSON struct {
	ID           int64       `json:"id"`
	Name         string      `json:"name"`
	Plan         tokend.Plan `json:"plan"`
	RateLimit    int         `json:"rate_limit"`
	MessageLimit int         `json:"message_limit"`
	CreatedAt    time.Time   `json:"created_at"`
}

func toAccountJSON(a *tokend.Account) accountJSON {
	return accountJSON{ID: a.ID, Name: a.Name, Plan: a.Plan, RateLimit: a.RateLimit, MessageLimit: a.MessageLimit, CreatedAt: a.CreatedAt}
}

// openService opens the database at path for a one-off command. Only
// commands that create things may create the database: the others refuse a
// path with no database, rather than create an empty one and answer from it.
func openService(ctx context.Context, path, prefix string, create bool) (*tokend.Service, func() error, error) {
	format, err := apikey.NewFormat(prefix)
	if err != nil {
		return nil, nil, &UsageError{err.Error()}
	}
	store, err := app.OpenStore(ctx, path, create)
	if err != nil {
		return nil, nil, err
	}
	return tokend.NewService(store, tokend.Options{Format: format}), store.Close, nil
}

// explainNotFound returns err, except that a thing that is not there
// (ENOTFOUND) is said as format says: the command, what it looked for and
// where.
func explainNotFound(err error, format string, args ...any) error {
	if tokend.ErrorCode(err) == tokend.ENOTFOUND {
		return fmt.Errorf(format, args...)
	}
	return err
}

// explainNoDomain is explainNotFound for a command's --domain: the domain
// answers a domain_id that names no domain of the account as invalid input
// (422 in the API), which an operator reads as the domain not being there.
func explainNoDomain(err error, format string, args ...any) error {
	var e *tokend.Error
	if errors.As(err, &e) && e.Code == tokend.EINVALID && len(e.Fields) == 1 && e.Fields["domain_id"] != nil {
		return fmt.Errorf(format, args...)
	}
	return explainNotFound(err, format, args...)
}

// writeJSONList writes items as one JSON array, each item as toJSON has it.
func writeJSONList[T, J any](w io.Writer, items []T, toJSON func(*T) J) error {
	out := make([]J, len(items))
	for i := range items {
		out[i] = toJSON(&items[i])
	}
	return json.NewEncoder(w).Encode(out)
}

func accountCreate(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("account create", stderr)
	name := fs.String("name", "", "account name (required)")
	plan := fs.String("plan", "free", "plan: free, pro or enterprise")
	db := dbFlag(fs, "SQLite database file")
	prefix := fs.String("token-prefix", apikey.DefaultPrefix, "prefix of token values")
	asJSON := fs.Bool("json", false, `print {"account": ..., "api_token": ...} as JSON`)
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	if *name == "" {
		return &UsageError{"account create: --name is required"}
	}
	p, ok := tokend.ParsePlan(*plan)
	if !ok {
		return &UsageError{fmt.Sprintf("account create: unknown plan %q (want free, pro or enterprise)", *plan)}
	}
	svc, closeDB, err := openService(ctx, *db, *prefix, true)
	if err != nil {
		return err
	}
	defer closeDB()
	a, t, err := svc.CreateAccount(ctx, *name, p, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"account": toAccountJSON(a), "api_token": api.IssuedTokenJSON(t)})
	}
	printNewToken(stdout, fmt.Sprintf("Created account %q (id %d, plan %s) and its first admin token", a.Name, a.ID, a.Plan), t.Value)
	return nil
}

func accountSetPlan(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("account set-plan", stderr)
	plan := fs.String("plan", "", "plan: free, pro or enterprise (required)")
	limit := fs.Int("rate-limit", 0, "requests per minute; required for enterprise, fixed by the plan otherwise")
	messageLimit := fs.Int("message-limit", 0, "messages (recipients) sent per minute; enterprise only, fixed by the plan otherwise "+
		"(omitted: the plan's default, or an enterprise account's current allowance)")
	db := dbFlag(fs, "SQLite database file")
	asJSON := fs.Bool("json", false, "print the account as JSON")
	id, err := parseWithID(fs, args, getenv, stdout, "account ID", "an account ID")
	if err != nil {
		return err
	}
	p, ok := tokend.ParsePlan(*plan)
	if !ok {
		return &UsageError{fmt.Sprintf("account set-plan: --plan must be free, pro or enterprise, not %q", *plan)}
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	a, err := svc.SetPlan(ctx, id, p, *limit, *messageLimit, operatorName(getenv("USER")))
	if err != nil {
		return explainNotFound(err, "account set-plan: no account %d", id)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(toAccountJSON(a))
	}
	fmt.Fprintf(stdout, "Account %d %q is now on plan %s: %d requests/minute and %d messages/minute for live keys; "+
		"test keys get the server's --test-rate-multiplier times those.\n", a.ID, a.Name, a.Plan, a.RateLimit, a.MessageLimit)
	return nil
}

func accountList(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("account list", stderr)
	db := dbFlag(fs, "SQLite database file")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	accounts, err := svc.ListAllAccounts(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(stdout, accounts, toAccountJSON)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPLAN\tRATE LIMIT\tMESSAGE LIMIT\tCREATED")
	for _, a := range accounts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/min\t%d/min\t%s\n", a.ID, a.Name, a.Plan, a.RateLimit, a.MessageLimit, a.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func accountSettings(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("account settings", stderr)
	db := dbFlag(fs, "SQLite database file")
	var patch tokend.TokenSettingsPatch
	fs.Func("expiry-warnings", "comma-separated days before a token's expiry when tokend warns (7,1), or none", func(s string) error {
		days := []int{}
		if s != "none" {
			for _, f := range strings.Split(s, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil {
					return fmt.Errorf("%q is not a number of days: want a list such as 14,7,1, or none", f)
				}
				days = append(days, n)
			}
		}
		patch.ExpiryWarningDays = &days
		return nil
	})
	fs.Func("leak-policy", "what a leak reported by a secret scanner does: revoke or notify", func(s string) error {
		p := tokend.LeakPolicy(s)
		patch.LeakPolicy = &p
		return nil
	})
	asJSON := fs.Bool("json", false, "print the settings as JSON")
	id, err := parseWithID(fs, args, getenv, stdout, "account ID", "an account ID")
	if err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	var set tokend.TokenSettings
	if patch.ExpiryWarningDays == nil && patch.LeakPolicy == nil {
		set, err = svc.TokenSettingsOf(ctx, id)
	} else {
		set, err = svc.SetTokenSettingsOf(ctx, id, patch, operatorName(getenv("USER")))
	}
	if err != nil {
		return explainNotFound(fmt.Errorf("account settings: %w", err), "account settings: no account %d in %s", id, *db)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"expiry_warning_days": set.ExpiryWarningDays, "leak_policy": set.LeakPolicy})
	}
	warn := "none"
	if len(set.ExpiryWarningDays) > 0 {
		days := make([]string, len(set.ExpiryWarningDays))
		for i, d := range set.ExpiryWarningDays {
			days[i] = strconv.Itoa(d)
		}
		warn = strings.Join(days, ", ") + " days before expiry"
	}
	fmt.Fprintf(stdout, "Account %d: expiry warnings %s; leaked tokens: %s.\n", id, warn, set.LeakPolicy)
	return nil
}
