package sqlite

import (
	"context"
	"database/sql"
	"io/fs"

	"github.com/tokend/tokend/internal/sqlstore"
)

// MigrateFS applies the migrations of fsys as Open applies the embedded ones.
func MigrateFS(ctx context.Context, db *sql.DB, fsys fs.FS) error { return migrateFS(ctx, db, fsys) }

// NewTx is a transaction of this store's dialect over q.
func NewTx(q sqlstore.Querier) *sqlstore.Tx { return sqlstore.NewTx(q, dialect) }
