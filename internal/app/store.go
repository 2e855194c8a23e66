package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/postgres"
	"github.com/tokend/tokend/internal/sqlite"
)

// OpenStore opens the database --db names: a postgres:// URL, or a SQLite
// file path (which, unless create is set, must exist).
func OpenStore(ctx context.Context, db string, create bool) (tokend.Store, error) {
	if IsPostgres(db) {
		return postgres.Open(ctx, db)
	}
	return OpenSQLite(ctx, db, create)
}

// OpenSQLite opens the SQLite database at path; unless create is set, it
// must exist.
func OpenSQLite(ctx context.Context, path string, create bool) (*sqlite.Store, error) {
	if !create {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s (tokend serve or tokend account create makes one; --db or TOKEND_DB names another)", path)
		}
	}
	return sqlite.Open(ctx, path)
}

// LoadKeyring reads the secrets key, or creates it (mode 0600) when the file
// is missing and the database holds no secrets yet. A database whose secrets
// were sealed with a key that is now missing refuses to start: a new key
// could not open them.
func LoadKeyring(ctx context.Context, db, keyFile string, store tokend.Store, logger *slog.Logger) (*tokend.Keyring, error) {
	path := SecretsKeyPath(db, keyFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := tokend.ParseSecretsKey(string(raw))
		if err != nil {
			return nil, fmt.Errorf("secrets key file %s: %w", path, err)
		}
		return tokend.NewKeyring(key)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	has, err := tokend.HasSecrets(ctx, store)
	if err != nil {
		return nil, err
	}
	if has {
		return nil, fmt.Errorf("secrets key file %s is missing, but database %s holds secrets (DKIM keys, webhook signing secrets) sealed with a key: "+
			"restore the key file from your backup, or point --secrets-key-file at it", path, DBName(db))
	}
	encoded := tokend.NewSecretsKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secrets key file: %w", err)
	}
	if _, err := f.WriteString(encoded + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secrets key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write secrets key file %s: %w", path, err)
	}
	abs, _ := filepath.Abs(path)
	logger.Info("created the secrets key file; back it up with the database: without it, DKIM keys and webhook signing secrets cannot be opened", "file", abs)
	key, _ := tokend.ParseSecretsKey(encoded)
	return tokend.NewKeyring(key)
}
