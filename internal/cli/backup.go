package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tokend/tokend/internal/app"
)

// backup copies the database and, beside it, the secrets key that opens its
// secrets: a restore needs both.
func backup(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	db := dbFlag(fs, "SQLite database file to copy")
	keyFile := fs.String("secrets-key-file", "", "the secrets key file serve uses (default: the database path + .key); copied to OUT.key")
	out, err := parseWithArg(fs, args, getenv, stdout, "output file OUT")
	if err != nil {
		return err
	}
	if app.IsPostgres(*db) {
		return &UsageError{"backup copies a SQLite database; for PostgreSQL use its own tools (pg_dump), and keep the secrets key file with the dump"}
	}
	store, err := app.OpenSQLite(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Backup(ctx, out); err != nil {
		return err
	}
	src := app.SecretsKeyPath(*db, *keyFile)
	key, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "Backed up %s to %s.\n", *db, out)
		return nil
	} else if err != nil {
		return fmt.Errorf("secrets key file: %w", err)
	}
	if err := writeNew(out+".key", key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backed up %s to %s, and its secrets key %s to %s.key.\n", *db, out, src, out)
	return nil
}

// writeNew writes data to a new file only its owner can read.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("backup %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}
