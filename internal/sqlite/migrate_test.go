package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/sqlite"
	"github.com/tokend/tokend/internal/storetest"
)

// migrations are SQLite's, for the shared tests of a store's migrations.
var migrations = storetest.Migrations{
	Embedded:    os.DirFS("migrations"), // the files embedded
	NewDatabase: func(t *testing.T) string { return filepath.Join(t.TempDir(), "tokend.db") },
	SQL: func(path string) (*sql.DB, error) {
		return sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	},
	Migrate: sqlite.MigrateFS,
	NewTx:   func(db *sql.DB) tokend.Tx { return sqlite.NewTx(db) },
	Open: func(ctx context.Context, path string) (tokend.Store, error) {
		return sqlite.Open(ctx, path)
	},
}

// A database made before the message allowance (migrations up to 00006)
// migrates to 00009, over 00007 and 00008 numbered before it but merged
// after it, and every account gets its plan's allowance.
func TestUpgradeGivesAccountsTheirPlansMessageLimit(t *testing.T) {
	storetest.UpgradeGivesAccountsTheirPlansMessageLimit(t, migrations, 6)
}

// A migration merged after a later-numbered one is still applied, and the
// capture quota's counts start from the mail already captured.
func TestMigrationsApplyOutOfOrder(t *testing.T) {
	storetest.MigrationsApplyOutOfOrder(t, migrations, "00008_capture_quota.sql")
}
