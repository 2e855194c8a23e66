package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
)

func tokenCreate(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", stderr)
	account := fs.Int64("account", 0, "ID of an existing account (required)")
	name := fs.String("name", "", "token name (required)")
	db := dbFlag(fs, "SQLite database file")
	prefix := fs.String("token-prefix", apikey.DefaultPrefix, "prefix of token values")
	asJSON := fs.Bool("json", false, "print the token, with its value, as JSON")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	switch {
	case *account <= 0:
		return &UsageError{"token create: --account ID is required"}
	case *name == "":
		return &UsageError{"token create: --name is required"}
	}
	svc, closeDB, err := openService(ctx, *db, *prefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	t, err := svc.CreateAdminToken(ctx, *account, *name, operatorName(getenv("USER")))
	if err != nil {
		return explainNotFound(err, "token create: no account %d in %s", *account, *db)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.IssuedTokenJSON(t))
	}
	printNewToken(stdout, fmt.Sprintf("Created token %d %q with admin access to account %d", t.ID, t.Name, *account), t.Value)
	return nil
}

func tokenRevoke(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", stderr)
	db := dbFlag(fs, "SQLite database file")
	force := fs.Bool("force", false, "revoke even the last active admin token of a domain")
	id, err := parseWithID(fs, args, getenv, stdout, "token ID", "a token ID")
	if err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	t, err := svc.RevokeToken(ctx, id, operatorName(getenv("USER")), *force)
	if err != nil {
		return explainNotFound(fmt.Errorf("token revoke: %w", err), "token revoke: no token %d in %s", id, *db)
	}
	fmt.Fprintf(stdout, "Revoked token %d %q of account %d. Running servers refuse it within a second.\n", t.ID, t.Name, t.AccountID)
	return nil
}

// printNewToken prints the value of a token just made, under what says
// what it is, and that this is the one time it is shown.
func printNewToken(w io.Writer, what, value string) {
	fmt.Fprintf(w, "%s:\n\n    %s\n\nStore it now: tokend keeps only a hash of it and will not show it again.\n", what, value)
}

func tokenGuard(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("token guard", stderr)
	db := dbFlag(fs, "SQLite database file")
	var in tokend.GuardsInput
	fs.Func("allowed-ips", "comma-separated IP addresses and CIDR networks the token may be used from", func(s string) error {
		var ips []netip.Prefix
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			p, err := tokend.ParseAllowedIP(f)
			if err != nil {
				return err
			}
			ips = append(ips, p)
		}
		if len(ips) == 0 {
			return errors.New("no address or network given: use --any-ip to allow any")
		}
		in.AllowedIPs = &ips
		return nil
	})
	anyIP := fs.Bool("any-ip", false, "remove the allowed IPs: the token may be used from anywhere")
	fs.Func("rate-limit", "the token's own rate limit, as requests/period (100/1m, 5000/24h)", func(s string) error {
		r, err := tokend.ParseRate(s)
		if err != nil {
			return err
		}
		rp := &r
		in.RateLimit = &rp
		return nil
	})
	noRate := fs.Bool("no-rate-limit", false, "remove the token's own rate limit")
	fs.Func("quota", "the token's quota, as limit/day or limit/month, then /requests (the default) or /emails", func(s string) error {
		q, err := tokend.ParseQuota(s)
		if err != nil {
			return err
		}
		qp := &q
		in.Quota = &qp
		return nil
	})
	noQuota := fs.Bool("no-quota", false, "remove the token's quota")
	asJSON := fs.Bool("json", false, "print the token as JSON")
	id, err := parseWithID(fs, args, getenv, stdout, "token ID", "a token ID")
	if err != nil {
		return err
	}
	switch {
	case *anyIP && in.AllowedIPs != nil:
		return &UsageError{"token guard: --allowed-ips and --any-ip contradict each other"}
	case *noRate && in.RateLimit != nil:
		return &UsageError{"token guard: --rate-limit and --no-rate-limit contradict each other"}
	case *noQuota && in.Quota != nil:
		return &UsageError{"token guard: --quota and --no-quota contradict each other"}
	}
	if *anyIP {
		in.AllowedIPs = &[]netip.Prefix{}
	}
	if *noRate {
		in.RateLimit = new(*tokend.Rate)
	}
	if *noQuota {
		in.Quota = new(*tokend.Quota)
	}
	if in.AllowedIPs == nil && in.RateLimit == nil && in.Quota == nil {
		return &UsageError{"token guard: nothing to change: give --allowed-ips, --any-ip, --rate-limit, --no-rate-limit, --quota or --no-quota"}
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	t, err := svc.GuardToken(ctx, id, in, operatorName(getenv("USER")))
	if err != nil {
		return explainNotFound(fmt.Errorf("token guard: %w", err), "token guard: no token %d in %s", id, *db)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.TokenJSON(t))
	}
	fmt.Fprintf(stdout, "Token %d %q of account %d: %s. Running servers apply it within a second.\n", t.ID, t.Name, t.AccountID, describeGuards(t))
	return nil
}

// describeGuards says what a token's guards are, for people.
func describeGuards(t *tokend.Token) string {
	ips := "any IP address"
	if len(t.AllowedIPs) > 0 {
		list := make([]string, len(t.AllowedIPs))
		for i, p := range t.AllowedIPs {
			list[i] = tokend.FormatAllowedIP(p)
		}
		ips = "allowed from " + strings.Join(list, ", ")
	}
	rate := "no rate limit of its own"
	if r := t.RateLimit; r != nil {
		rate = fmt.Sprintf("at most %d requests per %s", r.Limit, r.Per)
	}
	quota := "no quota"
	if q := t.Quota; q != nil {
		quota = fmt.Sprintf("a quota of %d %s a %s", q.Limit, q.Unit, q.Period)
	}
	return ips + "; " + rate + "; " + quota
}

func tokenUnused(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("token unused", stderr)
	account := fs.Int64("account", 0, "ID of the account (required)")
	days := fs.Int("days", tokend.DefaultUnusedDays, "days without a request that make a token unused")
	db := dbFlag(fs, "SQLite database file")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	if *account <= 0 {
		return &UsageError{"token unused: --account ID is required"}
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	list, err := svc.UnusedTokensOf(ctx, *account, *days)
	if err != nil {
		return explainNotFound(fmt.Errorf("token unused: %w", err), "token unused: no account %d in %s", *account, *db)
	}
	if *asJSON {
		return writeJSONList(stdout, list, func(t *tokend.Token) any { return api.TokenJSON(t) })
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "No token of account %d has gone %d days without a request.\n", *account, *days)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tLAST USED\tCREATED")
	for _, t := range list {
		last := "never"
		if t.LastUsedAt != nil {
			last = t.LastUsedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", t.ID, t.Name, last, t.CreatedAt.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Review them, and delete those no one needs with tokend token revoke ID.\n")
	return nil
}
