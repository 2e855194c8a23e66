package postgres

import (
	"context"
	"database/sql"
	"io/fs"

	"github.com/pressly/goose/v3/lock"

	"github.com/tokend/tokend/internal/sqlstore"
)

// MigrateFS applies the migrations of fsys as Open applies the embedded ones.
func MigrateFS(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	return migrateFS(ctx, db, fsys, locker)
}

// NewTx is a transaction of this store's dialect over q, with ? placeholders.
func NewTx(q sqlstore.Querier) *sqlstore.Tx { return sqlstore.NewTx(rebind{q}, dialect) }
