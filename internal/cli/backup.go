package cli

import (
	"context"
	"fmt"
	"io"
)

func backup(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	db := fs.String("db", "./tokend.db", "SQLite database file to copy")
	out, err := parseWithArg(fs, args, getenv, stdout, "output file OUT")
	if err != nil {
		return err
	}
	store, err := openStore(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Backup(ctx, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backed up %s to %s.\n", *db, out)
	return nil
}
