package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

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
